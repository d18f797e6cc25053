import { describe, it, expect } from 'vitest';
import { calibrateNoiseMultiplier } from '../../src/privacy/calibrate.ts';
import { epsilonFor } from '../../src/privacy/accountant.ts';
import { FedmarkError } from '../../src/errors.ts';

describe('calibrateNoiseMultiplier', () => {
  it.each([
    [1, 1e-5, 0.01, 1000],
    [3, 1e-5, 0.05, 500],
    [8, 1e-6, 0.1, 100],
  ])('RDP: ε(σ) ≤ %d and within tolerance of it', (target, delta, q, steps) => {
    const sigma = calibrateNoiseMultiplier({ targetEpsilon: target, delta, samplingRate: q, steps });
    const eps = epsilonFor({ samplingRate: q, noiseMultiplier: sigma, steps, delta });
    expect(eps).toBeLessThanOrEqual(target);
    expect(target - eps).toBeLessThanOrEqual(0.01);
    // Slightly less noise must overshoot or sit within tolerance: σ is (near-)minimal.
    const less = epsilonFor({ samplingRate: q, noiseMultiplier: sigma * 0.98, steps, delta });
    expect(less).toBeGreaterThan(target - 0.01);
  });

  it('PLD needs less noise than RDP for the same target, and still meets it', () => {
    const args = { targetEpsilon: 2, delta: 1e-5, samplingRate: 0.05, steps: 50 };
    const sRdp = calibrateNoiseMultiplier(args);
    const sPld = calibrateNoiseMultiplier({ ...args, accountant: 'pld', tolerance: 0.02 });
    expect(sPld).toBeLessThan(sRdp);
    const eps = epsilonFor({ samplingRate: 0.05, noiseMultiplier: sPld, steps: 50, delta: 1e-5, accountant: 'pld' });
    expect(eps).toBeLessThanOrEqual(2);
    expect(2 - eps).toBeLessThanOrEqual(0.02);
  });

  it('throws DP_TARGET_UNREACHABLE for impossible targets', () => {
    const expectCode = (f: () => unknown, code: string) => {
      try {
        f();
        expect.unreachable('should have thrown');
      } catch (err) {
        expect(err).toBeInstanceOf(FedmarkError);
        expect((err as FedmarkError).code).toBe(code);
      }
    };
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 0, delta: 1e-5, samplingRate: 0.1, steps: 10 }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: -1, delta: 1e-5, samplingRate: 0.1, steps: 10 }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 1, delta: 0, samplingRate: 0.1, steps: 10 }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 1, delta: 1, samplingRate: 0.1, steps: 10 }), 'DP_TARGET_UNREACHABLE');
    // ε = 1e-6 for 1000 full-batch steps would need σ far above 1e4.
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 1e-6, delta: 1e-5, samplingRate: 1, steps: 1000 }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 1, delta: 1e-5, samplingRate: 0, steps: 10 }), 'DP_BAD_EVENT');
  });
});
