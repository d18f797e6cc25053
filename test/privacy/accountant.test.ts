import { pldVectors } from './analysis/pld-vectors.ts';
import { describe, it, expect } from 'vitest';
import { RdpAccountant, epsilonFor } from '../../src/privacy/accountant.ts';
import { computeRdp, DEFAULT_ORDERS, rdpToEpsilon } from '../../src/privacy/analysis/rdp.ts';
import { FedmarkError } from '../../src/errors.ts';

describe('RdpAccountant', () => {
  it('homogeneous events compose like one event with the summed steps', () => {
    const a = new RdpAccountant();
    a.step({ samplingRate: 0.01, noiseMultiplier: 1, steps: 40 });
    a.step({ samplingRate: 0.01, noiseMultiplier: 1, steps: 60 });
    const b = new RdpAccountant();
    b.step({ samplingRate: 0.01, noiseMultiplier: 1, steps: 100 });
    expect(a.getEpsilon(1e-5).epsilon).toBeCloseTo(b.getEpsilon(1e-5).epsilon, 12);
    // Opacus reference (rdp-vectors.json): q=0.01, σ=1, T=100, δ=1e-5.
    expect(Math.abs(a.getEpsilon(1e-5).epsilon - 1.2141452107864754) / 1.2141452107864754).toBeLessThan(1e-6);
  });

  it('heterogeneous events sum RDP per order (tighter than adding ε)', () => {
    const e1 = { samplingRate: 0.01, noiseMultiplier: 1, steps: 100 };
    const e2 = { samplingRate: 0.05, noiseMultiplier: 2, steps: 30 };
    const acc = new RdpAccountant();
    acc.step(e1);
    acc.step(e2);
    const r1 = computeRdp(e1.samplingRate, e1.noiseMultiplier, e1.steps);
    const r2 = computeRdp(e2.samplingRate, e2.noiseMultiplier, e2.steps);
    const expected = rdpToEpsilon(
      DEFAULT_ORDERS,
      r1.map((v, i) => v + r2[i]),
      1e-5,
    );
    expect(acc.getEpsilon(1e-5)).toEqual(expected);
    const sumOfEps = rdpToEpsilon(DEFAULT_ORDERS, r1, 1e-5).epsilon + rdpToEpsilon(DEFAULT_ORDERS, r2, 1e-5).epsilon;
    expect(expected.epsilon).toBeLessThan(sumOfEps);
  });

  it('empty history spends nothing', () => {
    expect(new RdpAccountant().getEpsilon(1e-5).epsilon).toBe(0);
  });

  it('round-trips through JSON', () => {
    const acc = new RdpAccountant();
    acc.step({ samplingRate: 0.02, noiseMultiplier: 1.1, steps: 10 });
    acc.step({ samplingRate: 0.1, noiseMultiplier: 3, steps: 5 });
    const back = RdpAccountant.fromJSON(JSON.parse(JSON.stringify(acc)));
    expect(back.history).toEqual(acc.history);
    expect(back.getEpsilon(1e-6)).toEqual(acc.getEpsilon(1e-6));
  });

  it('rejects bad events, bad δ and bad state with FedmarkError', () => {
    const acc = new RdpAccountant();
    expect(() => acc.step({ samplingRate: 1.2, noiseMultiplier: 1, steps: 1 })).toThrow(FedmarkError);
    expect(() => acc.step({ samplingRate: 0.1, noiseMultiplier: 1, steps: 0.5 })).toThrow(/steps/);
    expect(() => acc.getEpsilon(0)).toThrow(/delta/);
    expect(() => RdpAccountant.fromJSON({ kind: 'rdp', orders: [], history: [] })).toThrow(FedmarkError);
    expect(() => RdpAccountant.fromJSON({ kind: 'pld', orders: [2], history: [] })).toThrow(/accountant state/);
  });
});

describe('epsilonFor', () => {
  const c = pldVectors.cases.find((x) => x.q === 0.01 && x.noise_multiplier === 1 && x.steps === 100)!;
  it('rdp reproduces the Opacus value and pld the dp_accounting value', () => {
    const args = { samplingRate: c.q, noiseMultiplier: c.noise_multiplier, steps: c.steps, delta: c.delta };
    const rdp = epsilonFor({ ...args, accountant: 'rdp' });
    // Opacus value from rdp-vectors.json (q=0.01 σ=1 T=100 δ=1e-5).
    expect(Math.abs(rdp - 1.2141452107864754) / 1.2141452107864754).toBeLessThan(1e-6);
    const pld = epsilonFor({ ...args, accountant: 'pld' });
    expect(Math.abs(pld - c.epsilon) / c.epsilon).toBeLessThan(1e-3);
    expect(epsilonFor(args)).toBe(rdp);
  });

  it('rejects an unknown accountant', () => {
    expect(() => epsilonFor({ samplingRate: 0.1, noiseMultiplier: 1, steps: 1, delta: 1e-5, accountant: 'gdp' as never })).toThrow(/accountant/);
  });
});
