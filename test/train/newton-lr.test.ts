import { describe, expect, it } from 'vitest';
import { fitLogisticNewton, predictLogisticNewton } from '../../src/train/newton-lr.ts';
import { createRng } from '../../src/util/rng.ts';

const logit = (p: number) => Math.log(p / (1 - p));

describe('pooled logistic regression by Newton / IRLS', () => {
  it('a binary feature without penalty: the MLE is the two groups’ log-odds (closed form)', () => {
    // x = 0: 30 rows, 6 positive; x = 1: 20 rows, 14 positive.
    const xs: number[] = [];
    const ys: number[] = [];
    for (let i = 0; i < 50; i++) {
      xs.push(i < 30 ? 0 : 1);
      ys.push(i < 6 || (i >= 30 && i < 44) ? 1 : 0);
    }
    const r = fitLogisticNewton(Float32Array.from(xs), ys, 50, 1, { l2: 0 });
    expect(r.converged).toBe(true);
    expect(r.bias).toBeCloseTo(logit(6 / 30), 10);
    expect(r.weights[0]).toBeCloseTo(logit(14 / 20) - logit(6 / 30), 10);
  });

  it('with a penalty the penalised gradient vanishes at the answer', () => {
    const r0 = createRng(7);
    const rng = () => r0.next();
    const n = 400;
    const d = 3;
    const X = new Float32Array(n * d);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let z = -0.5;
      for (let j = 0; j < d; j++) {
        X[i * d + j] = rng() * 2 - 1;
        z += [1.5, -2, 0.3][j] * X[i * d + j];
      }
      y[i] = rng() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
    }
    const l2 = 0.01;
    const r = fitLogisticNewton(X, y, n, d, { l2 });
    expect(r.converged).toBe(true);
    const p = predictLogisticNewton(r, X, n);
    const g = new Float64Array(d + 1);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) g[j] += (p[i] - y[i]) * X[i * d + j];
      g[d] += p[i] - y[i];
    }
    for (let j = 0; j < d; j++) g[j] += l2 * n * r.weights[j];
    for (const v of g) expect(Math.abs(v)).toBeLessThan(1e-8);
    // The signs of the generating weights are recovered.
    expect(r.weights[0]).toBeGreaterThan(0.5);
    expect(r.weights[1]).toBeLessThan(-0.5);
  });

  it('refuses mismatched shapes', () => {
    expect(() => fitLogisticNewton(new Float32Array(5), [0, 1], 2, 3)).toThrow(/expected 2 × 3/);
  });
});
