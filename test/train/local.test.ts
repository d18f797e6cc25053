import { describe, it, expect } from 'vitest';
import { initParameters, predictProba } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { trainLocal, type LocalTrainConfig, type TrainingData } from '../../src/train/local.ts';
import { hashParameters } from '../../src/util/hash.ts';
import { createRng } from '../../src/util/rng.ts';

/** Rank AUC with ties counted as ½ (local helper; the metrics module is tested elsewhere). */
function auc(scores: ArrayLike<number>, y: ArrayLike<number>): number {
  const idx = Array.from({ length: y.length }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let rankSumPos = 0;
  let pos = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && scores[idx[j + 1]] === scores[idx[i]]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (y[idx[k]] === 1) {
        rankSumPos += avgRank;
        pos++;
      }
    }
    i = j + 1;
  }
  const neg = y.length - pos;
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}

/**
 * Linearly separable-ish: logistic labels from a linear score (weights fixed by weightSeed, so train
 * and test sets drawn with different seeds share the same truth), features in [0, 1].
 */
function linearData(n: number, d: number, seed: number, weightSeed = 1234): TrainingData {
  const wr = createRng(weightSeed);
  const w = Array.from({ length: d }, () => 8 * wr.normal());
  const rng = createRng(seed);
  const X = new Float32Array(n * d);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let z = 0;
    for (let k = 0; k < d; k++) {
      const v = rng.next();
      X[i * d + k] = v;
      z += w[k] * (v - 0.5);
    }
    y[i] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { n, d, X, y };
}

function xorData(n: number, seed: number): TrainingData {
  const rng = createRng(seed);
  const X = new Float32Array(n * 2);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.next();
    const b = rng.next();
    X[2 * i] = a;
    X[2 * i + 1] = b;
    y[i] = a > 0.5 !== b > 0.5 ? 1 : 0;
  }
  return { n, d: 2, X, y };
}

const lr: ModelSpec = { kind: 'logistic' };
const base: LocalTrainConfig = { epochs: 3, batchSize: 64, learningRate: 0.5, optimizer: 'sgd', seed: 42 };

