import { describe, it, expect } from 'vitest';
import { initParameters, parameterLayout, type ParameterLayout } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { accumulateGradient, backward, createWorkspace, forward, lossAndOutputDelta } from '../../src/train/backprop.ts';
import { clippedGradientSum, dpSchedule, GaussianNoisePool, PoissonSampler, privatizeGradientSum } from '../../src/train/dp-sgd.ts';
import { createRng } from '../../src/util/rng.ts';

const d = 7;
const n = 40;

function makeData(seed: number): { X: Float32Array; y: Float32Array } {
  const rng = createRng(seed);
  const X = new Float32Array(n * d).map(() => rng.next() * 2);
  const y = new Float32Array(n).map(() => (rng.next() < 0.4 ? 1 : 0));
  return { X, y };
}

/**
 * Slow, independent reference: the per-example loss written out naively, differentiated by central
 * finite differences in float64 (tf.grad is unavailable — tfjs-core's Node build registers no
 * gradients). Error ≈ h²·f‴ + ε/h ≈ 1e-9, far below the 1e-5 tolerance.
 */
function exampleLoss(spec: ModelSpec, p: Float64Array, x: Float32Array, t: number): number {
  const widths = spec.kind === 'logistic' ? [d, 1] : [d, ...spec.hidden, 1];
  let h = Array.from(x);
  let off = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    const [ni, no] = [widths[l], widths[l + 1]];
    const z = new Array<number>(no).fill(0).map((_, j) => {
      let s = p[off + ni * no + j];
      for (let k = 0; k < ni; k++) s += h[k] * p[off + k * no + j];
      return s;
    });
    off += ni * no + no;
    if (l + 2 === widths.length) {
      const prob = 1 / (1 + Math.exp(-z[0]));
      return -(t * Math.log(prob) + (1 - t) * Math.log(1 - prob));
    }
    h = z.map((v) => (spec.kind === 'mlp' && spec.activation === 'tanh' ? Math.tanh(v) : Math.max(0, v)));
  }
  throw new Error('unreachable');
}

