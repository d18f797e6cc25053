import { pldVectors } from './pld-vectors.ts';
import { describe, it, expect } from 'vitest';
import { epsilonPld } from '../../../src/privacy/analysis/pld.ts';

const TOL = pldVectors.tolerance.relative;
const cases = pldVectors.cases.filter((c) => c.steps >= 10_000);

describe('epsilonPld against dp_accounting at 10,000 steps (relative 1e-3)', () => {
  it('has the long cases', () => expect(cases.length).toBeGreaterThan(0));
  it.each(cases.map((c) => [`q=${c.q} σ=${c.noise_multiplier} T=${c.steps}`, c] as const))('%s', (_n, c) => {
    const eps = epsilonPld({ samplingRate: c.q, noiseMultiplier: c.noise_multiplier, steps: c.steps, delta: c.delta });
    expect(Math.abs(eps - c.epsilon) / c.epsilon).toBeLessThanOrEqual(TOL);
  });
});
