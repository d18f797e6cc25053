import { describe, expect, it } from 'vitest';
import { strategySpecSchema, type JobManifest } from '../../../../src/federation/manifest.ts';
import { FederatedStrategy } from '../../../../src/federation/workloads/sgd/strategy.ts';
import { toGrid } from '../../../../src/federation/release-grid.ts';

const m = (strategy: JobManifest['strategy'], rounds = 4) => ({ strategy, rounds }) as JobManifest;
// One partner, weight 1: the summed vector is the average delta followed by the weight.
const sum = Float64Array.from([0.5, -0.25, 1]);

describe('SGD server step: optimizers from the manifest and learning-rate schedules', () => {
  it('the manifest schema takes FedAvgM, FedYogi, FedAdagrad and a schedule, and keeps old strategies as they were', () => {
    expect(strategySpecSchema.parse({ name: 'fedyogi' })).toEqual({ name: 'fedyogi', serverLr: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
    expect(strategySpecSchema.parse({ name: 'fedavgm' })).toEqual({ name: 'fedavgm', serverLr: 1, momentum: 0.9 });
    // No schedule key appears when none was given: the canonical manifest (and its hash) is unchanged.
    expect(strategySpecSchema.parse({ name: 'fedavg' })).toEqual({ name: 'fedavg', serverLr: 1 });
    expect(strategySpecSchema.parse({ name: 'fedadagrad', schedule: { kind: 'cosine' } }).schedule).toEqual({
      kind: 'cosine',
      minFactor: 0.05,
      warmupRounds: 0,
    });
    expect(() => strategySpecSchema.parse({ name: 'fedavgm', momentum: 1 })).toThrow();
    expect(() => strategySpecSchema.parse({ name: 'fedavg', schedule: { kind: 'step', every: 0, gamma: 0.5 } })).toThrow();
  });

  it('a step schedule scales the server learning rate of the round it is applied to', () => {
    const s = new FederatedStrategy(m({ name: 'fedavg', serverLr: 1, schedule: { kind: 'step', every: 2, gamma: 0.5 } }));
    const start = { params: Float64Array.from([0, 0]), optimizerState: null };
    expect(Array.from(s.apply(start, sum, 1).params)).toEqual([0.5, -0.25]);
    expect(Array.from(s.apply(start, sum, 3).params)).toEqual([0.25, -0.125]);
    // Without a round the step is round 1's (the unscheduled behaviour).
    expect(Array.from(s.apply(start, sum).params)).toEqual([0.5, -0.25]);
  });

  it('FedYogi runs as the strategy, its state carried between rounds, the model on the release grid', () => {
    const s = new FederatedStrategy(m({ name: 'fedyogi', serverLr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 }));
    const r1 = s.apply({ params: Float64Array.from([1, -1]), optimizerState: null }, sum, 1);
    expect(r1.optimizerState).toMatchObject({ kind: 'fedyogi', round: 1 });
    // Round 1: m = 0.1Δ, v = 0.01Δ², step = 0.1·0.1Δ/(0.1|Δ| + τ).
    expect(r1.params[0]).toBe(toGrid(1 + (0.1 * 0.05) / (0.05 + 1e-3)));
    const r2 = s.apply(r1, sum, 2);
    expect(r2.optimizerState).toMatchObject({ kind: 'fedyogi', round: 2 });
    expect(r2.params[0]).toBeGreaterThan(r1.params[0]);
  });

  it('a FedAvgM job’s momentum makes the second identical update move the model 1 + β times as far', () => {
    const s = new FederatedStrategy(m({ name: 'fedavgm', serverLr: 1, momentum: 0.5 }));
    const r1 = s.apply({ params: Float64Array.from([0, 0]), optimizerState: null }, sum, 1);
    const r2 = s.apply(r1, sum, 2);
    expect(r2.params[0] - r1.params[0]).toBeCloseTo(0.75, 6);
  });
});
