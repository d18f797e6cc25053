import { describe, expect, it } from 'vitest';
import { initParameters } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { trainLocal, type TrainingData } from '../../src/train/local.ts';
import { momentumOptimizer, sgdOptimizer } from '../../src/train/optimizers.ts';
import { hashParameters } from '../../src/util/hash.ts';
import { createRng } from '../../src/util/rng.ts';

function data(n: number, d: number, seed: number): TrainingData {
  const rng = createRng(seed);
  const X = new Float32Array(n * d);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let k = 0; k < d; k++) {
      X[i * d + k] = rng.next();
      z += (k % 2 ? 3 : -3) * (X[i * d + k] - 0.5);
    }
    y[i] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { n, d, X, y };
}

describe('heavy-ball momentum (local optimizer)', () => {
  it('follows u ← βu + g, w ← w − η·u step by step', () => {
    const opt = momentumOptimizer(0.1, 2, 0.5);
    const w = Float64Array.from([1, -1]);
    opt.step(w, Float64Array.from([2, 4])); // u = (2, 4)
    expect([...w]).toEqual([1 - 0.1 * 2, -1 - 0.1 * 4]);
    opt.step(w, Float64Array.from([-2, 0])); // u = (1 - 2, 2 + 0) = (-1, 2)
    expect(w[0]).toBeCloseTo(0.8 + 0.1, 15);
    expect(w[1]).toBeCloseTo(-1.4 - 0.2, 15);
  });

  it('β = 0 is plain SGD, bit for bit', () => {
    const a = Float64Array.from([0.3, -0.7, 2]);
    const b = Float64Array.from(a);
    const m = momentumOptimizer(0.25, 3, 0);
    const s = sgdOptimizer(0.25);
    for (const g of [
      [1, 2, 3],
      [-0.5, 0.1, 7],
      [0, 0, -1],
    ]) {
      m.step(a, Float64Array.from(g));
      s.step(b, Float64Array.from(g));
    }
    expect(hashParameters(a)).toBe(hashParameters(b));
  });

  it('refuses β outside [0, 1)', () => {
    expect(() => momentumOptimizer(0.1, 1, 1)).toThrow(/momentum must be in \[0, 1\)/);
    expect(() => momentumOptimizer(0.1, 1, -0.1)).toThrow(/momentum/);
  });

  it('in trainLocal: reproducible without DP, a different trajectory from SGD, and β defaults to 0.9', async () => {
    const spec: ModelSpec = { kind: 'logistic' };
    const train = data(600, 6, 1);
    const g = initParameters(spec, 6, 0);
    const cfg = { epochs: 2, batchSize: 32, learningRate: 0.05, optimizer: 'momentum' as const, seed: 3 };
    const a = await trainLocal(spec, 6, g, train, cfg);
    const b = await trainLocal(spec, 6, g, train, { ...cfg, momentum: 0.9 });
    const sgd = await trainLocal(spec, 6, g, train, { ...cfg, optimizer: 'sgd' });
    expect(hashParameters(a.params)).toBe(hashParameters(b.params));
    expect(hashParameters(a.params)).not.toBe(hashParameters(sgd.params));
    expect(a.steps).toBe(sgd.steps);
    // The same data at η/(1 − β) = 0.5 effective step: it learns (loss below the zero model's log 2).
    expect(a.meanLoss).toBeLessThan(Math.log(2));
    await expect(trainLocal(spec, 6, g, train, { ...cfg, momentum: 1 })).rejects.toThrow(/momentum/);
  });

  it('under DP the accounting record is the SGD one: momentum only post-processes the noised gradients', async () => {
    const spec: ModelSpec = { kind: 'logistic' };
    const train = data(400, 6, 2);
    const g = initParameters(spec, 6, 0);
    const dp = { noiseMultiplier: 1.1, clipNorm: 1, samplingRate: 0.05 };
    const base = { epochs: 2, batchSize: 20, learningRate: 0.05, seed: 1, dp };
    const m = await trainLocal(spec, 6, g, train, { ...base, optimizer: 'momentum', momentum: 0.9 });
    const s = await trainLocal(spec, 6, g, train, { ...base, optimizer: 'sgd' });
    expect(m.dp).toEqual(s.dp);
    expect(m.dp).toEqual({ samplingRate: 0.05, noiseMultiplier: 1.1, clipNorm: 1, steps: 40 });
  });
});
