import { describe, expect, it } from 'vitest';
import { adaptiveOptimizer, createServerOptimizer, fedAvgM, type ServerOptimizer, type ServerOptimizerState } from '../../src/train/server-optimizers.ts';

/**
 * Reference values: Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2, and FedAvgM
 * (Hsu et al. 2019), computed independently in float64 from the update rules for three rounds of
 * average updates Δ̄ starting at w = [1, −1] (lr 0.1, β₁ 0.9, β₂ 0.99, τ 1e-3; FedAvgM η 0.5, β 0.9).
 */
const deltas = [
  [0.5, -0.2],
  [0.1, 0.3],
  [-0.4, 0.05],
];
const reference: Record<string, number[][]> = {
  fedyogi: [
    [1.0980392156862744, -1.0952380952380951],
    [1.20382839354222, -1.062854249737273],
    [1.2182644584707447, -1.020608881062563],
  ],
  fedadagrad: [
    [1.0099800399201597, -1.0099502487562189],
    [1.0207453149115098, -1.0066312528173602],
    [1.0222089383162054, -1.0023025508554348],
  ],
  fedadam: [
    [1.0980392156862744, -1.0952380952380951],
    [1.2043307922364048, -1.0628056628056628],
    [1.2188535279995756, -1.0202946453107153],
  ],
  fedavgm: [
    [1.25, -1.1],
    [1.525, -1.04],
    [1.5725, -0.9610000000000001],
  ],
};

function run(opt: ServerOptimizer, viaJson = false): { trajectory: number[][]; state: ServerOptimizerState | null } {
  let w: Float64Array = Float64Array.from([1, -1]);
  let state: ServerOptimizerState | null = null;
  const trajectory: number[][] = [];
  for (const d of deltas) {
    const r = opt.apply(w, Float64Array.from(d), state);
    w = r.params;
    state = viaJson ? (JSON.parse(JSON.stringify(r.state)) as ServerOptimizerState) : r.state;
    trajectory.push(Array.from(w));
  }
  return { trajectory, state };
}

describe('server optimizers against the papers’ update rules', () => {
  for (const kind of ['fedyogi', 'fedadagrad', 'fedadam'] as const) {
    it(`${kind} follows Algorithm 2 of Reddi et al. 2021`, () => {
      const { trajectory, state } = run(adaptiveOptimizer(kind, { lr: 0.1 }));
      trajectory.forEach((w, t) => w.forEach((x, i) => expect(x).toBeCloseTo(reference[kind][t][i], 13)));
      expect(state).toMatchObject({ kind, round: 3 });
    });
  }

  it('FedYogi and FedAdam agree in round 1 (v starts at 0) and differ after: Yogi’s second moment moves by sign, not by decay', () => {
    const y = run(adaptiveOptimizer('fedyogi', { lr: 0.1 })).trajectory;
    const a = run(adaptiveOptimizer('fedadam', { lr: 0.1 })).trajectory;
    expect(y[0]).toEqual(a[0]);
    expect(Math.abs(y[1][0] - a[1][0])).toBeGreaterThan(1e-4);
  });

  it('FedAvgM accumulates server momentum; momentum 0 is FedAvg', () => {
    const { trajectory } = run(fedAvgM({ serverLr: 0.5, momentum: 0.9 }));
    trajectory.forEach((w, t) => w.forEach((x, i) => expect(x).toBeCloseTo(reference.fedavgm[t][i], 13)));
    const plain = run(createServerOptimizer({ name: 'fedavg', serverLr: 0.5 })).trajectory;
    expect(run(fedAvgM({ serverLr: 0.5, momentum: 0 })).trajectory).toEqual(plain);
  });

  it('is bit-identical after the state goes through JSON (partners persist it)', () => {
    for (const opt of [adaptiveOptimizer('fedyogi', { lr: 0.1 }), adaptiveOptimizer('fedadagrad', { lr: 0.1 }), fedAvgM({ serverLr: 0.5 })]) {
      expect(run(opt, true).trajectory).toEqual(run(opt).trajectory);
    }
  });

  it('refuses a state of another optimizer or shape, and bad hyper-parameters, naming them', () => {
    const adam = adaptiveOptimizer('fedadam', { lr: 0.1 }).apply(Float64Array.from([0, 0]), Float64Array.from([1, 1]), null).state;
    expect(() => adaptiveOptimizer('fedyogi', { lr: 0.1 }).apply(Float64Array.from([0, 0]), Float64Array.from([1, 1]), adam)).toThrow(/FedYogi state/);
    expect(() => fedAvgM().apply(Float64Array.from([0]), Float64Array.from([1]), adam)).toThrow(/FedAvgM state/);
    expect(() => fedAvgM({ momentum: 1 })).toThrow(/momentum/);
    expect(() => createServerOptimizer({ name: 'fedyogi', lr: 0.1, beta2: 1 })).toThrow(/beta2/);
    expect(() => createServerOptimizer({ name: 'fedavgm', momentum: -0.1 })).toThrow(/momentum/);
    expect(() => adaptiveOptimizer('fedadagrad', { lr: 0.1 }).apply(Float64Array.from([0]), Float64Array.from([NaN]), null)).toThrow(/not finite/);
  });
});
