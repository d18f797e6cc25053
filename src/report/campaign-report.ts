/**
 * The stand-alone campaign report (`fedmark score --report`, `fedmark uplift --report`): one
 * offline HTML file, Chart.js inlined as in the compliance report, a Content-Security-Policy that
 * admits only the two inline scripts by hash and no network access.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { escapeHtml, jsonForScript } from './format.ts';
import { chartJsSource, reportHead } from './html/charts.ts';
import { CAMPAIGN_CHART_SCRIPT, campaignChartData, renderCampaignSection, type CampaignInput } from './html/campaign.ts';

export function renderCampaignReport(c: CampaignInput, generatedAt = new Date().toISOString()): string {
  const chartJs = chartJsSource();
  const title = c.uplift ? 'Campaign report — measured uplift' : 'Campaign report — scoring run';
  return `${reportHead(title, [chartJs, CAMPAIGN_CHART_SCRIPT])}
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
