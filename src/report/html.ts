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
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { FedmarkError } from '../errors.ts';
import {
  describeModelSpec,
  escapeHtml,
  finalEpsilon,
  fmt,
  fmtDelta,
  fmtEpsilon,
  fmtInt,
  fmtPct,
  jsonForScript,
} from './format.ts';
import { buildModelCard, cardToHtml, cardToMarkdown } from './model-card.ts';
import { parseReportInput, type ReportInput, type ReportInputDraft } from './schema.ts';

export const CHART_IDS = ['chart-auc', 'chart-epsilon', 'chart-roc', 'chart-pr', 'chart-lift', 'chart-calibration'] as const;

/** Okabe–Ito palette: distinguishable with the common colour-vision deficiencies. */
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#8C6D1F', '#000000'];

let chartJsCache: string | undefined;

/** The Chart.js UMD bundle, located next to the package's resolved entry point. */
export function chartJsSource(): string {
  if (chartJsCache !== undefined) return chartJsCache;
  const require = createRequire(import.meta.url);
  let path: string;
  try {
    path = join(dirname(require.resolve('chart.js')), 'chart.umd.js');
    chartJsCache = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FedmarkError(
      'REPORT_CHARTJS_MISSING',
      `cannot read the Chart.js UMD build (chart.js/dist/chart.umd.js): ${(err as Error).message}`,
    );
  }
  // An inline script ends at the first "</script"; the bundle has none today, but never trust that.
  chartJsCache = chartJsCache.replace(/<\/(script)/gi, '<\\/$1');
  return chartJsCache;
}

function cspHash(script: string): string {
  return `'sha256-${createHash('sha256').update(script, 'utf8').digest('base64')}'`;
}

/** Keeps at most `max` points (first and last always kept) so a 1,000-bin ROC stays light. */
function thin<T>(points: T[], max: number): T[] {
  if (points.length <= max) return points;
  const step = (points.length - 1) / (max - 1);
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(points[Math.round(i * step)]);
  return out;
}

const nullIfNaN = (x: number | undefined): number | null => (x === undefined || !Number.isFinite(x) ? null : x);

function chartData(input: ReportInput) {
  const ev = input.evaluation;
  const rounds = [...input.roundMetrics].sort((a, b) => a.round - b.round);
  return {
    rounds: rounds.map((r) => ({ round: r.round, auc: nullIfNaN(r.auc), logLoss: nullIfNaN(r.logLoss) })),
    epsilon: input.privacy.map((p, i) => ({
      name: p.partner,
      color: PALETTE[i % PALETTE.length],
      points: [...p.epsilonByRound].sort((a, b) => a.round - b.round).map((e) => ({ x: e.round, y: e.epsilon })),
      budget: p.maxEpsilon,
    })),
    maxRound: Math.max(input.job.rounds, ...rounds.map((r) => r.round), ...input.privacy.flatMap((p) => p.epsilonByRound.map((e) => e.round))),
    roc: thin(ev.roc, 400).map((p) => ({ x: nullIfNaN(p.fpr), y: nullIfNaN(p.tpr) })),
    pr: thin(ev.pr, 400).map((p) => ({ x: nullIfNaN(p.recall), y: nullIfNaN(p.precision) })),
    baseRate: nullIfNaN(ev.baseRate),
    lift: {
      labels: ev.lift.map((r) => `${Math.round(r.fraction * 100)}%`),
      lift: ev.lift.map((r) => nullIfNaN(r.lift)),
      gain: ev.lift.map((r) => nullIfNaN(r.gain)),
    },
    calibration: ev.calibration.map((b) => ({ x: nullIfNaN(b.meanPredicted), y: nullIfNaN(b.observedRate), count: b.count })),
  };
}

