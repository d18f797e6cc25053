import { describe, expect, it } from 'vitest';
import type { JobManifest } from '../../../../src/federation/manifest.ts';
import { FederatedStrategy, WEIGHT_UNIT, weightedUpdateVector } from '../../../../src/federation/workloads/sgd/strategy.ts';
import { hashParameters } from '../../../../src/util/hash.ts';
import { REAL_QUANTUM } from '../../../../src/federation/release-grid.ts';

const m = (strategy: JobManifest['strategy']) => ({ strategy }) as JobManifest;

describe('SGD server step', () => {
  it('a partner sends its row-weighted delta followed by its weight, rows / WEIGHT_UNIT', () => {
    const v = weightedUpdateVector(Float64Array.from([1, 2]), Float64Array.from([1.5, 1]), 2 * WEIGHT_UNIT);
    expect(Array.from(v)).toEqual([1, -2, 2]);
    expect(() => weightedUpdateVector(new Float64Array(2), new Float64Array(3), 10)).toThrow(/3 parameters, model has 2/);
  });

  it('FedAvg divides the summed deltas by the summed weight: the row-weighted mean delta', () => {
    const global = Float64Array.from([0, 0]);
    const a = weightedUpdateVector(global, Float64Array.from([1, 1]), 3000);
    const b = weightedUpdateVector(global, Float64Array.from([3, -1]), 1000);
    const sum = a.map((x, i) => x + b[i]);
    const next = new FederatedStrategy(m({ name: 'fedavg', serverLr: 1 })).apply({ params: global, optimizerState: null }, sum);
    // The weights travel on the release grid (0.3 and 0.1 are not dyadic): the mean is the row-weighted one to 2⁻²⁰.
    expect(next.params[0]).toBeCloseTo(1.5, 5);
    expect(next.params[1]).toBeCloseTo(0.5, 5);
    // …and the released parameters lie on the grid, whatever the division gave.
    for (const p of next.params) expect(Number.isInteger(p * REAL_QUANTUM ** -1)).toBe(true);
  });

  it('puts the weight on the release grid and refuses a weight that is not a positive number of rows', () => {
    const v = weightedUpdateVector(Float64Array.from([0]), Float64Array.from([1]), 2_437.3);
    expect(Number.isInteger(v[1] / REAL_QUANTUM)).toBe(true);
    expect(Math.abs(v[1] - 2_437.3 / WEIGHT_UNIT)).toBeLessThanOrEqual(REAL_QUANTUM / 2);
    expect(() => weightedUpdateVector(Float64Array.from([0]), Float64Array.from([1]), 0)).toThrow(/must be a positive number/);
    expect(() => weightedUpdateVector(Float64Array.from([0]), Float64Array.from([1]), NaN)).toThrow(/must be a positive number/);
  });

  it('refuses a sum of the wrong shape or with no weight', () => {
    const s = new FederatedStrategy(m({ name: 'fedavg', serverLr: 1 }));
    expect(() => s.apply({ params: new Float64Array(2), optimizerState: null }, new Float64Array(2))).toThrow(/aggregate has 2 values, expected 3/);
    expect(() => s.apply({ params: new Float64Array(2), optimizerState: null }, new Float64Array(3))).toThrow(/total weight is 0/);
  });

  it('is deterministic, FedAdam state included, so every key holder reaches the same hash', () => {
    const spec = { name: 'fedadam' as const, serverLr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
    const sum = Float64Array.from([0.2, -0.1, 0.5]);
    const once = () => {
      const s = new FederatedStrategy(m(spec));
      const r1 = s.apply({ params: Float64Array.from([1, 1]), optimizerState: null }, sum);
      return s.apply(r1, sum);
    };
    const [x, y] = [once(), once()];
    expect(hashParameters(x.params)).toBe(hashParameters(y.params));
    expect(x.optimizerState).toEqual(y.optimizerState);
    expect(x.optimizerState).not.toBeNull();
  });

  it('FedProx is a client-side term: the strategy exposes μ, FedAvg has none', () => {
    expect(new FederatedStrategy(m({ name: 'fedprox', serverLr: 1, mu: 0.05 })).proximalMu).toBe(0.05);
    expect(new FederatedStrategy(m({ name: 'fedavg', serverLr: 1 })).proximalMu).toBeUndefined();
  });
});
