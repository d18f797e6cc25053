import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { buildEvalHistograms, histogramLayout, metricsFromHistograms, sumHistograms } from '../../src/metrics/histogram.ts';
import { accuracy, auc, brier, calibrationBins, liftAtTopFraction, logLoss } from '../../src/metrics/classification.ts';
import { fairnessMetrics } from '../../src/metrics/fairness.ts';
import { createRng, type Rng } from '../../src/util/rng.ts';
import { FedmarkError } from '../../src/errors.ts';

const SEGMENTS = { age: ['18-34', '35-54', '55+'], region: ['north', 'south'] };

interface Part {
  scores: Float64Array;
  labels: Uint8Array;
  seg: { age: string[]; region: string[] };
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

/**
 * Marketing-like partner data: ~8 % positives, scores squashed towards 0 (skewed), a group effect
 * on both outcome and score so segments differ, and a partner-specific shift (non-IID partners).
 */
function partner(rng: Rng, n: number, shift: number, round?: number): Part {
  const scores = new Float64Array(n);
  const labels = new Uint8Array(n);
  const age: string[] = [];
  const region: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = SEGMENTS.age[rng.int(3)];
    const r = rng.next() < 0.6 ? 'north' : 'south';
    const effect = a === '55+' ? -0.9 : a === '35-54' ? 0.2 : 0;
    const latent = rng.normal();
    labels[i] = rng.next() < sigmoid(-2.6 + 1.4 * latent + effect) ? 1 : 0;
    let s = sigmoid(-2.4 + shift + 1.1 * latent + effect + 0.7 * rng.normal());
    if (round !== undefined) s = Math.round(s * round) / round;
    scores[i] = s;
    age.push(a);
    region.push(r);
  }
  return { scores, labels, seg: { age, region } };
}

function pool(parts: Part[]): Part {
  const n = parts.reduce((k, p) => k + p.scores.length, 0);
  const out: Part = { scores: new Float64Array(n), labels: new Uint8Array(n), seg: { age: [], region: [] } };
  let o = 0;
  for (const p of parts) {
    out.scores.set(p.scores, o);
    out.labels.set(p.labels, o);
    out.seg.age.push(...p.seg.age);
    out.seg.region.push(...p.seg.region);
    o += p.scores.length;
  }
  return out;
}

function trapezoid(points: { fpr: number; tpr: number }[]): number {
  let a = 0;
  for (let i = 1; i < points.length; i++) {
    a += ((points[i].fpr - points[i - 1].fpr) * (points[i].tpr + points[i - 1].tpr)) / 2;
  }
  return a;
}

describe('histogramLayout', () => {
  it('has the documented length and offsets, independent of key order', () => {
    const a = histogramLayout(SEGMENTS, 1000);
    const b = histogramLayout({ region: ['north', 'south'], age: ['18-34', '35-54', '55+'] }, 1000);
    expect(a.length).toBe(2 * 1000 + 3 + 2 * 1000 * 5);
    expect(a.id).toBe(b.id);
    expect(a.segments.map((s) => s.name)).toEqual(['age', 'region']);
    expect(a.sums).toBe(2000);
    expect(a.segments[0].groups[0]).toEqual({ group: '18-34', pos: 2003, neg: 3003 });
    expect(a.segments[1].groups[1].neg).toBe(2003 + 9 * 1000);
    expect(histogramLayout(SEGMENTS, 500).id).not.toBe(a.id);
    expect(histogramLayout({ age: ['55+', '18-34', '35-54'], region: ['north', 'south'] }).id).not.toBe(a.id);
  });

  it('rejects bad declarations', () => {
    expect(() => histogramLayout({}, 1)).toThrow(FedmarkError);
    expect(() => histogramLayout({ age: [] })).toThrow(/declares no groups/);
    expect(() => histogramLayout({ age: ['a', 'a'] })).toThrow(/declares a group twice/);
  });
});

