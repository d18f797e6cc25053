import { describe, it, expect } from 'vitest';
import {
  createServerOptimizer,
  fedAdam,
  fedAvg,
  fedProx,
  weightedAverageDelta,
  type ServerOptimizerResult,
  type ServerOptimizerState,
} from '../../src/train/server-optimizers.ts';
import { hashParameters } from '../../src/util/hash.ts';
import { createRng } from '../../src/util/rng.ts';

const vec = (seed: number, n = 50, scale = 0.1): Float64Array => {
  const r = createRng(seed);
  return Float64Array.from({ length: n }, () => scale * r.normal());
};

describe('weightedAverageDelta', () => {
  it('computes Σ wᵢΔᵢ / Σ wᵢ and validates its inputs', () => {
    const avg = weightedAverageDelta([Float64Array.from([1, 2]), Float64Array.from([4, -1])], [1, 2]);
    expect(Array.from(avg)).toEqual([3, 0]);
    expect(() => weightedAverageDelta([new Float64Array(2)], [0])).toThrow(/weight/);
    expect(() => weightedAverageDelta([new Float64Array(2), new Float64Array(3)], [1, 1])).toThrow(/update 1/);
  });
});

describe('FedAvg / FedProx', () => {
  it('adds the server-lr-scaled average delta and leaves its inputs untouched', () => {
    const g = vec(1);
    const delta = vec(2);
    const gCopy = Float64Array.from(g);
    const { params, state } = fedAvg().apply(g, delta, null);
    for (let i = 0; i < g.length; i++) expect(params[i]).toBe(g[i] + delta[i]);
    expect(state).toBeNull();
    expect(hashParameters(g)).toBe(hashParameters(gCopy));
    const half = fedAvg({ serverLr: 0.5 }).apply(g, delta, null).params;
    for (let i = 0; i < g.length; i++) expect(half[i]).toBe(g[i] + 0.5 * delta[i]);
    expect(() => fedAvg().apply(g, new Float64Array(3), null)).toThrow(/3 values/);
    expect(() => fedAvg().apply(g, new Float64Array(50).fill(Number.NaN), null)).toThrow(/not finite/);
  });

  it('FedProx is FedAvg on the server and carries μ for local training', () => {
    const opt = fedProx({ mu: 0.01 });
    expect(opt.name).toBe('fedprox');
    expect(opt.proximalMu).toBe(0.01);
    const g = vec(3);
    const delta = vec(4);
    expect(hashParameters(opt.apply(g, delta, null).params)).toBe(hashParameters(fedAvg().apply(g, delta, null).params));
  });
});

describe('FedAdam (Reddi et al. 2021)', () => {
  it('matches a hand computation of the first two rounds', () => {
    const opt = fedAdam({ lr: 0.1 });
    const g = Float64Array.from([1, -2]);
    const d1 = Float64Array.from([0.5, -0.1]);
    const r1 = opt.apply(g, d1, null);
    // m = 0.1Δ, v = 0.01Δ², w += 0.1·m/(√v + 1e-3)
    const m1 = [0.05, -0.01];
    const v1 = [0.0025, 0.0001];
    const w1 = [1 + (0.1 * m1[0]) / (Math.sqrt(v1[0]) + 1e-3), -2 + (0.1 * m1[1]) / (Math.sqrt(v1[1]) + 1e-3)];
    const st = r1.state as Extract<ServerOptimizerState, { kind: 'fedadam' }>;
    expect(st.kind).toBe('fedadam');
    expect(st.round).toBe(1);
    for (let i = 0; i < 2; i++) {
      expect(r1.params[i]).toBeCloseTo(w1[i], 14);
      expect(st.m[i]).toBeCloseTo(m1[i], 15);
      expect(st.v[i]).toBeCloseTo(v1[i], 15);
    }

    const d2 = Float64Array.from([-0.2, 0.3]);
    const r2 = opt.apply(r1.params, d2, r1.state);
    const st1 = r1.state as Extract<ServerOptimizerState, { kind: 'fedadam' }>;
    for (let i = 0; i < 2; i++) {
      const m = 0.9 * st1.m[i] + (1 - 0.9) * d2[i];
      const v = 0.99 * st1.v[i] + (1 - 0.99) * d2[i] * d2[i];
      expect(r2.params[i]).toBe(r1.params[i] + (0.1 * m) / (Math.sqrt(v) + 1e-3));
    }
    expect((r2.state as { round: number }).round).toBe(2);
    // The caller's state object is not mutated.
    expect(st1.round).toBe(1);
  });

  it('gives bit-identical results when the state is persisted as JSON between rounds', () => {
    const opt = createServerOptimizer({ name: 'fedadam', lr: 0.01, beta2: 0.999 });
    let a: ServerOptimizerResult = { params: vec(10, 300), state: null };
    let b: ServerOptimizerResult = { params: Float64Array.from(a.params), state: null };
    for (let round = 0; round < 6; round++) {
      const delta = vec(100 + round, 300, 0.03);
      a = opt.apply(a.params, delta, a.state);
      const reloaded = JSON.parse(JSON.stringify(b.state)) as ServerOptimizerState | null;
      const fresh = createServerOptimizer({ name: 'fedadam', lr: 0.01, beta2: 0.999 });
      b = fresh.apply(b.params, Float64Array.from(delta), reloaded);
      expect(hashParameters(b.params)).toBe(hashParameters(a.params));
    }
    expect(() => opt.apply(a.params.subarray(1), vec(1, 299), a.state)).toThrow(/299 parameters/);
  });
});

describe('createServerOptimizer', () => {
  it('builds each optimizer by name and rejects bad specs', () => {
    expect(createServerOptimizer({ name: 'fedavg' }).name).toBe('fedavg');
    expect(createServerOptimizer({ name: 'fedprox', mu: 0.1 }).proximalMu).toBe(0.1);
    expect(createServerOptimizer({ name: 'fedadam', lr: 0.01 }).name).toBe('fedadam');
    expect(() => createServerOptimizer({ name: 'fedadam', lr: -1 })).toThrow(/lr/);
    expect(() => createServerOptimizer({ name: 'fedadam', lr: 0.1, beta1: 1 })).toThrow(/beta1/);
    expect(() => createServerOptimizer({ name: 'fedsgd' } as never)).toThrow(/invalid server optimizer/);
  });
});
