import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { newcombeInterval, normalQuantile, twoSidedZ, wilsonInterval } from '../../src/scoring/stats.ts';
import { cellIndex, upliftFromCounts, UPLIFT_CELLS } from '../../src/scoring/uplift.ts';
import { calibrateUpliftNoise, combineUpliftCounts, noisyUpliftCounts, upliftCountEvent } from '../../src/scoring/uplift-federated.ts';
import { campaignCounts } from '../../src/scoring/campaign.ts';
import { epsilonFor } from '../../src/privacy/accountant.ts';
import { createRng } from '../../src/util/rng.ts';
import { rejection } from '../helpers/errors.ts';
import { fedmark, tempDir } from './helpers.ts';

const REF_SCRIPT = fileURLToPath(new URL('./fixtures/newcombe_reference.py', import.meta.url));
const REF_JSON = fileURLToPath(new URL('./fixtures/newcombe_reference.json', import.meta.url));
interface RefCase {
  r1: number;
  n1: number;
  r2: number;
  n2: number;
  confidence: number;
  z: number;
  wilson1: [number, number];
  wilson2: [number, number];
  lower: number;
  upper: number;
}
const ref = JSON.parse(readFileSync(REF_JSON, 'utf8')) as { cases: RefCase[]; quantiles: { p: number; z: number }[] };

describe('interval arithmetic against the reference computation', () => {
  it("the stored reference is what Python's standard library computes (re-run when python3 is available)", (ctx) => {
    const py = spawnSync('python3', [REF_SCRIPT], { encoding: 'utf8' });
    if (py.error || py.status !== 0) {
      ctx.skip();
      return;
    }
    expect(JSON.parse(py.stdout)).toEqual(ref);
  });

  it("Newcombe's published worked examples (1998, Table II, method 10)", () => {
    const z = twoSidedZ(0.95);
    const at = (r1: number, n1: number, r2: number, n2: number) => {
      const i = newcombeInterval(r1 / n1, wilsonInterval(r1 / n1, n1, z), r2 / n2, wilsonInterval(r2 / n2, n2, z));
      return [Math.round(i.lower * 1e4) / 1e4, Math.round(i.upper * 1e4) / 1e4];
    };
    expect(at(56, 70, 48, 80)).toEqual([0.0524, 0.3339]);
    expect(at(9, 10, 3, 10)).toEqual([0.1705, 0.809]);
    expect(at(0, 10, 0, 20)).toEqual([-0.1611, 0.2775]);
    expect(at(10, 10, 0, 20)).toEqual([0.6791, 1]);
  });

  it('Wilson and Newcombe intervals and z values equal the Python reference to 1e-12', () => {
    for (const c of ref.cases) {
      const z = twoSidedZ(c.confidence);
      expect(Math.abs(z - c.z)).toBeLessThan(1e-12);
      const w1 = wilsonInterval(c.r1 / c.n1, c.n1, z);
      const w2 = wilsonInterval(c.r2 / c.n2, c.n2, z);
      expect(Math.abs(w1.lower - c.wilson1[0]) + Math.abs(w1.upper - c.wilson1[1])).toBeLessThan(1e-12);
      expect(Math.abs(w2.lower - c.wilson2[0]) + Math.abs(w2.upper - c.wilson2[1])).toBeLessThan(1e-12);
      const n = newcombeInterval(c.r1 / c.n1, w1, c.r2 / c.n2, w2);
      expect(Math.abs(n.lower - c.lower)).toBeLessThan(1e-12);
      expect(Math.abs(n.upper - c.upper)).toBeLessThan(1e-12);
    }
    for (const q of ref.quantiles) expect(Math.abs(normalQuantile(q.p) - q.z)).toBeLessThan(1e-9 * Math.max(1, Math.abs(q.z)));
  });
});

/** Counts of a campaign where treatment lifts response by `lift` in the top three deciles only. */
function campaign(seed: number, perDecile = 2000, lift = 0.06): Float64Array {
  const rng = createRng(seed);
  const c = new Float64Array(UPLIFT_CELLS);
  for (let d = 1; d <= 10; d++) {
    const base = 0.05 + 0.02 * (10 - d);
    for (let i = 0; i < perDecile; i++) {
      const arm = rng.next() < 0.5 ? 'treatment' : 'control';
      const p = base + (arm === 'treatment' && d <= 3 ? lift : 0);
      c[cellIndex(d, arm, rng.next() < p)]++;
    }
  }
  return c;
}