/** Runs in the page: builds the five charts from the JSON block. Plain ES2017, no template data. */
const CHART_SCRIPT = `(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.color = '#374151';
  Chart.defaults.plugins.legend.labels.boxWidth = 14;
  function axis(title, extra) {
    var a = { title: { display: true, text: title, font: { weight: '600' } }, grid: { color: '#e5e7eb' } };
    for (var k in extra) a[k] = extra[k];
    return a;
  }
  var pct = function (v) { return Math.round(v * 100) + ' %'; };

  new Chart(document.getElementById('chart-auc'), {
    type: 'line',
    data: {
      labels: D.rounds.map(function (r) { return r.round; }),
      datasets: [
        { label: 'Global AUC', data: D.rounds.map(function (r) { return r.auc; }), borderColor: '#0072B2', backgroundColor: '#0072B2', yAxisID: 'y', tension: 0.2, pointRadius: 3 },
        { label: 'Log loss', data: D.rounds.map(function (r) { return r.logLoss; }), borderColor: '#D55E00', backgroundColor: '#D55E00', borderDash: [5, 4], yAxisID: 'y1', tension: 0.2, pointRadius: 2, hidden: D.rounds.every(function (r) { return r.logLoss === null; }) }
      ]
    },
    options: { scales: { x: axis('Round'), y: axis('ROC AUC'), y1: axis('Log loss', { position: 'right', grid: { drawOnChartArea: false } }) } }
  });

  var epsSets = [];
  var budgets = {};
  D.epsilon.forEach(function (p) {
    epsSets.push({ label: p.name, data: p.points, borderColor: p.color, backgroundColor: p.color, stepped: false, pointRadius: 2, tension: 0 });
    (budgets[p.budget] = budgets[p.budget] || []).push(p);
  });
  Object.keys(budgets).forEach(function (b) {
    var group = budgets[b];
    var same = Object.keys(budgets).length === 1;
    epsSets.push({
      label: same ? 'ε budget' : 'ε budget (' + group.map(function (p) { return p.name; }).join(', ') + ')',
      data: [{ x: 0, y: Number(b) }, { x: D.maxRound, y: Number(b) }],
      borderColor: same ? '#B91C1C' : group[0].color, borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, fill: false
    });
  });
  new Chart(document.getElementById('chart-epsilon'), {
    type: 'line',
    data: { datasets: epsSets },
    options: { scales: { x: axis('Round', { type: 'linear', min: 0, max: D.maxRound, ticks: { precision: 0 } }), y: axis('Cumulative ε', { beginAtZero: true }) } }
  });

  new Chart(document.getElementById('chart-roc'), {
    type: 'scatter',
    data: { datasets: [
      { label: 'Model', data: D.roc, showLine: true, borderColor: '#0072B2', backgroundColor: 'rgba(0,114,178,0.08)', fill: true, pointRadius: 0, borderWidth: 2 },
      { label: 'Random', data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, borderColor: '#9ca3af', borderDash: [5, 4], pointRadius: 0, borderWidth: 1 }
    ] },
    options: { scales: { x: axis('False-positive rate', { min: 0, max: 1 }), y: axis('True-positive rate', { min: 0, max: 1 }) } }
  });

  new Chart(document.getElementById('chart-pr'), {
    type: 'scatter',
    data: { datasets: [
      { label: 'Model', data: D.pr, showLine: true, borderColor: '#E69F00', backgroundColor: '#E69F00', pointRadius: 0, borderWidth: 2 },
      { label: 'Base rate (random)', data: [{ x: 0, y: D.baseRate }, { x: 1, y: D.baseRate }], showLine: true, borderColor: '#9ca3af', borderDash: [5, 4], pointRadius: 0, borderWidth: 1 }
    ] },
    options: { scales: { x: axis('Recall', { min: 0, max: 1 }), y: axis('Precision', { min: 0, max: 1 }) } }
  });

  new Chart(document.getElementById('chart-lift'), {
    type: 'bar',
    data: {
      labels: D.lift.labels,
      datasets: [
        { type: 'line', label: 'Cumulative gain (model)', data: D.lift.gain, borderColor: '#009E73', backgroundColor: '#009E73', yAxisID: 'y1', pointRadius: 3, order: 0 },
        { type: 'line', label: 'Cumulative gain (random)', data: D.lift.labels.map(function (_, i) { return (i + 1) / D.lift.labels.length; }), borderColor: '#9ca3af', borderDash: [5, 4], yAxisID: 'y1', pointRadius: 0, order: 1 },
        { type: 'bar', label: 'Lift per decile', data: D.lift.lift, backgroundColor: 'rgba(0,114,178,0.55)', yAxisID: 'y', order: 2 }
      ]
    },
    options: { scales: {
      x: axis('Top share of rows by score', { ticks: { maxRotation: 0, autoSkip: false } }),
      y: axis('Lift (× base rate)', { beginAtZero: true }),
      y1: axis('Share of positives captured', { position: 'right', min: 0, max: 1, ticks: { callback: pct }, grid: { drawOnChartArea: false } })
    } }
  });

  new Chart(document.getElementById('chart-calibration'), {
    type: 'scatter',
    data: { datasets: [
      { label: 'Observed rate', data: D.calibration, showLine: true, borderColor: '#CC79A7', backgroundColor: '#CC79A7', pointRadius: 4 },
      { label: 'Perfect calibration', data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, borderColor: '#9ca3af', borderDash: [5, 4], pointRadius: 0, borderWidth: 1 }
    ] },
    options: {
      scales: { x: axis('Mean predicted probability', { min: 0, max: 1 }), y: axis('Observed positive rate', { min: 0, max: 1 }) },
      plugins: { tooltip: { callbacks: { afterLabel: function (c) { return c.raw && c.raw.count !== undefined ? 'rows: ' + Math.round(c.raw.count) : ''; } } } }
    }
  });
  document.documentElement.setAttribute('data-charts-ready', 'true');
})();`;

