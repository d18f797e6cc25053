import { pldVectors } from './pld-vectors.ts';
import { describe, it, expect } from 'vitest';
import { epsilonPld } from '../../../src/privacy/analysis/pld.ts';
import { computeRdp, DEFAULT_ORDERS, ndtr, rdpToEpsilon } from '../../../src/privacy/analysis/rdp.ts';

const TOL = pldVectors.tolerance.relative;
// The 10,000-step cases live in pld-long.test.ts to keep each file fast.
const cases = pldVectors.cases.filter((c) => c.steps < 10_000);

describe('epsilonPld against dp_accounting PLDAccountant (relative 1e-3)', () => {
  it.each(cases.map((c) => [`q=${c.q} σ=${c.noise_multiplier} T=${c.steps}`, c] as const))('%s', (_n, c) => {
    const eps = epsilonPld({ samplingRate: c.q, noiseMultiplier: c.noise_multiplier, steps: c.steps, delta: c.delta });
    expect(Math.abs(eps - c.epsilon) / c.epsilon).toBeLessThanOrEqual(TOL);
    // PLD is the tighter bound: never above RDP for the same mechanism.
    const rdp = rdpToEpsilon(DEFAULT_ORDERS, computeRdp(c.q, c.noise_multiplier, c.steps), c.delta).epsilon;
    expect(eps).toBeLessThanOrEqual(rdp);
  });
});

/** Exact ε(δ) of the Gaussian mechanism with μ = √T/σ (Balle & Wang 2018, Thm 8). */
function exactGaussianEpsilon(sigma: number, steps: number, delta: number): number {
  const mu = Math.sqrt(steps) / sigma;
  const deltaAt = (e: number) => ndtr(-e / mu + mu / 2) - Math.exp(e) * ndtr(-e / mu - mu / 2);
  let lo = 0;
  let hi = 100;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (deltaAt(mid) > delta) lo = mid;
    else hi = mid;
  }
  return hi;
}

describe('epsilonPld properties', () => {
  it('q = 1 is the plain Gaussian: a pessimistic bound within 1e-3 of the exact ε', () => {
    for (const [sigma, steps] of [
      [1, 1],
      [2, 10],
      [5, 50],
    ] as const) {
      const exact = exactGaussianEpsilon(sigma, steps, 1e-5);
      const eps = epsilonPld({ samplingRate: 1, noiseMultiplier: sigma, steps, delta: 1e-5 });
      expect(eps).toBeGreaterThanOrEqual(exact * (1 - 1e-9));
      expect((eps - exact) / exact).toBeLessThan(1e-3);
    }
  });

  it('degenerate mechanisms: q = 0 or no steps is free, σ = 0 is not private', () => {
    expect(epsilonPld({ samplingRate: 0, noiseMultiplier: 1, steps: 10, delta: 1e-5 })).toBe(0);
    expect(epsilonPld({ samplingRate: 0.1, noiseMultiplier: 1, steps: 0, delta: 1e-5 })).toBe(0);
    expect(epsilonPld({ samplingRate: 0.1, noiseMultiplier: 0, steps: 1, delta: 1e-5 })).toBe(Infinity);
  });

  it('is monotone: more steps or larger δ⁻¹ cost more, more noise costs less', () => {
    const e = (q: number, s: number, t: number, d = 1e-5) => epsilonPld({ samplingRate: q, noiseMultiplier: s, steps: t, delta: d });
    const base = e(0.05, 1.5, 50);
    expect(e(0.05, 1.5, 100)).toBeGreaterThan(base);
    expect(e(0.05, 2, 50)).toBeLessThan(base);
    expect(e(0.05, 1.5, 50, 1e-7)).toBeGreaterThan(base);
  });

  it('rejects invalid arguments', () => {
    expect(() => epsilonPld({ samplingRate: 2, noiseMultiplier: 1, steps: 1, delta: 1e-5 })).toThrow(/samplingRate/);
    expect(() => epsilonPld({ samplingRate: 0.1, noiseMultiplier: 1, steps: 1, delta: 1 })).toThrow(/delta/);
    expect(() => epsilonPld({ samplingRate: 0.1, noiseMultiplier: 1, steps: -1, delta: 1e-5 })).toThrow(/steps/);
  });
});
