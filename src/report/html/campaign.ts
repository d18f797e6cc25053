/**
 * The campaign section of a report: a scoring run (who was scored and who was not, the top-k
 * list's selection by sensitive segment, the offers-by-tenure check) and a campaign's measured
 * uplift (rates per arm, uplift with its interval, per decile and for the top deciles, with a
 * chart). Rendered into the compliance report (../html.ts, when the input has a `campaign`) and into
 * the stand-alone campaign report (../campaign-report.ts). All text from the input is escaped.
 */
import type { ScoreRunSummary } from '../../scoring/batch.ts';
import type { UpliftEstimate, UpliftResult } from '../../scoring/uplift.ts';
import { z } from 'zod';
import { escapeHtml, fmt, fmtInt, fmtPct } from '../format.ts';

export interface CampaignScoring extends ScoreRunSummary {
  runId?: string;
  purpose?: string;
}

export interface CampaignUplift extends UpliftResult {
  scores?: string;
  outcomes?: string;
  matched?: number;
  unmatched?: number;
  invalid?: number;
  partners?: number;
}

export interface CampaignInput {
  scoring?: CampaignScoring;
  uplift?: CampaignUplift;
}

// What rendering reads, checked before rendering (extra fields pass): a summary of the wrong kind
// is refused with the path of the first missing field, not rendered into a broken page.
const num = z.number();
const nullableNum = z.number().nullable();
const interval = z.looseObject({ lower: num, upper: num }).nullable();
const arm = z.looseObject({ n: num, responders: num, rate: nullableNum, interval });
const estimate = { treatment: arm, control: arm, uplift: nullableNum, interval, incrementalResponders: nullableNum };
const scoringSchema = z.looseObject({
  model: z.looseObject({
    kind: z.string(),
    hash: z.string(),
    jobId: z.string().nullable(),
    baseline: z.string(),
    attribution: z.looseObject({ method: z.string(), exact: z.boolean(), maxCompletenessGap: num }),
  }),
  rows: z.looseObject({ read: num, scored: num, excludedNoConsent: num, excludedWithdrawn: num, rejected: num }),
  output: z.looseObject({ mode: z.enum(['all', 'top-k']), rows: num, sha256: z.string() }),
  finishedAt: z.string(),
  topK: z.looseObject({ selected: num, rankedBy: z.string(), valueColumn: z.string().nullable(), expectedValueAtRisk: nullableNum }).nullable(),
  fairness: z
    .looseObject({
      selection: z.array(
        z.looseObject({
          segment: z.string(),
          referenceGroup: z.string().nullable(),
          groups: z.array(
            z.looseObject({ group: z.string(), scored: num, selected: num, selectionRate: nullableNum, disparateImpact: nullableNum, flagged: z.boolean() }),
          ),
        }),
      ),
    })
    .nullable(),
  loyalty: z
    .looseObject({
      offerColumn: z.string(),
      flagged: z.boolean(),
      verdict: z.string(),
      alpha: num,
      margin: num,
      unstratifiedDifference: nullableNum,
      newCustomers: z.looseObject({ definition: z.string(), n: num, meanOffer: nullableNum }),
      longTenure: z.looseObject({ definition: z.string(), n: num, meanOffer: nullableNum }),
      stratified: z.looseObject({ difference: nullableNum, standardError: nullableNum, pValue: nullableNum }),
    })
    .nullable(),
});
const upliftSchema = z.looseObject({
  confidence: num,
  method: z.string(),
  overall: z.looseObject(estimate),
  byDecile: z.array(z.looseObject({ decile: num, ...estimate })),
  cumulative: z.array(z.looseObject({ topDeciles: num, ...estimate })),
  treatmentShare: z.array(nullableNum),
});

export const campaignInputSchema = z.strictObject({ scoring: scoringSchema.optional(), uplift: upliftSchema.optional() });

export const CAMPAIGN_CHART_IDS = ['chart-uplift-decile', 'chart-uplift-cumulative'] as const;