function referenceGradient(spec: ModelSpec, p: Float64Array, x: Float32Array, t: number): Float64Array {
  const g = new Float64Array(p.length);
  const h = 1e-6;
  const q = Float64Array.from(p);
  for (let i = 0; i < p.length; i++) {
    q[i] = p[i] + h;
    const up = exampleLoss(spec, q, x, t);
    q[i] = p[i] - h;
    const down = exampleLoss(spec, q, x, t);
    q[i] = p[i];
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

const norm = (v: Float64Array): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

function perturbed(spec: ModelSpec, seed: number): Float64Array {
  const p = initParameters(spec, d, seed);
  const rng = createRng(seed + 100);
  for (let i = 0; i < p.length; i++) p[i] += 0.4 * rng.normal();
  return p;
}

const specs: ModelSpec[] = [{ kind: 'logistic' }, { kind: 'mlp', hidden: [6, 5], activation: 'relu' }, { kind: 'mlp', hidden: [6, 5], activation: 'tanh' }];

describe('per-example clipping (efficient norms vs slow reference)', () => {
  for (const spec of specs) {
    const name = spec.kind === 'logistic' ? 'logistic' : `mlp ${spec.activation}`;
    it(`${name}: norms and clipped sum equal a loop of single-example gradients to 1e-5`, () => {
      const layout = parameterLayout(spec, d);
      const p = perturbed(spec, 5);
      const { X, y } = makeData(9);
      const rows = Int32Array.from({ length: 25 }, (_, i) => (i * 3) % n);
      const refs = Array.from(rows, (r) => referenceGradient(spec, p, X.subarray(r * d, r * d + d), y[r]));
      const refNorms = refs.map(norm);
      // A clip norm between the smallest and largest per-example norm, so both branches run.
      const sorted = [...refNorms].sort((a, b) => a - b);
      const m = Math.floor(sorted.length / 2);
      const C = (sorted[m] + sorted[m + 1]) / 2;
      expect(sorted[m + 1] - sorted[m]).toBeGreaterThan(1e-6);

      const out = new Float64Array(layout.size);
      const res = clippedGradientSum(layout, p, X, y, rows, rows.length, C, out);
      for (let i = 0; i < rows.length; i++) expect(Math.sqrt(res.sqNorms[i])).toBeCloseTo(refNorms[i], 5);
      expect(res.clipped).toBe(refNorms.filter((v) => v > C).length);

      const want = new Float64Array(layout.size);
      refs.forEach((g, i) => {
        const s = Math.min(1, C / refNorms[i]);
        for (let k = 0; k < g.length; k++) want[k] += s * g[k];
      });
      for (let k = 0; k < want.length; k++) expect(Math.abs(out[k] - want[k])).toBeLessThan(1e-5);
      expect(res.lossSum).toBeCloseTo(
        Array.from(rows).reduce((s, r) => s + exampleLoss(spec, p, X.subarray(r * d, r * d + d), y[r]), 0),
        8,
      );
    });
  }

  it('respects the clip norm for every single example, however large its gradient', () => {
    for (const spec of specs) {
      const layout = parameterLayout(spec, d);
      const p = perturbed(spec, 21);
      for (let i = 0; i < p.length; i++) p[i] *= 6; // large logits, large gradients
      const { X, y } = makeData(4);
      const out = new Float64Array(layout.size);
      const C = 1e-3;
      let clippedSome = 0;
      for (let r = 0; r < n; r++) {
        const res = clippedGradientSum(layout, p, X, y, [r], 1, C, out);
        clippedSome += res.clipped;
        expect(norm(out)).toBeLessThanOrEqual(C + 1e-6);
      }
      expect(clippedSome).toBeGreaterThan(n / 2);
    }
  });
});

describe('DP-SGD gradient', () => {
  it('with σ = 0 and a huge C equals the ordinary mean gradient × realised / expected batch size', () => {
    for (const spec of specs) {
      const layout: ParameterLayout = parameterLayout(spec, d);
      const p = perturbed(spec, 8);
      const { X, y } = makeData(12);
      const rows = Int32Array.from([0, 2, 3, 5, 8, 13, 21, 34, 35, 39]);
      const expectedBatch = 14.5;
      const dpGrad = privatizeGradientSum(
        clippedGradientSum(layout, p, X, y, rows, rows.length, 1e9, new Float64Array(layout.size)).sum,
        0,
        1e9,
        expectedBatch,
      );
      const ws = createWorkspace(layout, rows.length);
      forward(layout, p, X, rows, rows.length, ws);
      lossAndOutputDelta(y, rows, rows.length, ws, layout.layers.length - 1);
      backward(layout, p, rows.length, ws);
      const mean = new Float64Array(layout.size);
      accumulateGradient(layout, rows.length, ws, null, mean);
      for (let k = 0; k < mean.length; k++) {
        mean[k] /= rows.length;
        expect(dpGrad[k]).toBeCloseTo((mean[k] * rows.length) / expectedBatch, 12);
      }
      expect(norm(mean)).toBeGreaterThan(1e-3);
    }
  });

  it('adds noise with standard deviation σ·C per coordinate to the clipped sum', () => {
    const spec: ModelSpec = { kind: 'mlp', hidden: [40, 20], activation: 'relu' };
    const layout = parameterLayout(spec, d);
    const p = perturbed(spec, 2);
    const { X, y } = makeData(3);
    const rows = Int32Array.from({ length: n }, (_, i) => i);
    const sigma = 1.7;
    const C = 0.8;
    const clean = Float64Array.from(clippedGradientSum(layout, p, X, y, rows, n, C, new Float64Array(layout.size)).sum);
    const diffs: number[] = [];
    for (let rep = 0; rep < 20; rep++) {
      const noisy = privatizeGradientSum(Float64Array.from(clean), sigma, C, 1); // divisor 1: the raw noisy sum
      for (let k = 0; k < clean.length; k++) diffs.push(noisy[k] - clean[k]);
    }
    const m = diffs.reduce((a, b) => a + b, 0) / diffs.length;
    const sd = Math.sqrt(diffs.reduce((a, b) => a + (b - m) ** 2, 0) / (diffs.length - 1));
    // ~22k samples: the sample sd has relative sd ≈ 1/√(2N) ≈ 0.5%, so 3% is a > 6σ margin.
    expect(diffs.length).toBeGreaterThan(20_000);
    expect(Math.abs(sd / (sigma * C) - 1)).toBeLessThan(0.03);
    expect(Math.abs(m)).toBeLessThan(0.05 * sigma * C);
  });
});

describe('GaussianNoisePool', () => {
  it('gives fresh N(0, (σC)²) values across block boundaries, never reusing a sample', () => {
    const std = 1.5 * 0.6;
    const pool = new GaussianNoisePool(std, 1000); // block not a multiple of the vector length
    const P = 333;
    const prev = new Float64Array(P);
    const all: number[] = [];
    let cross = 0;
    for (let step = 0; step < 60; step++) {
      const v = privatizeGradientSum(new Float64Array(P), 1.5, 0.6, 1, pool);
      for (let k = 0; k < P; k++) {
        all.push(v[k]);
        cross += v[k] * prev[k];
      }
      prev.set(v);
    }
    const sd = Math.sqrt(all.reduce((a, b) => a + b * b, 0) / all.length);
    expect(Math.abs(sd / std - 1)).toBeLessThan(0.03);
    // Correlation of consecutive steps ≈ 0 (a reused block would give ≈ 1).
    expect(Math.abs(cross / (59 * P * std * std))).toBeLessThan(0.05);
    expect(() => privatizeGradientSum(new Float64Array(3), 1, 1, 1, pool)).toThrow(/does not match/);
  });
});

describe('Poisson sampling', () => {
  it('selects each row independently with probability q (batch size mean q·n, variance q(1−q)n)', () => {
    const N = 5000;
    const q = 0.02;
    const sampler = new PoissonSampler(N, q);
    const sizes: number[] = [];
    const hits = new Float64Array(N);
    const draws = 600;
    let ascending = true;
    for (let t = 0; t < draws; t++) {
      const rows = sampler.sample();
      sizes.push(rows.length);
      for (let i = 0; i < rows.length; i++) {
        if (i > 0 && rows[i] <= rows[i - 1]) ascending = false;
        hits[rows[i]]++;
      }
    }
    expect(ascending).toBe(true);
    const mean = sizes.reduce((a, b) => a + b, 0) / draws;
    const variance = sizes.reduce((a, b) => a + (b - mean) ** 2, 0) / (draws - 1);
    // mean: sd of the estimate = √(98/600) ≈ 0.4; variance: relative sd ≈ √(2/600) ≈ 6%.
    expect(Math.abs(mean - q * N)).toBeLessThan(2.5);
    expect(variance / (q * (1 - q) * N)).toBeGreaterThan(0.75);
    expect(variance / (q * (1 - q) * N)).toBeLessThan(1.3);
    // First and last tenth of the rows are hit as often as each other (no positional bias).
    const first = hits.subarray(0, N / 10).reduce((a, b) => a + b, 0);
    const last = hits.subarray(N - N / 10).reduce((a, b) => a + b, 0);
    expect(Math.abs(first - last)).toBeLessThan(6 * Math.sqrt(first + last));
  });

  it('draws its randomness from the injected CSPRNG source, and q = 1 selects every row', () => {
    let calls = 0;
    const zeros = (buf: Uint32Array): void => {
      calls++;
      buf.fill(0xffffffff); // u = 1 ⇒ log u = 0 ⇒ no gaps: every row selected
    };
    const s = new PoissonSampler(50, 0.1, zeros);
    expect(Array.from(s.sample())).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(calls).toBe(1);
    expect(new PoissonSampler(7, 1).sample()).toHaveLength(7);
    expect(() => new PoissonSampler(10, 0)).toThrow(/sampling rate/);
  });

  it('schedules round(1/q) steps per epoch with q defaulting to batchSize/n', () => {
    expect(dpSchedule({ noiseMultiplier: 1, clipNorm: 1 }, 36_000, 256)).toEqual({ samplingRate: 256 / 36_000, stepsPerEpoch: 141 });
    expect(dpSchedule({ noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.3 }, 100, 10)).toEqual({ samplingRate: 0.3, stepsPerEpoch: 3 });
    expect(() => dpSchedule({ noiseMultiplier: 1, clipNorm: 0 }, 100, 10)).toThrow(/clipNorm/);
    expect(() => dpSchedule({ noiseMultiplier: -1, clipNorm: 1 }, 100, 10)).toThrow(/noiseMultiplier/);
  });
});