const STYLE = `
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --card:#fff; --accent:#0072B2; --ok:#047857; --warn:#b45309; --bad:#b91c1c; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font: 14px/1.5 "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 32px 48px; }
header.top { background: linear-gradient(120deg, #0b3b5c, #0072B2); color:#fff; }
header.top .inner { max-width:1160px; margin:0 auto; padding:26px 32px 22px; }
header.top h1 { margin:0 0 4px; font-size:24px; font-weight:650; letter-spacing:.2px; }
header.top .meta { color:#dbeafe; font-size:13px; }
.badges { margin-top:12px; display:flex; flex-wrap:wrap; gap:8px; }
.badge { display:inline-block; padding:3px 10px; border-radius:999px; font-size:12px; font-weight:600; background:#e0f2fe; color:#075985; }
.badge.ok { background:#d1fae5; color:var(--ok); } .badge.warn { background:#fef3c7; color:var(--warn); } .badge.bad { background:#fee2e2; color:var(--bad); }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:20px 24px; margin:18px 0; }
section h2 { margin:0 0 12px; font-size:18px; font-weight:650; }
section h3 { margin:18px 0 8px; font-size:15px; font-weight:650; }
p.note { color:var(--muted); font-size:13px; margin:6px 0 0; }
.kpis { display:grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap:12px; margin-top:-4px; }
.kpi { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.kpi .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
.kpi .value { font-size:24px; font-weight:650; font-variant-numeric: tabular-nums; margin-top:2px; }
.kpi .sub { color:var(--muted); font-size:12px; }
dl.facts { display:grid; grid-template-columns: max-content 1fr; gap:6px 18px; margin:0; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; overflow-wrap:anywhere; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:7px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f1f5f9; font-weight:600; color:#334155; white-space:nowrap; }
tbody tr:nth-child(even) td { background:#fafbfc; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
td.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:12px; overflow-wrap:anywhere; }
tr.flagged td { background:#fff7ed !important; }
.pill { padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; white-space:nowrap; }
.pill.ok { background:#d1fae5; color:var(--ok); } .pill.warn { background:#fef3c7; color:var(--warn); } .pill.bad { background:#fee2e2; color:var(--bad); } .pill.na { background:#f3f4f6; color:var(--muted); }
.charts { display:grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap:18px; }
figure { margin:0; }
figure .chart-box { position:relative; height:300px; }
figcaption { font-weight:600; font-size:14px; margin-bottom:8px; }
.callout { border-left:4px solid var(--warn); background:#fffbeb; padding:10px 14px; border-radius:6px; margin:10px 0; }
.callout.bad { border-color:var(--bad); background:#fef2f2; }
.callout.ok { border-color:var(--ok); background:#ecfdf5; }
footer { color:var(--muted); font-size:12px; text-align:center; margin-top:24px; }
.model-card h3:first-child { margin-top:0; }
@media print { body { background:#fff; } section, .kpi { break-inside: avoid; } header.top { print-color-adjust: exact; -webkit-print-color-adjust: exact; } }
`;