describe('federated evaluation from summed histograms', () => {
  const rng = createRng(20240611);
  const parts = [partner(rng, 4000, 0.3), partner(rng, 3000, -0.2), partner(rng, 2000, 0.6)];
  const pooled = pool(parts);
  const layout = histogramLayout(SEGMENTS, 1000);
  const vectors = parts.map((p) => buildEvalHistograms(p.scores, p.labels, p.seg, layout));
  const summed = sumHistograms(vectors);
  const m = metricsFromHistograms(summed, layout);

  it('summed partner histograms equal the pooled histogram exactly (counts)', () => {
    const direct = buildEvalHistograms(pooled.scores, pooled.labels, pooled.seg, layout);
    // Counts are integers → exact; the two loss sums differ only by float summation order.
    const countsOnly = (v: Float64Array) => [...v.subarray(0, layout.sums), ...v.subarray(layout.sums + 2)];
    expect(countsOnly(summed)).toEqual(countsOnly(direct));
    expect(summed[layout.sums]).toBeCloseTo(direct[layout.sums], 8);
    expect(summed[layout.sums + 1]).toBeCloseTo(direct[layout.sums + 1], 8);
  });

  it('global AUC is within 0.002 of the exact pooled AUC on skewed data (n = 9,000)', () => {
    const exact = auc(pooled.scores, pooled.labels);
    expect(exact).toBeGreaterThan(0.6);
    expect(exact).toBeLessThan(0.95);
    expect(Math.abs(m.auc - exact)).toBeLessThan(0.002);
    expect(m.n).toBe(9000);
    expect(m.positives).toBe(pooled.labels.reduce((a, b) => a + b, 0));
  });

  it('log loss, Brier and accuracy equal the pooled direct values', () => {
    expect(m.logLoss).toBeCloseTo(logLoss(pooled.scores, pooled.labels), 12);
    expect(m.brier).toBeCloseTo(brier(pooled.scores, pooled.labels), 12);
    expect(m.accuracy).toBe(accuracy(pooled.scores, pooled.labels, 0.5));
    expect(m.threshold).toBe(0.5);
  });

  it('ROC runs from (0,0) to (1,1), is monotone, and its trapezoid area is the AUC', () => {
    expect(m.roc[0]).toMatchObject({ fpr: 0, tpr: 0 });
    expect(m.roc[m.roc.length - 1]).toMatchObject({ fpr: 1, tpr: 1 });
    for (let i = 1; i < m.roc.length; i++) {
      expect(m.roc[i].fpr).toBeGreaterThanOrEqual(m.roc[i - 1].fpr);
      expect(m.roc[i].tpr).toBeGreaterThanOrEqual(m.roc[i - 1].tpr);
      expect(m.roc[i].threshold).toBeLessThan(m.roc[i - 1].threshold);
    }
    expect(trapezoid(m.roc)).toBeCloseTo(m.auc, 12);
    expect(m.pr[m.pr.length - 1].recall).toBeCloseTo(1, 12);
    expect(m.pr[m.pr.length - 1].precision).toBeCloseTo(m.baseRate, 12);
  });

  it('lift/gain by decile agrees with the direct top-fraction lift', () => {
    expect(m.lift).toHaveLength(10);
    for (const row of m.lift) {
      const direct = liftAtTopFraction(pooled.scores, pooled.labels, row.fraction);
      expect(row.count).toBeCloseTo(900, 6);
      expect(Math.abs(row.gain - direct.captureRate)).toBeLessThan(0.01);
      expect(Math.abs(row.cumulativeLift - direct.lift)).toBeLessThan(0.05);
    }
    expect(m.lift[9].gain).toBeCloseTo(1, 12);
    expect(m.lift[9].cumulativeLift).toBeCloseTo(1, 12);
    expect(m.lift[0].lift).toBeGreaterThan(2);
    const sumPos = m.lift.reduce((a, r) => a + r.positives, 0);
    expect(sumPos).toBeCloseTo(m.positives, 8);
  });

  it('calibration counts and observed rates equal the direct 10-bin reliability table', () => {
    const direct = calibrationBins(pooled.scores, pooled.labels, 10);
    expect(m.calibration.map((b) => [b.lower, b.count, b.observedRate])).toEqual(direct.map((b) => [b.lower, b.count, b.observedRate]));
    m.calibration.forEach((b, i) => expect(Math.abs(b.meanPredicted - direct[i].meanPredicted)).toBeLessThan(0.0005));
  });

  it('per-segment rates equal a pooled direct computation exactly (AUC up to binning)', () => {
    const direct = fairnessMetrics(pooled.scores, pooled.labels, pooled.seg, { groups: SEGMENTS });
    expect(m.segments.map((s) => s.segment)).toEqual(['age', 'region']);
    expect(m.segments).toHaveLength(direct.length);
    m.segments.forEach((seg, k) => {
      expect(seg.referenceGroup).toBe(direct[k].referenceGroup);
      seg.groups.forEach((g, j) => {
        const d = direct[k].groups[j];
        const { auc: ha, ...hRest } = g;
        const { auc: da, ...dRest } = d;
        expect(hRest).toEqual(dRest);
        expect(Math.abs(ha - da)).toBeLessThan(0.003);
      });
    });
    // The data make the 55+ group less selected; the four-fifths screen must catch it.
    const age = m.segments[0];
    expect(age.groups.find((g) => g.group === '55+')!.flagged).toBe(true);
    expect(age.groups.find((g) => g.group === age.referenceGroup)!.disparateImpact).toBe(1);
  });
});