describe('uplift from a count table', () => {
  it('per arm, overall, per decile and for the top deciles, each with the Newcombe interval', () => {
    const counts = campaign(1);
    const u = upliftFromCounts(counts);
    const sum = (arm: 'treatment' | 'control', resp: boolean, ds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) =>
      ds.reduce((a, d) => a + counts[cellIndex(d, arm, resp)], 0);
    const nt = sum('treatment', true) + sum('treatment', false);
    const nc = sum('control', true) + sum('control', false);
    expect(u.overall.treatment.n).toBe(nt);
    expect(u.overall.uplift).toBeCloseTo(sum('treatment', true) / nt - sum('control', true) / nc, 14);
    const z = twoSidedZ(0.95);
    const expected = newcombeInterval(
      sum('treatment', true) / nt,
      wilsonInterval(sum('treatment', true) / nt, nt, z),
      sum('control', true) / nc,
      wilsonInterval(sum('control', true) / nc, nc, z),
    );
    expect(u.overall.interval).toEqual(expected);
    // The lift is in deciles 1–3: their intervals exclude 0, those of deciles 6–10 contain it.
    for (const d of [1, 2, 3]) expect(u.byDecile[d - 1].interval!.lower).toBeGreaterThan(0);
    for (const d of [6, 7, 8, 9, 10]) expect(Math.abs(u.byDecile[d - 1].uplift!)).toBeLessThan(0.05);
    // Deciles 4–10 have no effect: over many campaigns their 95 % intervals exclude 0 about 5 % of the time.
    let wrong = 0;
    for (let seed = 100; seed < 160; seed++) {
      const v = upliftFromCounts(campaign(seed));
      for (let d = 4; d <= 10; d++) if (v.byDecile[d - 1].interval!.lower > 0 || v.byDecile[d - 1].interval!.upper < 0) wrong++;
    }
    expect(wrong / (60 * 7)).toBeGreaterThan(0.02);
    expect(wrong / (60 * 7)).toBeLessThan(0.08);
    // Targeting deciles 1–3 pays more per treated customer than treating everyone.
    expect(u.cumulative[2].uplift!).toBeGreaterThan(u.cumulative[9].uplift!);
    expect(u.cumulative[9].uplift).toBeCloseTo(u.overall.uplift!, 14);
    expect(u.treatmentShare.every((s) => s !== null && Math.abs(s - 0.5) < 0.05)).toBe(true);
  });

  it('an empty arm gives no uplift rather than a number', () => {
    const c = new Float64Array(UPLIFT_CELLS);
    c[cellIndex(1, 'treatment', true)] = 5;
    const u = upliftFromCounts(c);
    expect(u.byDecile[0].uplift).toBeNull();
    expect(u.byDecile[0].treatment.rate).toBe(1);
  });
});