interface TableOptions {
  numeric?: boolean[];
  /** Columns shown in a monospace font (key ids). */
  mono?: boolean[];
  rowClass?: (i: number) => string;
  /** Cells are pre-built HTML, assembled by the caller from escaped parts. */
  raw?: boolean;
}

function table(head: string[], rows: string[][], opts: TableOptions = {}): string {
  const cell = (c: string) => (opts.raw ? c : escapeHtml(c));
  const cls = (i: number) => (opts.numeric?.[i] ? ' class="num"' : opts.mono?.[i] ? ' class="mono"' : '');
  return `<div class="table-wrap"><table><thead><tr>${head
    .map((h, i) => `<th${cls(i)}>${escapeHtml(h)}</th>`)
    .join('')}</tr></thead><tbody>${rows
    .map((r, ri) => {
      const rc = opts.rowClass?.(ri);
      return `<tr${rc ? ` class="${rc}"` : ''}>${r.map((c, i) => `<td${cls(i)}>${cell(c)}</td>`).join('')}</tr>`;
    })
    .join('')}</tbody></table></div>`;
}

function pill(kind: 'ok' | 'warn' | 'bad' | 'na', text: string): string {
  return `<span class="pill ${kind}">${escapeHtml(text)}</span>`;
}

function chartFigure(id: string, caption: string, note: string): string {
  return `<figure><figcaption>${escapeHtml(caption)}</figcaption><div class="chart-box"><canvas id="${id}" role="img" aria-label="${escapeHtml(caption)}"></canvas></div><p class="note">${escapeHtml(note)}</p></figure>`;
}

