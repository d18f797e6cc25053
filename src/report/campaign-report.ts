/**
 * The stand-alone campaign report (`fedmark score --report`, `fedmark uplift --report`): one
 * offline HTML file, Chart.js inlined as in the compliance report, a Content-Security-Policy that
 * admits only the two inline scripts by hash and no network access.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeHtml, jsonForScript } from './format.ts';
import { chartJsSource } from './html.ts';
import { CAMPAIGN_CHART_SCRIPT, campaignChartData, renderCampaignSection, type CampaignInput } from './campaign-section.ts';

const STYLE = `
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2937; margin: 0; background: #f9fafb; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 24px 0 8px; } h3 { font-size: 15px; margin: 20px 0 8px; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 16px 20px; margin: 16px 0; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; } .facts dt { color: #6b7280; } .facts dd { margin: 0; }
.table-wrap { overflow-x: auto; } table { border-collapse: collapse; width: 100%; margin: 8px 0; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e5e7eb; text-align: left; } .num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flagged td { background: #fff7ed; }
.callout { border-left: 4px solid #d97706; background: #fffbeb; padding: 8px 12px; margin: 8px 0; } .callout.ok { border-color: #059669; background: #ecfdf5; }
.note { color: #6b7280; font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; } figure { margin: 0; } figcaption { font-weight: 600; }
.chart-box { position: relative; height: 280px; }
`;

const cspHash = (script: string): string => `'sha256-${createHash('sha256').update(script, 'utf8').digest('base64')}'`;

export function renderCampaignReport(c: CampaignInput, generatedAt = new Date().toISOString()): string {
  const chartJs = chartJsSource();
  const csp = `default-src 'none'; script-src ${cspHash(chartJs)} ${cspHash(CAMPAIGN_CHART_SCRIPT)}; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'`;
  const title = c.uplift ? 'Campaign report — measured uplift' : 'Campaign report — scoring run';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="fedmark">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p class="note">Generated ${escapeHtml(generatedAt)} by fedmark. Scores and campaign counts stay with the partner that produced them.</p>
${renderCampaignSection(c)}
</main>
<script type="application/json" id="campaign-data">${jsonForScript(campaignChartData(c))}</script>
<script>${chartJs}</script>
<script>${CAMPAIGN_CHART_SCRIPT}</script>
</body>
</html>
`;
}

/** Writes `campaign.html` into `dir`; returns its path. */
export async function writeCampaignReport(dir: string, c: CampaignInput): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'campaign.html');
  await writeFile(file, renderCampaignReport(c), { encoding: 'utf8', mode: 0o600 });
  return file;
}