describe('multi-partner uplift: layout, DP event, combine', () => {
  it('the table is 40 count cells and every customer falls in exactly one (sensitivity 1)', () => {
    const seen = new Set<number>();
    for (let d = 1; d <= 10; d++) for (const arm of ['control', 'treatment'] as const) for (const r of [false, true]) seen.add(cellIndex(d, arm, r));
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('the DP event is a plain Gaussian release (q = 1, σ = std/Δ, one step), calibrated to the target ε', () => {
    expect(upliftCountEvent(8)).toMatchObject({ label: 'count', samplingRate: 1, noiseMultiplier: 8, steps: 1, noiseStd: 8, sensitivity: 1 });
    expect(upliftCountEvent(8, Math.SQRT2).noiseMultiplier).toBeCloseTo(8 / Math.SQRT2, 14);
    const ev = calibrateUpliftNoise(0.5, 1e-6);
    const eps = epsilonFor({ samplingRate: 1, noiseMultiplier: ev.noiseMultiplier, steps: 1, delta: 1e-6 });
    expect(eps).toBeLessThanOrEqual(0.5);
    expect(eps).toBeGreaterThan(0.49);
  });

  it('summed counts without noise give exactly the pooled figures', () => {
    const parts = [campaign(2, 500), campaign(3, 700), campaign(4, 300)];
    const summed = new Float64Array(UPLIFT_CELLS);
    for (const p of parts) for (let i = 0; i < UPLIFT_CELLS; i++) summed[i] += p[i];
    expect(combineUpliftCounts(summed, { partners: 3, noiseStd: 0 })).toEqual(upliftFromCounts(summed));
  });

  /** Seeded simulation (not the CSPRNG: a test must replay): 3 partners, `n` customers each, noise std `noise` per cell. */
  function coverage(noise: number, n: number, reps: number) {
    const rng = createRng(99);
    const truth = 0.03;
    let covered = 0;
    let widthNoisy = 0;
    let widthExact = 0;
    for (let rep = 0; rep < reps; rep++) {
      const summed = new Float64Array(UPLIFT_CELLS);
      const exact = new Float64Array(UPLIFT_CELLS);
      for (let partner = 0; partner < 3; partner++) {
        for (let i = 0; i < n; i++) {
          const d = 1 + rng.int(10);
          const arm = rng.next() < 0.5 ? 'treatment' : 'control';
          exact[cellIndex(d, arm, rng.next() < 0.1 + (arm === 'treatment' ? truth : 0))]++;
        }
      }
      for (let k = 0; k < UPLIFT_CELLS; k++) for (let partner = 0; partner < 3; partner++) summed[k] += noise * rng.normal();
      for (let k = 0; k < UPLIFT_CELLS; k++) summed[k] += exact[k];
      const u = combineUpliftCounts(summed, { partners: 3, noiseStd: noise });
      const e = upliftFromCounts(exact);
      if (u.overall.interval!.lower <= truth && truth <= u.overall.interval!.upper) covered++;
      widthNoisy += u.overall.interval!.upper - u.overall.interval!.lower;
      widthExact += e.overall.interval!.upper - e.overall.interval!.lower;
    }
    return { rate: covered / reps, widthNoisy, widthExact };
  }

  it('with noise, the intervals widen and still cover the true uplift about 95 % of the time', () => {
    const c = coverage(5, 1500, 400);
    expect(c.rate).toBeGreaterThan(0.92);
    expect(c.rate).toBeLessThan(0.985);
    expect(c.widthNoisy).toBeGreaterThan(c.widthExact);
  });

  it('when the noise dominates the counts, the interval errs on the wide side (never below nominal coverage)', () => {
    expect(coverage(25, 1500, 300).rate).toBeGreaterThanOrEqual(0.95);
  });

  it("a partner's release adds fresh noise to every cell", () => {
    const c = campaign(5, 100);
    const a = noisyUpliftCounts(c, upliftCountEvent(10));
    const b = noisyUpliftCounts(c, upliftCountEvent(10));
    expect(a).not.toEqual(b);
    expect(a.length).toBe(40);
  });
});

describe('fedmark uplift', () => {
  it('joins outcomes to scores and reports the uplift, per decile, with a chart', async () => {
    const dir = tempDir();
    const rng = createRng(7);
    const scores = ['customer,probability,decile'];
    const outcomes = ['customer,arm,outcome'];
    for (let i = 0; i < 4000; i++) {
      const dec = 1 + (i % 10);
      scores.push(`C${i},${(1 - dec / 10 + 0.05).toFixed(6)},${dec}`);
      if (i % 4 === 3) continue; // not in the campaign
      const arm = rng.next() < 0.5 ? 'treatment' : 'control';
      outcomes.push(`C${i},${arm},${rng.next() < 0.1 + (arm === 'treatment' && dec <= 2 ? 0.15 : 0) ? 'yes' : 'no'}`);
    }
    outcomes.push('X-unknown,treatment,yes', 'C3,holdout,no');
    writeFileSync(join(dir, 'scores.csv'), scores.join('\n') + '\n');
    writeFileSync(join(dir, 'outcomes.csv'), outcomes.join('\n') + '\n');
    const joined = await campaignCounts(join(dir, 'scores.csv'), join(dir, 'outcomes.csv'), {
      armColumn: 'arm',
      outcomeColumn: 'outcome',
      treatment: ['treatment'],
      control: ['control'],
      positive: ['yes'],
      negative: ['no'],
    });
    expect(joined).toMatchObject({ idColumn: 'customer', matched: 3000, unmatched: 1, invalid: 1 });
    const r = fedmark(
      'uplift',
      '--scores',
      join(dir, 'scores.csv'),
      '--outcomes',
      join(dir, 'outcomes.csv'),
      '--positive',
      'yes',
      '--negative',
      'no',
      '--json',
      '--report',
      join(dir, 'rep'),
    );
    expect(r.status, r.stderr).toBe(0);
    const u = JSON.parse(r.stdout);
    expect(u).toEqual(
      JSON.parse(
        JSON.stringify({
          ...upliftFromCounts(joined.counts),
          scores: join(dir, 'scores.csv'),
          outcomes: join(dir, 'outcomes.csv'),
          matched: 3000,
          unmatched: 1,
          invalid: 1,
          invalidExamples: joined.invalidExamples,
        }),
      ),
    );
    expect(u.byDecile[0].interval.lower).toBeGreaterThan(0);
    const html = readFileSync(join(dir, 'rep', 'campaign.html'), 'utf8');
    expect(html).toContain('id="chart-uplift-decile"');
    expect(html).toContain('id="campaign-uplift"');

    writeFileSync(join(dir, 'dup.csv'), 'customer,arm,outcome\nC1,treatment,yes\nC1,control,no\n');
    const err = await rejection(
      campaignCounts(join(dir, 'scores.csv'), join(dir, 'dup.csv'), {
        armColumn: 'arm',
        outcomeColumn: 'outcome',
        treatment: ['treatment'],
        control: ['control'],
        positive: ['yes'],
        negative: ['no'],
      }),
    );
    expect(err.code).toBe('UPLIFT_DUPLICATE_OUTCOME');
  });
});