describe('ties', () => {
  it('scores with many ties (2 decimals): binned AUC equals the exact AUC', () => {
    const rng = createRng(7);
    const parts = [partner(rng, 5000, 0, 100), partner(rng, 4000, 0.4, 100)];
    const pooled = pool(parts);
    const layout = histogramLayout({}, 1000);
    const summed = sumHistograms(parts.map((p) => buildEvalHistograms(p.scores, p.labels, {}, layout)));
    const m = metricsFromHistograms(summed, layout);
    const exact = auc(pooled.scores, pooled.labels);
    // Each bin holds at most one distinct score, so within-bin ties are real ties: exact agreement.
    expect(m.auc).toBeCloseTo(exact, 12);
    expect(new Set(pooled.scores).size).toBeLessThan(101);
  });

  it('coarse bins still stay within 0.002 of exact on tied data', () => {
    const rng = createRng(11);
    const p = partner(rng, 9000, 0.2, 1000);
    const layout = histogramLayout({}, 1000);
    const m = metricsFromHistograms(buildEvalHistograms(p.scores, p.labels, {}, layout), layout);
    expect(Math.abs(m.auc - auc(p.scores, p.labels))).toBeLessThan(0.002);
  });
});

describe('property: k partners summed == pooled (exact counts)', () => {
  it('holds for random small partitions', () => {
    const layout = histogramLayout({ g: ['a', 'b'] }, 20);
    const row = fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 1 }), fc.constantFrom('a', 'b'));
    fc.assert(
      fc.property(fc.array(fc.array(row, { minLength: 1, maxLength: 15 }), { minLength: 1, maxLength: 5 }), (partners) => {
        const build = (rows: [number, number, string][]) =>
          buildEvalHistograms(
            rows.map((r) => r[0]),
            rows.map((r) => r[1]),
            { g: rows.map((r) => r[2]) },
            layout,
          );
        const summed = sumHistograms(partners.map(build));
        const pooledVec = build(partners.flat());
        for (let i = 0; i < layout.length; i++) {
          if (i === layout.sums || i === layout.sums + 1) expect(summed[i]).toBeCloseTo(pooledVec[i], 9);
          else expect(summed[i]).toBe(pooledVec[i]);
        }
        const allRows = partners.flat();
        const exact = auc(
          allRows.map((r) => r[0]),
          allRows.map((r) => r[1]),
        );
        const binned = metricsFromHistograms(summed, layout).auc;
        if (Number.isNaN(exact)) expect(binned).toBeNaN();
        else expect(Number.isFinite(binned)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('robustness', () => {
  const layout = histogramLayout(SEGMENTS, 100);
  const rng = createRng(3);
  const p = partner(rng, 3000, 0);

  it('tolerates noisy (negative, fractional) counts by clamping', () => {
    const v = buildEvalHistograms(p.scores, p.labels, p.seg, layout);
    for (let i = 0; i < v.length; i++) v[i] += 3 * rng.normal();
    const m = metricsFromHistograms(v, layout);
    expect(m.auc).toBeGreaterThanOrEqual(0);
    expect(m.auc).toBeLessThanOrEqual(1);
    expect(Math.abs(m.auc - auc(p.scores, p.labels))).toBeLessThan(0.05);
    for (const pt of m.roc) {
      expect(pt.fpr).toBeGreaterThanOrEqual(0);
      expect(pt.tpr).toBeLessThanOrEqual(1 + 1e-12);
    }
    for (const seg of m.segments) for (const g of seg.groups) expect(g.count).toBeGreaterThan(0);
  });

  it('rejects mismatched vectors, NaN, unknown groups and undeclared segments', () => {
    expect(() => metricsFromHistograms(new Float64Array(5), layout)).toThrow(/layout expects/);
    const nan = new Float64Array(layout.length);
    nan[7] = NaN;
    expect(() => metricsFromHistograms(nan, layout)).toThrow(/entry 7 is NaN/);
    const badAge = [...p.seg.age];
    badAge[5] = '99+';
    expect(() => buildEvalHistograms(p.scores, p.labels, { ...p.seg, age: badAge }, layout)).toThrow(/row 5: segment "age" has value "99\+"/);
    expect(() => buildEvalHistograms(p.scores, p.labels, { age: p.seg.age }, layout)).toThrow(/"region"/);
    expect(() => buildEvalHistograms(p.scores, p.labels, { ...p.seg, income: p.seg.age }, layout)).toThrow(/not declared/);
    expect(() => sumHistograms([new Float64Array(3), new Float64Array(4)])).toThrow(FedmarkError);
  });

  it('single-class data gives NaN AUC, not an exception', () => {
    const l = histogramLayout({}, 10);
    const m = metricsFromHistograms(buildEvalHistograms([0.1, 0.7], [0, 0], {}, l), l);
    expect(m.auc).toBeNaN();
    expect(m.positives).toBe(0);
  });
});

describe('DP-noised histograms', () => {
  it('caps each row’s log loss when asked (the release’s sensitivity), and only then', () => {
    const l = histogramLayout({}, 10);
    const wrong = buildEvalHistograms([1e-9], [1], {}, l);
    expect(wrong[l.sums]).toBeGreaterThan(20);
    expect(buildEvalHistograms([1e-9], [1], {}, l, { logLossCap: Math.log(1e4) })[l.sums]).toBeCloseTo(Math.log(1e4), 12);
  });

  it('reports n/a for a group the noise drowns, never a ratio of noise, and rates for a group with rows', () => {
    const layout = histogramLayout({ region: ['north', 'south'] }, 10);
    const rng = createRng(3);
    const scores = Array.from({ length: 400 }, () => rng.next());
    const labels = scores.map((s) => (s > 0.5 ? 1 : 0));
    // Every row is "north": "south" has no rows at all.
    const v = buildEvalHistograms(scores, labels, { region: scores.map(() => 'north') }, layout);
    const std = 2;
    for (let i = 0; i < v.length; i++) v[i] += std * rng.normal();
    const m = metricsFromHistograms(v, layout, { noiseStd: std });
    const [north, south] = m.segments[0].groups;
    expect(Number.isFinite(north.selectionRate) && Number.isFinite(north.tpr) && Number.isFinite(north.auc)).toBe(true);
    expect([south.baseRate, south.selectionRate, south.tpr, south.fpr, south.auc].every((x) => Number.isNaN(x))).toBe(true);
    // Without the noise level the same vector gives the empty group rates computed from noise alone.
    const naive = metricsFromHistograms(v, layout).segments[0].groups[1];
    expect(Number.isFinite(naive.selectionRate)).toBe(true);
  });
});