function table(head: string[], rows: string[][], numeric: boolean[], rowClass?: (i: number) => string): string {
  return `<div class="table-wrap"><table><thead><tr>${head.map((h, i) => `<th${numeric[i] ? ' class="num"' : ''}>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map(
      (r, ri) => `<tr${rowClass?.(ri) ? ` class="${rowClass(ri)}"` : ''}>${r.map((c, i) => `<td${numeric[i] ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`,
    )
    .join('')}</tbody></table></div>`;
}

const e = (s: string): string => escapeHtml(s);
const pp = (x: number | null | undefined): string =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} pp`;

function scoringHtml(s: CampaignScoring): string {
  const r = s.rows;
  const facts: [string, string][] = [
    ['Run', s.runId ?? '—'],
    ['Model', `${s.model.kind} ${s.model.hash.slice(0, 16)}…${s.model.jobId ? ` (job ${s.model.jobId})` : ''}`],
    ['Purpose', s.purpose ?? s.model.purpose ?? '—'],
    ['Rows read', fmtInt(r.read)],
    ['Scored', fmtInt(r.scored)],
    ['Not scored: no consent', fmtInt(r.excludedNoConsent)],
    ['Not scored: consent withdrawn', fmtInt(r.excludedWithdrawn)],
    ['Not scored: bad rows', fmtInt(r.rejected)],
    [
      'Output',
      `${s.output.mode === 'top-k' ? `early-warning list of ${fmtInt(s.output.rows)}` : `${fmtInt(s.output.rows)} rows`}, sha256 ${s.output.sha256.slice(0, 16)}…`,
    ],
    [
      'Reason codes',
      `${s.model.attribution.method}${s.model.attribution.exact ? ' (exact)' : ''}; baseline: ${s.model.baseline}; completeness gap ≤ ${s.model.attribution.maxCompletenessGap.toExponential(1)}`,
    ],
    ['Finished', s.finishedAt],
  ];
  let html = `<dl class="facts">${facts.map(([k, v]) => `<dt>${e(k)}</dt><dd>${e(v)}</dd>`).join('')}</dl>`;
  if (s.topK) {
    html += `<p>The early-warning list holds the <strong>${e(fmtInt(s.topK.selected))}</strong> highest-ranked customers by ${e(s.topK.rankedBy === 'expected-value' ? `expected value at risk (probability × ${s.topK.valueColumn})` : 'probability')}${s.topK.expectedValueAtRisk !== null ? `; expected value at risk ${e(fmt(s.topK.expectedValueAtRisk, 2))}` : ''}.</p>`;
  }
  if (s.fairness) {
    const flagged = s.fairness.selection.flatMap((seg) =>
      seg.groups.filter((g) => g.flagged).map((g) => `${seg.segment} = ${g.group} (${fmt(g.disparateImpact ?? NaN, 2)})`),
    );
    html += flagged.length
      ? `<div class="callout"><strong>Selection below four-fifths:</strong> ${e(flagged.join('; '))}. Review the list before the campaign runs.</div>`
      : '<div class="callout ok">No group’s selection rate into the list is below 80 % of the best-treated group in its segment.</div>';
    const rows: { cells: string[]; flagged: boolean }[] = s.fairness.selection.flatMap((seg) =>
      seg.groups.map((g) => ({
        flagged: g.flagged,
        cells: [
          e(seg.segment),
          e(g.group),
          e(fmtInt(g.scored)),
          e(fmtInt(g.selected)),
          e(g.selectionRate === null ? 'n/a' : fmtPct(g.selectionRate)),
          `<strong>${e(g.disparateImpact === null ? 'n/a' : fmt(g.disparateImpact, 2))}</strong>`,
          e(g.flagged ? 'below 0.8' : g.group === seg.referenceGroup ? 'reference' : 'ok'),
        ],
      })),
    );
    html += table(
      ['Segment', 'Group', 'Scored', 'Selected', 'Selection rate', 'Disparate impact', 'Four-fifths'],
      rows.map((x) => x.cells),
      [false, false, true, true, true, true, false],
      (i) => (rows[i].flagged ? 'flagged' : ''),
    );
    html +=
      '<p class="note">Selection rate = share of the group’s scored customers on the list; disparate impact = that rate ÷ the highest rate in the segment (29 C.F.R. § 1607.4(D) screen). Segments are the schema’s declared sensitive columns.</p>';
  }
  if (s.loyalty) {
    const l = s.loyalty;
    html += `<h3>Offers by tenure</h3><div class="callout${l.flagged ? '' : ' ok'}">${l.flagged ? '<strong>Flag:</strong> ' : ''}${e(l.verdict)}.</div>`;
    html += table(
      ['Group', 'Definition', 'Customers', `Mean ${l.offerColumn}`],
      [
        ['New', e(l.newCustomers.definition), e(fmtInt(l.newCustomers.n)), e(fmt(l.newCustomers.meanOffer ?? NaN, 3))],
        ['Long tenure', e(l.longTenure.definition), e(fmtInt(l.longTenure.n)), e(fmt(l.longTenure.meanOffer ?? NaN, 3))],
      ],
      [false, false, true, true],
    );
    html += `<p class="note">Risk-stratified difference (long − new, ten score bands, inverse-variance weighted Welch differences): ${e(fmt(l.stratified.difference ?? NaN, 3))}${l.stratified.standardError !== null ? ` ± ${e(fmt(l.stratified.standardError, 3))} (SE)` : ''}, one-sided p = ${e(l.stratified.pValue === null ? 'n/a' : l.stratified.pValue.toExponential(2))}; flagged when p &lt; ${e(String(l.alpha))} and the gap is at least ${e(fmtPct(l.margin, 0))} of the new customers’ mean. Unstratified difference: ${e(fmt(l.unstratifiedDifference ?? NaN, 3))}.</p>`;
  }
  return html;
}

function estimateCells(x: UpliftEstimate): string[] {
  const ci = x.interval ? `${pp(x.interval.lower)} to ${pp(x.interval.upper)}` : 'n/a';
  return [
    e(fmtInt(Math.round(x.treatment.n))),
    e(x.treatment.rate === null ? 'n/a' : fmtPct(x.treatment.rate)),
    e(fmtInt(Math.round(x.control.n))),
    e(x.control.rate === null ? 'n/a' : fmtPct(x.control.rate)),
    `<strong>${e(pp(x.uplift))}</strong>`,
    e(ci),
    e(x.incrementalResponders === null ? 'n/a' : fmt(x.incrementalResponders, 1)),
  ];
}

function upliftHtml(u: CampaignUplift): string {
  const o = u.overall;
  const level = `${Math.round(u.confidence * 100)} %`;
  const sig = o.interval && (o.interval.lower > 0 || o.interval.upper < 0);
  let html = `<p>Treatment response <strong>${e(o.treatment.rate === null ? 'n/a' : fmtPct(o.treatment.rate))}</strong> (${e(fmtInt(Math.round(o.treatment.n)))} customers) vs control <strong>${e(o.control.rate === null ? 'n/a' : fmtPct(o.control.rate))}</strong> (${e(fmtInt(Math.round(o.control.n)))}): uplift <strong id="campaign-uplift">${e(pp(o.uplift))}</strong>, ${e(level)} interval ${e(o.interval ? `${pp(o.interval.lower)} to ${pp(o.interval.upper)}` : 'n/a')}${sig ? '' : ' — the interval includes zero'}.</p>`;
  if (u.partners) html += `<p class="note">${e(String(u.partners))} partners’ noisy counts, summed under encryption; intervals include the noise.</p>`;
  if (u.unmatched || u.invalid)
    html += `<p class="note">Outcome rows without a score: ${e(fmtInt(u.unmatched ?? 0))}; rows with an undeclared arm or outcome: ${e(fmtInt(u.invalid ?? 0))} (both left out).</p>`;
  const head = ['Treated', 'Treated rate', 'Control', 'Control rate', 'Uplift', `${level} interval`, 'Added responses'];
  html += table(
    ['Decile', ...head, 'Treated share'],
    u.byDecile.map((d, i) => [e(String(d.decile)), ...estimateCells(d), e(u.treatmentShare[i] === null ? 'n/a' : fmtPct(u.treatmentShare[i]!))]),
    [true, true, true, true, true, true, false, true, true],
  );
  html += `<div class="charts">${figure(CAMPAIGN_CHART_IDS[0], 'Uplift by score decile', `Bars: ${level} interval; dot: estimate. Decile 1 = highest scores.`)}${figure(CAMPAIGN_CHART_IDS[1], 'Uplift when targeting the top deciles', 'Deciles 1..k together; a falling line means the lower deciles dilute the effect.')}</div>`;
  html += '<h3>Targeting the top deciles</h3>';
  html += table(
    ['Top deciles', ...head],
    u.cumulative.map((c) => [e(`1–${c.topDeciles}`), ...estimateCells(c)]),
    [false, true, true, true, true, true, false, true],
  );
  html += `<p class="note">${e(u.method)}. Treated share per decile checks the randomisation: it should be about the campaign’s treatment share everywhere.</p>`;
  return html;
}

function figure(id: string, caption: string, note: string): string {
  return `<figure><figcaption>${e(caption)}</figcaption><div class="chart-box"><canvas id="${id}" role="img" aria-label="${e(caption)}"></canvas></div><p class="note">${e(note)}</p></figure>`;
}

/** Data for the chart script (percentage points). */
export function campaignChartData(c: CampaignInput): unknown {
  if (!c.uplift) return { uplift: null };
  const toPP = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10000) / 100);
  const series = (list: UpliftEstimate[]) => ({
    point: list.map((x) => toPP(x.uplift)),
    ci: list.map((x) => (x.interval ? [toPP(x.interval.lower), toPP(x.interval.upper)] : null)),
  });
  return {
    uplift: {
      labels: c.uplift.byDecile.map((d) => String(d.decile)),
      byDecile: series(c.uplift.byDecile),
      cumulativeLabels: c.uplift.cumulative.map((d) => `1–${d.topDeciles}`),
      cumulative: series(c.uplift.cumulative),
    },
  };
}

/** Runs in the page (plain ES2017); reads the JSON block `campaign-data`. */
export const CAMPAIGN_CHART_SCRIPT = `(function () {
  'use strict';
  var el = document.getElementById('campaign-data');
  if (!el || typeof Chart === 'undefined') return;
  var D = JSON.parse(el.textContent);
  if (!D.uplift) return;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  function chart(id, labels, s, xTitle) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: 'bar',
      data: {
        labels: labels,
        datasets: [
          { type: 'bar', label: 'interval', data: s.ci, backgroundColor: 'rgba(0,114,178,0.25)', borderColor: '#0072B2', borderWidth: 1, barPercentage: 0.45, order: 2 },
          { type: 'line', label: 'uplift', data: s.point, showLine: xTitle !== 'Decile', borderColor: '#D55E00', backgroundColor: '#D55E00', pointRadius: 5, order: 1 }
        ]
      },
      options: { scales: { x: { title: { display: true, text: xTitle } }, y: { title: { display: true, text: 'Uplift (percentage points)' } } } }
    });
  }
  chart('${CAMPAIGN_CHART_IDS[0]}', D.uplift.labels, D.uplift.byDecile, 'Decile');
  chart('${CAMPAIGN_CHART_IDS[1]}', D.uplift.cumulativeLabels, D.uplift.cumulative, 'Top deciles');
})();`;

/** The section's HTML (without the chart script and data block, which the page adds once). */
export function renderCampaignSection(c: CampaignInput): string {
  const parts: string[] = [];
  if (c.scoring) parts.push(`<h3>Scoring run</h3>${scoringHtml(c.scoring)}`);
  if (c.uplift) parts.push(`<h3>Measured uplift</h3>${upliftHtml(c.uplift)}`);
  return `<section id="campaign"><h2>Campaign</h2>${parts.join('') || '<p>No campaign data.</p>'}</section>`;
}
