import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { DEFAULT_ORDERS, computeRdp, rdpToEpsilon, ndtr, logNdtr, logAdd, logSub } from '../../../src/privacy/analysis/rdp.ts';

interface EpsCase {
  q: number;
  noise_multiplier: number;
  steps: number;
  delta: number;
  epsilon: number;
  best_order: number;
}
interface RdpCase {
  q: number;
  noise_multiplier: number;
  steps: number;
  orders: number[];
  rdp: number[];
}
const vectors = JSON.parse(readFileSync(new URL('../../fixtures/reference/rdp-vectors.json', import.meta.url), 'utf8')) as {
  orders: number[];
  tolerance: { relative: number };
  cases: EpsCase[];
  rdp_cases: RdpCase[];
};
const TOL = vectors.tolerance.relative;

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

describe('DEFAULT_ORDERS', () => {
  it('equals the Opacus DEFAULT_ALPHAS used by the reference vectors', () => {
    expect([...DEFAULT_ORDERS]).toEqual(vectors.orders);
    expect(DEFAULT_ORDERS.length).toBe(151);
  });
});

describe('computeRdp against Opacus per-order RDP (relative 1e-6)', () => {
  it.each(vectors.rdp_cases.map((c) => [`q=${c.q} σ=${c.noise_multiplier} T=${c.steps}`, c] as const))('%s', (_name, c) => {
    const got = computeRdp(c.q, c.noise_multiplier, c.steps, c.orders);
    got.forEach((v, i) => expect(rel(v, c.rdp[i])).toBeLessThanOrEqual(TOL));
  });
});

describe('rdpToEpsilon against Opacus get_privacy_spent (relative 1e-6, all cases)', () => {
  // Cache per (q, σ): one-step RDP scales linearly with steps.
  const perStep = new Map<string, number[]>();
  it(`matches all ${vectors.cases.length} reference cases, including the best order`, () => {
    const failures: string[] = [];
    for (const c of vectors.cases) {
      const key = `${c.q}/${c.noise_multiplier}`;
      let r1 = perStep.get(key);
      if (!r1) {
        r1 = computeRdp(c.q, c.noise_multiplier, 1, DEFAULT_ORDERS);
        perStep.set(key, r1);
      }
      const direct = computeRdp(c.q, c.noise_multiplier, c.steps, DEFAULT_ORDERS);
      const { epsilon, bestOrder } = rdpToEpsilon(DEFAULT_ORDERS, direct, c.delta);
      if (!(rel(epsilon, c.epsilon) <= TOL) || bestOrder !== c.best_order)
        failures.push(`q=${c.q} σ=${c.noise_multiplier} T=${c.steps} δ=${c.delta}: ${epsilon}@${bestOrder} vs ${c.epsilon}@${c.best_order}`);
      // Linear scaling in steps is part of the contract (RDP composition).
      expect(rel(direct[40], r1[40] * c.steps) <= 1e-12 || direct[40] === r1[40] * c.steps).toBe(true);
    }
    expect(failures).toEqual([]);
  });
});

describe('edge cases (Opacus semantics)', () => {
  it('q = 0 gives zero RDP and q = 1 gives α/(2σ²)', () => {
    expect(computeRdp(0, 1, 100, [2, 3.5])).toEqual([0, 0]);
    const r = computeRdp(1, 2, 3, [2, 7.5]);
    expect(r[0]).toBeCloseTo((3 * 2) / (2 * 4), 14);
    expect(r[1]).toBeCloseTo((3 * 7.5) / (2 * 4), 14);
  });

  it('σ = 0 gives infinite RDP and infinite ε', () => {
    const r = computeRdp(0.1, 0, 1, [2, 3]);
    expect(r).toEqual([Infinity, Infinity]);
    expect(rdpToEpsilon([2, 3], r, 1e-5).epsilon).toBe(Infinity);
  });

  it('ignores NaN orders, and all-NaN means no privacy', () => {
    const a = rdpToEpsilon([2, 3, 4], [NaN, 0.5, NaN], 1e-5);
    expect(a.bestOrder).toBe(3);
    expect(a.epsilon).toBeCloseTo(0.5 - (Math.log(1e-5) + Math.log(3)) / 2 + Math.log(2 / 3), 12);
    expect(rdpToEpsilon([2, 3], [NaN, NaN], 1e-5)).toEqual({ epsilon: Infinity, bestOrder: NaN });
  });

  it('ε grows with steps and shrinks with σ', () => {
    const e = (q: number, s: number, t: number) => rdpToEpsilon(DEFAULT_ORDERS, computeRdp(q, s, t), 1e-5).epsilon;
    expect(e(0.01, 1, 200)).toBeGreaterThan(e(0.01, 1, 100));
    expect(e(0.01, 1.2, 100)).toBeLessThan(e(0.01, 1, 100));
  });

  it('rejects invalid arguments', () => {
    expect(() => computeRdp(1.5, 1, 1)).toThrow(/sampling rate/);
    expect(() => computeRdp(0.1, -1, 1)).toThrow(/noise multiplier/);
    expect(() => computeRdp(0.1, 1, 1.5)).toThrow(/steps/);
    expect(() => computeRdp(0.1, 1, 1, [1])).toThrow(/orders/);
    expect(() => rdpToEpsilon([2], [1], 0)).toThrow(/delta/);
    expect(() => rdpToEpsilon([2, 3], [1], 1e-5)).toThrow(/length/);
  });
});

describe('special functions', () => {
  // Values from scipy.special.ndtr / log_ndtr (scipy 1.17).
  const table: [number, number, number][] = [
    [-38.5, 0, -745.6952702904113],
    [-25, 3.056696706382561e-138, -316.63940800802027],
    [-10, 7.61985302416047e-24, -53.23128515051248],
    [-3, 0.0013498980316300933, -6.60772622151035],
    [-0.5, 0.3085375387259869, -1.1759117615936188],
    [0, 0.5, -0.6931471805599453],
    [1.3, 0.9031995154143897, -0.10181180266765506],
    [5, 0.9999997133484281, -2.8665161296376294e-7],
    [9, 1, -1.1285884059538324e-19],
  ];
  it.each(table)('Φ(%d) and log Φ to ~1e-13 relative', (x, p, lp) => {
    if (p === 0) expect(ndtr(x)).toBeLessThan(1e-300);
    else expect(rel(ndtr(x), p)).toBeLessThan(1e-13);
    expect(rel(logNdtr(x), lp)).toBeLessThan(1e-13);
  });

  it('log-space add/sub', () => {
    expect(logAdd(Math.log(2), Math.log(3))).toBeCloseTo(Math.log(5), 14);
    expect(logAdd(-Infinity, 1)).toBe(1);
    expect(logSub(Math.log(5), Math.log(3))).toBeCloseTo(Math.log(2), 14);
    expect(logSub(1, 1)).toBe(-Infinity);
    expect(Number.isNaN(logSub(0, 1))).toBe(true);
  });
});
