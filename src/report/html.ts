/**
 * The compliance report: ONE self-contained HTML file a reviewer can open offline or archive.
 *
 * - Chart.js (UMD build) is read from node_modules at render time and inlined; styles are inline; the
 *   data behind the charts is a JSON block. A Content-Security-Policy admits only the two inline
 *   scripts by hash and forbids every network fetch, so even a mistake in escaping could not run
 *   injected script or phone home.
 * - All text from the input (partner names, group labels, audit messages) is HTML-escaped.
 * - Key figures are plain text with stable ids (`#final-auc`, …) and every chart has a stable canvas id
 *   (`chart-auc`, `chart-epsilon`, `chart-roc`, `chart-lift`, `chart-calibration`) so tests and
 *   tooling can find them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeModelSpec, escapeHtml, fmt, fmtInt, fmtPct, jsonForScript, NOT_DP } from './format.ts';
import { buildModelCard, cardToHtml, cardToMarkdown } from './model-card.ts';
import { parseReportInput, type ReportInput, type ReportInputDraft } from './schema.ts';
import { CHART_SCRIPT, chartData, chartFigure, chartJsSource, reportHead } from './html/charts.ts';
import {
  auditSection,
  badgeList,
  derive,
  encryptionFacts,
  fairnessSection as fairnessHtml,
  jobFactList,
  kpiStrip,
  liftSection,
  partnersSection,
  privacySection,
} from './html/sections.ts';
import { CAMPAIGN_CHART_SCRIPT, campaignChartData, renderCampaignSection } from './html/campaign.ts';

export { CHART_IDS, chartJsSource } from './html/charts.ts';

/** Renders the report (sections in ./html/). Validates `input` (throws FedmarkError REPORT_INVALID_INPUT). */
export function renderReport(draft: ReportInputDraft | ReportInput): string {
  const input = parseReportInput(draft);
  const generatedAt = input.generatedAt ?? new Date().toISOString();
  const card = buildModelCard({ ...input, generatedAt });
  const d = derive(input, generatedAt);
  const { job, ev, overBudget } = d;
  const badges = badgeList(d);
  const kpis = kpiStrip(d);
  const jobFacts = jobFactList(d);
  const partnersTable = partnersSection(d);
  const { privacyTable, missingPrivacy } = privacySection(d);
  const fairnessSection = fairnessHtml(d);
  const liftTable = liftSection(d);
  const encFacts = encryptionFacts(d);
  const auditHtml = auditSection(d);

  const data = jsonForScript(chartData(input));
  const chartJs = chartJsSource();
  const title = `Compliance report — ${job.jobId}`;

  return `${reportHead(title, [chartJs, CHART_SCRIPT, ...(input.campaign ? [CAMPAIGN_CHART_SCRIPT] : [])])}
<header class="top"><div class="inner">
<h1>${escapeHtml(title)}</h1>
<div class="meta">${escapeHtml(job.dataset)} · ${escapeHtml(describeModelSpec(job.modelSpec))} · ${escapeHtml(String(job.rounds))} rounds · generated ${escapeHtml(generatedAt)}</div>
<div class="badges">${badges.join('')}</div>
</div></header>
<main>
<div class="kpis" id="key-figures">${kpis}</div>

<section id="job"><h2>Job summary</h2>
<dl class="facts">${jobFacts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
</section>

<section id="partners"><h2>Partners and consent</h2>
${partnersTable}
<p class="note">Rows excluded for missing consent or withdrawn consent never entered training or evaluation; counts are as reported by each partner’s node.</p>
</section>

<section id="privacy"><h2>Differential privacy</h2>
${input.differentiallyPrivate ? '' : `<div class="callout bad" id="not-private"><strong>This job is ${escapeHtml(NOT_DP)}.</strong> Partners released their updates without a DP mechanism: nothing bounds what the model, the published sums or the metrics reveal about any partner’s customers.</div>`}
${overBudget.length ? `<div class="callout bad"><strong>Budget exceeded:</strong> ${overBudget.map((r) => escapeHtml(r.p.partner)).join(', ')} spent more ε than their budget allows.</div>` : ''}
${missingPrivacy.length && input.differentiallyPrivate ? `<div class="callout bad"><strong>No privacy accounting reported</strong> for ${missingPrivacy.map((p) => escapeHtml(p.name)).join(', ')}.</div>` : ''}
${privacyTable}
<p class="note">ε is cumulative after the last round each partner took part in, rounded up to three decimals; δ is rounded up as well.</p>
<div class="charts" style="margin-top:16px">${chartFigure('chart-epsilon', 'Privacy loss ε per partner over rounds', 'Dashed line: the partner’s ε budget for this job.')}</div>
</section>

<section id="training"><h2>Training progress</h2>
<div class="charts">${chartFigure('chart-auc', 'Global AUC over rounds', 'Federated evaluation after each round (from encrypted histograms).')}</div>
</section>

<section id="evaluation"><h2>Final model evaluation</h2>
<p>Hold-out rows: <strong>${escapeHtml(fmtInt(ev.n))}</strong> (${escapeHtml(fmtInt(ev.positives))} positives, base rate ${escapeHtml(fmtPct(ev.baseRate))}). AUC <strong>${escapeHtml(fmt(ev.auc, 4))}</strong>, log loss ${escapeHtml(fmt(ev.logLoss, 4))}, Brier ${escapeHtml(fmt(ev.brier, 4))}, accuracy at ${escapeHtml(fmt(ev.threshold, 2))}: ${escapeHtml(fmtPct(ev.accuracy))}.</p>
<div class="charts">
${chartFigure('chart-roc', 'ROC curve', `AUC ${fmt(ev.auc, 4)}; ${ev.bins}-bin histograms, ties within a bin count ½.`)}
${chartFigure('chart-pr', 'Precision–recall curve', `Dashed line: base rate ${fmtPct(ev.baseRate)} (a random ranking).`)}
${chartFigure('chart-lift', 'Lift and cumulative gain by decile', 'Bars: lift of each decile; line: share of all positives captured.')}
${chartFigure('chart-calibration', 'Calibration (reliability diagram)', 'Points on the diagonal are well calibrated; empty bins omitted.')}
</div>
<h3>Lift table</h3>
${liftTable}
</section>

<section id="fairness"><h2>Fairness by segment</h2>
${fairnessSection}
</section>

${input.campaign ? renderCampaignSection(input.campaign) : ''}

<section id="encryption"><h2>Encryption</h2>
<dl class="facts">${encFacts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
<p class="note">The coordinator adds ciphertexts and never holds the secret key; it never saw an individual update, score or histogram.</p>
</section>

<section id="audit"><h2>Audit</h2>
${auditHtml}
</section>

<section id="model-card" class="model-card"><h2>${escapeHtml(card.title)}</h2>
${cardToHtml(card, 3)}
</section>

<footer>Self-contained report produced by fedmark. No network resources are loaded; charts rendered with Chart.js (MIT), inlined.</footer>
</main>
<script type="application/json" id="report-data">${data}</script>
<script>${chartJs}</script>
<script>${CHART_SCRIPT}</script>
${input.campaign ? `<script type="application/json" id="campaign-data">${jsonForScript(campaignChartData(input.campaign))}</script><script>${CAMPAIGN_CHART_SCRIPT}</script>` : ''}
</body>
</html>
`;
}

export interface WrittenReport {
  htmlPath: string;
  modelCardPath: string;
}

/** Writes `report.html` and `model-card.md` into `dir` (created if missing). */
export async function writeReport(dir: string, draft: ReportInputDraft | ReportInput): Promise<WrittenReport> {
  const input = parseReportInput(draft);
  const generatedAt = input.generatedAt ?? new Date().toISOString();
  const full = { ...input, generatedAt };
  await mkdir(dir, { recursive: true });
  const htmlPath = join(dir, 'report.html');
  const modelCardPath = join(dir, 'model-card.md');
  await writeFile(htmlPath, renderReport(full), 'utf8');
  await writeFile(modelCardPath, cardToMarkdown(buildModelCard(full)), 'utf8');
  return { htmlPath, modelCardPath };
}
