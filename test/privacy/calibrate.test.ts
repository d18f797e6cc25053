import { describe, it, expect } from 'vitest';
import { calibrateNoiseMultiplier, calibrateShares, rdpBudgetAt } from '../../src/privacy/calibrate.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { rdpToEpsilon } from '../../src/privacy/analysis/rdp.ts';
import { epsilonFor } from '../../src/privacy/accountant.ts';
import { FedmarkError } from '../../src/errors.ts';

const expectCode = (f: () => unknown, code: string) => {
  try {
    f();
    expect.unreachable('should have thrown');
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    expect((err as FedmarkError).code).toBe(code);
  }
};

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
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 0, delta: 1e-5, samplingRate: 0.1, steps: 10 }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: -1, delta: 1e-5, samplingRate: 0.1, steps: 10 }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 1, delta: 0, samplingRate: 0.1, steps: 10 }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 1, delta: 1, samplingRate: 0.1, steps: 10 }), 'DP_TARGET_UNREACHABLE');
    // ε = 1e-6 for 1000 full-batch steps would need σ far above 1e4.
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 1e-6, delta: 1e-5, samplingRate: 1, steps: 1000 }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ targetEpsilon: 1, delta: 1e-5, samplingRate: 0, steps: 10 }), 'DP_BAD_EVENT');
  });
});

describe('calibration with other releases composed in', () => {
  const base = { targetEpsilon: 3, delta: 1e-5, samplingRate: 0.02, steps: 1000 };
  const count = { samplingRate: 1, noiseMultiplier: 12, steps: 1 };
  const histograms = { samplingRate: 1, noiseMultiplier: 5, steps: 3 };

  it('calibrates σ so that the composition of every release meets the target, with more noise than alone', () => {
    const alone = calibrateNoiseMultiplier(base);
    const sigma = calibrateNoiseMultiplier({ ...base, extra: [count, histograms] });
    const eps = composedEpsilon([{ samplingRate: 0.02, noiseMultiplier: sigma, steps: 1000 }, count, histograms], 1e-5);
    expect(eps).toBeLessThanOrEqual(3);
    expect(3 - eps).toBeLessThanOrEqual(0.01);
    expect(sigma).toBeGreaterThan(alone);
  });

  it('refuses when the other releases alone exceed the target, and with the PLD accountant', () => {
    expectCode(() => calibrateNoiseMultiplier({ ...base, extra: [{ samplingRate: 1, noiseMultiplier: 0.5, steps: 4 }] }), 'DP_TARGET_UNREACHABLE');
    expectCode(() => calibrateNoiseMultiplier({ ...base, accountant: 'pld', extra: [count] }), 'DP_BAD_ARGUMENT');
  });
});

describe('calibrateShares: one ε split between DP-SGD and plain Gaussian releases', () => {
  it('gives each class its share of the Rényi divergence at the conversion order, and the composition meets the target', () => {
    for (const target of [0.5, 3, 8]) {
      const plan = calibrateShares({
        targetEpsilon: target,
        delta: 1e-5,
        samplingRate: 0.02,
        steps: 1000,
        shares: [
          { share: 0.02, releases: 1 },
          { share: 0.1, releases: 4 },
        ],
      });
      const events = [
        { samplingRate: 0.02, noiseMultiplier: plan.noiseMultiplier, steps: 1000 },
        { samplingRate: 1, noiseMultiplier: plan.others[0], steps: 1 },
        { samplingRate: 1, noiseMultiplier: plan.others[1], steps: 4 },
      ];
      const eps = composedEpsilon(events, 1e-5);
      expect(eps).toBeLessThanOrEqual(target);
      expect(target - eps).toBeLessThanOrEqual(0.01);
      expect(plan.rdpShares.others[0]).toBeCloseTo(0.02, 2);
      expect(plan.rdpShares.others[1]).toBeCloseTo(0.1, 2);
      expect(plan.rdpShares.training + plan.rdpShares.others[0] + plan.rdpShares.others[1]).toBeCloseTo(1, 12);
      // A smaller target takes more noise everywhere.
      expect(plan.others[0]).toBeGreaterThan(1);
    }
  });

  it('rdpBudgetAt inverts the (ε, δ) conversion at that order', () => {
    for (const order of [2, 7.5, 32]) {
      const rho = rdpBudgetAt(order, 3, 1e-5);
      expect(rdpToEpsilon([order], [rho], 1e-5).epsilon).toBeCloseTo(3, 12);
    }
  });

  it('refuses shares outside (0, 1), with no release, or summing to 1 or more', () => {
    const args = { targetEpsilon: 3, delta: 1e-5, samplingRate: 0.02, steps: 100 };
    expectCode(() => calibrateShares({ ...args, shares: [{ share: 0, releases: 1 }] }), 'DP_BAD_ARGUMENT');
    expectCode(() => calibrateShares({ ...args, shares: [{ share: 0.2, releases: 0 }] }), 'DP_BAD_ARGUMENT');
    expectCode(
      () =>
        calibrateShares({
          ...args,
          shares: [
            { share: 0.6, releases: 1 },
            { share: 0.4, releases: 1 },
          ],
        }),
      'DP_BAD_ARGUMENT',
    );
  });
});