/** Renders the report. Validates `input` (throws FedmarkError REPORT_INVALID_INPUT). */
export function renderReport(draft: ReportInputDraft | ReportInput): string {
  const input = parseReportInput(draft);
  const { job, evaluation: ev } = input;
  const generatedAt = input.generatedAt ?? new Date().toISOString();
  const card = buildModelCard({ ...input, generatedAt });
  const top = ev.lift[0];

  const privacyRows = input.privacy.map((p) => {
    const eps = finalEpsilon(p.epsilonByRound);
    return { p, eps, over: eps > p.maxEpsilon, share: eps / p.maxEpsilon };
  });
  const maxEps = privacyRows.reduce((m, r) => Math.max(m, r.eps), 0);
  const overBudget = privacyRows.filter((r) => r.over);
  const flaggedGroups = ev.segments.flatMap((s) => s.groups.filter((g) => g.flagged).map((g) => ({ s, g })));
  const totalUsed = input.partners.reduce((a, p) => a + p.rowsUsed, 0);
  const totalConsent = input.partners.reduce((a, p) => a + p.rowsExcludedConsent, 0);
  const totalWithdrawn = input.partners.reduce((a, p) => a + p.rowsExcludedWithdrawn, 0);

  const badges: string[] = [];
  if (input.audit) {
    badges.push(
      input.audit.ok
        ? '<span class="badge ok">Audit: ledger verified</span>'
        : `<span class="badge bad">Audit: ${input.audit.findings.length} finding(s)</span>`,
    );
  } else badges.push('<span class="badge warn">Audit: not attached</span>');
  badges.push(
    input.encryption.scheme === 'ckks'
      ? '<span class="badge ok">Updates CKKS-encrypted</span>'
      : '<span class="badge bad">Updates NOT encrypted (plain-insecure)</span>',
  );
  badges.push(
    overBudget.length
      ? `<span class="badge bad">ε budget exceeded by ${overBudget.length} partner(s)</span>`
      : '<span class="badge ok">All partners within ε budget</span>',
  );
  badges.push(
    flaggedGroups.length
      ? `<span class="badge warn">Fairness: ${flaggedGroups.length} group(s) below four-fifths</span>`
      : `<span class="badge ok">Fairness: ${ev.segments.length ? 'no group below four-fifths' : 'no segments declared'}</span>`,
  );

  const kpis = [
    ['Final AUC', 'final-auc', fmt(ev.auc, 4), `n = ${fmtInt(ev.n)} hold-out rows`],
    ['Log loss', 'final-logloss', fmt(ev.logLoss, 4), `Brier <span id="final-brier">${escapeHtml(fmt(ev.brier, 4))}</span>`],
    ['Top-decile lift', 'top-decile-lift', top ? fmt(top.cumulativeLift, 2) : 'n/a', `captures ${escapeHtml(top ? fmtPct(top.gain) : 'n/a')} of positives`],
    ['Max ε spent', 'max-epsilon', fmtEpsilon(maxEps), 'rounded up, any partner'],
    ['Rows used', 'total-rows', fmtInt(totalUsed), `${input.partners.length} partners`],
  ]
    .map(
      ([label, id, value, sub]) =>
        `<div class="kpi"><div class="label">${escapeHtml(label)}</div><div class="value" id="${id}">${escapeHtml(value)}</div><div class="sub">${sub}</div></div>`,
    )
    .join('');

  const jobFacts: [string, string][] = [
    ['Job id', job.jobId],
    ['Dataset', job.dataset],
    ['Model', describeModelSpec(job.modelSpec)],
    ['Rounds', String(job.rounds)],
    ['Strategy', job.strategy],
    ['Created', job.createdAt],
    ['Finished', job.finishedAt ?? 'not finished'],
    ...(job.owner ? ([['Owner', job.owner]] as [string, string][]) : []),
    ['Report generated', generatedAt],
  ];

  const partnersTable = table(
    ['Partner', 'Key id', 'Rows used', 'Excluded: no consent', 'Excluded: withdrawn'],
    [
      ...input.partners.map((p) => [
        escapeHtml(p.name),
        escapeHtml(p.keyId),
        escapeHtml(fmtInt(p.rowsUsed)),
        escapeHtml(fmtInt(p.rowsExcludedConsent)),
        escapeHtml(fmtInt(p.rowsExcludedWithdrawn)),
      ]),
      ['<strong>Total</strong>', '', escapeHtml(fmtInt(totalUsed)), escapeHtml(fmtInt(totalConsent)), escapeHtml(fmtInt(totalWithdrawn))],
    ],
    { numeric: [false, false, true, true, true], mono: [false, true], raw: true },
  );

  const privacyTable = table(
    ['Partner', 'ε spent', 'δ', 'ε budget', 'Budget used', 'Noise σ', 'Clip C', 'Accountant', 'Status'],
    privacyRows.map(({ p, eps, over, share }) => [
      escapeHtml(p.partner),
      escapeHtml(fmtEpsilon(eps)),
      escapeHtml(fmtDelta(p.delta)),
      escapeHtml(fmtEpsilon(p.maxEpsilon)),
      escapeHtml(fmtPct(share)),
      escapeHtml(p.noiseMultiplier !== undefined ? fmt(p.noiseMultiplier, 3) : '—'),
      escapeHtml(p.clipNorm !== undefined ? fmt(p.clipNorm, 3) : '—'),
      escapeHtml(p.accountant ?? '—'),
      over ? pill('bad', 'over budget') : share > 0.9 ? pill('warn', 'near budget') : pill('ok', 'within budget'),
    ]),
    { numeric: [false, true, true, true, true, true, true, false, false], raw: true },
  );
  const missingPrivacy = input.partners.filter((p) => !input.privacy.some((q) => q.partner === p.name));

  const fairnessRows: { html: string[]; flagged: boolean }[] = [];
  for (const seg of ev.segments) {
    for (const g of seg.groups) {
      const status = g.flagged
        ? pill('warn', 'below 0.8')
        : Number.isFinite(g.disparateImpact)
          ? pill('ok', g.group === seg.referenceGroup ? 'reference' : 'ok')
          : pill('na', 'n/a');
      fairnessRows.push({
        flagged: g.flagged,
        html: [
          escapeHtml(seg.segment),
          escapeHtml(g.group),
          escapeHtml(fmtInt(g.count)),
          escapeHtml(fmtPct(g.baseRate)),
          escapeHtml(fmtPct(g.selectionRate)),
          escapeHtml(fmtPct(g.tpr)),
          escapeHtml(fmtPct(g.fpr)),
          escapeHtml(fmt(g.auc, 3)),
          `<strong>${escapeHtml(fmt(g.disparateImpact, 2))}</strong>`,
          status,
        ],
      });
    }
  }
  const fairnessSection = ev.segments.length
    ? `${
        flaggedGroups.length
          ? `<div class="callout"><strong>Warning:</strong> ${flaggedGroups.length} group(s) have a selection rate below 80 % of the best-treated group in their segment: ${flaggedGroups
              .map(({ s, g }) => `${escapeHtml(s.segment)} = ${escapeHtml(g.group)} (${escapeHtml(fmt(g.disparateImpact, 2))})`)
              .join('; ')}. Review before deployment.</div>`
          : '<div class="callout ok">No group falls below the four-fifths threshold.</div>'
      }${table(
        ['Segment', 'Group', 'Rows', 'Base rate', 'Selected', 'TPR', 'FPR', 'AUC', 'Disparate impact', 'Four-fifths'],
        fairnessRows.map((r) => r.html),
        { numeric: [false, false, true, true, true, true, true, true, true, false], raw: true, rowClass: (i) => (fairnessRows[i].flagged ? 'flagged' : '') },
      )}<p class="note">Selected = share scored at or above ${escapeHtml(fmt(ev.threshold, 2))}. Disparate impact = a group’s selection rate ÷ the highest selection rate in its segment; below 0.8 fails the four-fifths screen (29 C.F.R. § 1607.4(D)). Rates are exact; per-group AUC is binned (${ev.bins} bins).</p>`
    : '<p>No sensitive segments were declared for this job, so no fairness metrics were computed.</p>';

  const liftTable = table(
    ['Top share', 'Rows', 'Positives', 'Response rate', 'Lift', 'Cumulative lift', 'Cumulative gain'],
    ev.lift.map((r) => [
      fmtPct(r.fraction, 0),
      fmtInt(r.count),
      fmt(r.positives, 1),
      fmtPct(r.responseRate),
      fmt(r.lift, 2),
      fmt(r.cumulativeLift, 2),
      fmtPct(r.gain),
    ]),
    { numeric: [false, true, true, true, true, true, true] },
  );

  const enc = input.encryption;
  const encFacts: [string, string][] = [
    ['Scheme', enc.scheme === 'ckks' ? 'CKKS (node-seal / Microsoft SEAL)' : 'plain-insecure (no encryption)'],
    ['Polynomial modulus degree N', fmtInt(enc.polyModulusDegree)],
    ['Coefficient modulus bits', `[${enc.coeffModulusBits.join(', ')}] (total ${enc.coeffModulusBits.reduce((a, b) => a + b, 0)})`],
    ...(enc.scaleBits !== undefined ? ([['Scale', `2^${enc.scaleBits}`]] as [string, string][]) : []),
    ...(enc.securityLevel !== undefined ? ([['Security level', `${enc.securityLevel}-bit`]] as [string, string][]) : []),
    ['Wire size', `${fmt(enc.bytesPerParam, 2)} bytes per parameter`],
  ];

  let auditHtml: string;
  if (!input.audit) {
    auditHtml = '<div class="callout">No audit result is attached. Run <code>fedmark audit</code> on the ledger to verify the hash chain, signatures and ε.</div>';
  } else {
    const a = input.audit;
    auditHtml = `${
      a.ok
        ? '<div class="callout ok"><strong>Ledger verified:</strong> hash chain, signatures and recomputed ε all agree.</div>'
        : `<div class="callout bad"><strong>Audit failed:</strong> ${a.findings.length} finding(s).</div>`
    }${
      a.summary
        ? `<dl class="facts">${Object.entries(a.summary)
            .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(String(v))}</dd>`)
            .join('')}</dl>`
        : ''
    }${
      a.findings.length
        ? `<h3>Findings</h3>${table(
            ['Entry', 'Code', 'Message'],
            a.findings.map((f) => [f.entry !== undefined ? String(f.entry) : '—', f.code, f.message]),
            { numeric: [true, false, false] },
          )}`
        : ''
    }`;
  }

  const data = jsonForScript(chartData(input));
  const chartJs = chartJsSource();
  const csp = `default-src 'none'; script-src ${cspHash(chartJs)} ${cspHash(CHART_SCRIPT)}; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'`;
  const title = `Compliance report — ${job.jobId}`;

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
${overBudget.length ? `<div class="callout bad"><strong>Budget exceeded:</strong> ${overBudget.map((r) => escapeHtml(r.p.partner)).join(', ')} spent more ε than their budget allows.</div>` : ''}
${missingPrivacy.length ? `<div class="callout bad"><strong>No privacy accounting reported</strong> for ${missingPrivacy.map((p) => escapeHtml(p.name)).join(', ')}.</div>` : ''}
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
