import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { FedmarkError } from '../../errors.ts';
import { escapeHtml } from '../format.ts';
import { STYLE } from './style.ts';
import type { ReportInput } from '../schema.ts';

/** The report's charts: the Chart.js bundle inlined, the data behind them, and the script that draws them. */

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
    throw new FedmarkError('REPORT_CHARTJS_MISSING', `cannot read the Chart.js UMD build (chart.js/dist/chart.umd.js): ${(err as Error).message}`);
  }
  // An inline script ends at the first "</script"; the bundle has none today, but never trust that.
  chartJsCache = chartJsCache.replace(/<\/(script)/gi, '<\\/$1');
  return chartJsCache;
}

export function cspHash(script: string): string {
  return `'sha256-${createHash('sha256').update(script, 'utf8').digest('base64')}'`;
}

/**
 * The start of an offline report page, up to its <body>: a Content-Security-Policy that admits
 * only `scripts` (the inline ones the page will carry) by hash and forbids every network fetch,
 * and the inline style.
 */
export function reportHead(title: string, scripts: string[]): string {
  const csp = `default-src 'none'; script-src ${scripts.map(cspHash).join(' ')}; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'`;
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
<body>`;
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

export function chartData(input: ReportInput) {
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
export const CHART_SCRIPT = `(function () {
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

export function chartFigure(id: string, caption: string, note: string): string {
  return `<figure><figcaption>${escapeHtml(caption)}</figcaption><div class="chart-box"><canvas id="${id}" role="img" aria-label="${escapeHtml(caption)}"></canvas></div><p class="note">${escapeHtml(note)}</p></figure>`;
}