describe('trainLocal (non-private)', () => {
  const train = linearData(4000, 10, 1);
  const test = linearData(2000, 10, 2);

  it('logistic regression reaches AUC > 0.9 on held-out data, and the loss falls', async () => {
    const g = initParameters(lr, 10, 0);
    const before = auc(predictProba(lr, 10, g, test.X, test.n), test.y);
    const res = await trainLocal(lr, 10, g, train, { ...base, epochs: 5 });
    const after = auc(predictProba(lr, 10, res.params, test.X, test.n), test.y);
    expect(before).toBe(0.5); // zero init scores every row alike
    expect(after).toBeGreaterThan(0.9);
    expect(res.steps).toBe(5 * Math.ceil(4000 / 64));
    expect(res.numExamples).toBe(4000);
    expect(res.dp).toBeUndefined();
    const res1 = await trainLocal(lr, 10, g, train, { ...base, epochs: 1 });
    expect(res.meanLoss).toBeLessThan(res1.meanLoss);
    expect(res1.meanLoss).toBeLessThan(Math.log(2));
  });

  it('is bit-identical for the same inputs and seed, and differs for another seed', async () => {
    const spec: ModelSpec = { kind: 'mlp', hidden: [8, 4], activation: 'relu' };
    const g = initParameters(spec, 10, 5);
    for (const optimizer of ['sgd', 'adam'] as const) {
      const cfg: LocalTrainConfig = { ...base, optimizer, learningRate: 0.05, l2: 1e-3, proximalMu: 0.01 };
      const a = await trainLocal(spec, 10, g, train, cfg);
      const b = await trainLocal(spec, 10, Float64Array.from(g), train, cfg);
      const c = await trainLocal(spec, 10, g, train, { ...cfg, seed: 43 });
      expect(hashParameters(a.params)).toBe(hashParameters(b.params));
      expect(a.meanLoss).toBe(b.meanLoss);
      expect(hashParameters(a.params)).not.toBe(hashParameters(c.params));
    }
    expect(hashParameters(g)).toBe(hashParameters(initParameters(spec, 10, 5))); // input untouched
  });

  it('an MLP learns XOR (which logistic regression cannot)', async () => {
    const tr = xorData(3000, 3);
    const te = xorData(1000, 4);
    const spec: ModelSpec = { kind: 'mlp', hidden: [16], activation: 'tanh' };
    const res = await trainLocal(spec, 2, initParameters(spec, 2, 1), tr, {
      epochs: 40,
      batchSize: 32,
      learningRate: 0.02,
      optimizer: 'adam',
      seed: 1,
    });
    const p = predictProba(spec, 2, res.params, te.X, te.n);
    const acc = p.reduce((s, v, i) => s + ((v > 0.5 ? 1 : 0) === te.y[i] ? 1 : 0), 0) / te.n;
    expect(acc).toBeGreaterThan(0.9);
    const lrRes = await trainLocal(lr, 2, initParameters(lr, 2, 0), tr, { ...base, epochs: 10 });
    expect(auc(predictProba(lr, 2, lrRes.params, te.X, te.n), te.y)).toBeLessThan(0.65);
  });

  it('FedProx μ and L2 pull the result towards the global model / zero', async () => {
    const g = new Float64Array(11).fill(0.2);
    const dist = (p: Float64Array, q: Float64Array): number => Math.sqrt(p.reduce((s, v, i) => s + (v - q[i]) ** 2, 0));
    const free = await trainLocal(lr, 10, g, train, base);
    const prox = await trainLocal(lr, 10, g, train, { ...base, proximalMu: 1 });
    expect(dist(prox.params, g)).toBeLessThan(0.6 * dist(free.params, g));
    const ridge = await trainLocal(lr, 10, g, train, { ...base, l2: 0.5 });
    const kernelNorm = (p: Float64Array): number => Math.sqrt(p.subarray(0, 10).reduce((s, v) => s + v * v, 0));
    expect(kernelNorm(ridge.params)).toBeLessThan(0.8 * kernelNorm(free.params));
  });

  it('trains one epoch over 36k × 51 rows well under a second (logistic regression)', async () => {
    const big = linearData(36_000, 51, 9);
    const g = initParameters(lr, 51, 0);
    await trainLocal(lr, 51, g, big, { ...base, epochs: 1 }); // JIT warm-up
    const t0 = performance.now();
    await trainLocal(lr, 51, g, big, { ...base, epochs: 1 });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('rejects bad configs and data with a message naming the problem', async () => {
    const g = initParameters(lr, 10, 0);
    await expect(trainLocal(lr, 10, g, train, { ...base, batchSize: 0 })).rejects.toThrow(/batchSize/);
    await expect(trainLocal(lr, 10, g, train, { ...base, learningRate: -1 })).rejects.toThrow(/learningRate/);
    await expect(trainLocal(lr, 10, new Float64Array(3), train, base)).rejects.toMatchObject({ code: 'PARAM_LENGTH_MISMATCH' });
    await expect(trainLocal(lr, 9, initParameters(lr, 9, 0), train, base)).rejects.toMatchObject({ code: 'DIMENSION_MISMATCH' });
    const badY = { ...train, y: Float32Array.from(train.y, (v, i) => (i === 17 ? 2 : v)) };
    await expect(trainLocal(lr, 10, g, badY, base)).rejects.toThrow(/row 17/);
    await expect(trainLocal(lr, 10, g, train, { ...base, dp: { noiseMultiplier: 1, clipNorm: 1, samplingRate: 1.5 } })).rejects.toThrow(/samplingRate/);
  });
});

describe('trainLocal with DP-SGD', () => {
  it('reports the DP parameters and step count, and still learns at moderate noise', async () => {
    const train = linearData(6000, 10, 5);
    const test = linearData(2000, 10, 6);
    const g = initParameters(lr, 10, 0);
    const res = await trainLocal(lr, 10, g, train, {
      ...base,
      epochs: 3,
      batchSize: 200,
      learningRate: 0.5,
      dp: { noiseMultiplier: 1.0, clipNorm: 1.0 },
    });
    const q = 200 / 6000;
    expect(res.dp).toEqual({ samplingRate: q, noiseMultiplier: 1.0, clipNorm: 1.0, steps: 3 * Math.round(1 / q) });
    expect(res.steps).toBe(90);
    expect(auc(predictProba(lr, 10, res.params, test.X, test.n), test.y)).toBeGreaterThan(0.85);
  });

  it('is not seeded: two runs with the same seed differ (CSPRNG sampling and noise)', async () => {
    const train = linearData(500, 10, 7);
    const g = initParameters(lr, 10, 0);
    const cfg: LocalTrainConfig = { ...base, epochs: 1, dp: { noiseMultiplier: 0.5, clipNorm: 1, samplingRate: 0.1 } };
    const a = await trainLocal(lr, 10, g, train, cfg);
    const b = await trainLocal(lr, 10, g, train, cfg);
    expect(hashParameters(a.params)).not.toBe(hashParameters(b.params));
    expect(a.dp?.steps).toBe(10);
  });

  it('divides by the expected batch size q·n, not the realised one, for round(1/q) steps per epoch', async () => {
    const train = linearData(300, 10, 8);
    const g = initParameters(lr, 10, 0);
    // An all-ones "CSPRNG" makes every uniform 1, so every row is sampled: realised batch n, expected n/4.
    const everyRow = (buf: Uint32Array): void => {
      buf.fill(0xffffffff);
    };
    const dp = await trainLocal(
      lr,
      10,
      g,
      train,
      { ...base, epochs: 1, learningRate: 0.1, dp: { noiseMultiplier: 0, clipNorm: 1e12, samplingRate: 0.25 } },
      { randomFill: everyRow },
    );
    // ⇒ 4 steps of (n / (n/4))·mean gradient = 4 full-batch steps at 4× the learning rate.
    const full = await trainLocal(lr, 10, g, train, { ...base, epochs: 4, batchSize: 300, learningRate: 0.4 });
    expect(dp.steps).toBe(4);
    for (let i = 0; i < g.length; i++) expect(dp.params[i]).toBeCloseTo(full.params[i], 12);
  });

  it('with σ = 0, C huge and q = 1 it is full-batch gradient descent', async () => {
    const train = linearData(300, 10, 8);
    const g = initParameters(lr, 10, 0);
    const dp = await trainLocal(lr, 10, g, train, {
      ...base,
      epochs: 4,
      dp: { noiseMultiplier: 0, clipNorm: 1e12, samplingRate: 1 },
    });
    const full = await trainLocal(lr, 10, g, train, { ...base, epochs: 4, batchSize: 300 });
    expect(dp.steps).toBe(4);
    for (let i = 0; i < g.length; i++) expect(dp.params[i]).toBeCloseTo(full.params[i], 12);
  });
});
