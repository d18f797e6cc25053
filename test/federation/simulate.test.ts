import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundled } from '../../src/data/bundled.ts';
import { concatDatasets, subsetDataset, type Dataset } from '../../src/data/encode.ts';
import { partitionIid } from '../../src/data/partition.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import { FedmarkError } from '../../src/errors.ts';
import { epsilonAfterRounds, planDp } from '../../src/federation/workloads/sgd/dp-plan.ts';
import { jobPreset, type JobPresetOptions } from '../../src/federation/job-presets.ts';
import { simulate, type SimulationPartner, type SimulationResult } from '../../src/federation/simulate.ts';
import { sgdModel } from '../../src/federation/workloads/sgd/index.ts';
import { auc } from '../../src/metrics/classification.ts';
import { predictProba } from '../../src/model/params.ts';
import { hashParameters } from '../../src/util/hash.ts';
import { splitPartnerData } from '../../cli/partner-data.ts';

const ROUNDS = 3;
const EPSILON = 3;
const NAMES = ['bank-a', 'telco-b', 'retail-c'];

let schema: DatasetSchema;
let partners: SimulationPartner[];
let pooledTest: Dataset;

beforeAll(async () => {
  const loaded = await loadBundled('telco-churn');
  schema = loaded.schema;
  // 3 partners × 600 rows (450 train + 150 hold-out each) from the head of the real telco file.
  const sample = subsetDataset(
    loaded.dataset,
    Array.from({ length: 1800 }, (_, i) => i),
  );
  partners = partitionIid(sample.n, 3, 5).map((idx, i) => ({ name: NAMES[i], ...splitPartnerData(subsetDataset(sample, idx), 0.25, 3) }));
  pooledTest = concatDatasets(partners.map((p) => p.test));
});

const job = (o: Partial<JobPresetOptions> = {}) => jobPreset({ jobId: 'sim-telco', schema, partners: 3, rounds: ROUNDS, epsilon: EPSILON, seed: 11, ...o });

function pooledAuc(r: SimulationResult): number {
  const d = r.manifest.dataset.featureNames.length;
  return auc(predictProba(sgdModel(r.manifest), d, r.params, pooledTest.X, pooledTest.n), pooledTest.y);
}

describe('simulate() on a telco sample: 3 partners, 3 rounds, CKKS + DP-SGD (ε = 3)', () => {
  let result: SimulationResult;
  const seen: number[] = [];

  beforeAll(async () => {
    result = await simulate({ job: job(), partners, onRound: (r) => seen.push(r.round) });
  });

  it('finishes with a useful model, scored on the pooled hold-out and, with DP noise, from the encrypted histograms', () => {
    expect(result.manifest.encryption.scheme).toBe('ckks');
    expect(pooledAuc(result)).toBeGreaterThan(0.7);
    // The histograms are a charged Gaussian release: the hold-out's size and AUC come out noisy, but they come out.
    const m = result.finalMetrics;
    expect(m.auc).toBeGreaterThanOrEqual(0);
    expect(m.auc).toBeLessThanOrEqual(1);
    expect(m.n).not.toBe(pooledTest.n);
    expect(m.n).toBeGreaterThan(0);
    expect(Math.abs(m.n - pooledTest.n)).toBeLessThan(3 * pooledTest.n);
  });

  it('reports every round: 3 train rounds (no per-round evaluation by default with DP) then the evaluation round, each with all 3 partners', () => {
    expect(result.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4]);
    expect(result.rounds.map((r) => r.kind)).toEqual(['train', 'train', 'train', 'evaluate']);
    expect(seen).toEqual([1, 2, 3, 4]);
    for (const r of result.rounds) {
      expect([...r.partners].sort()).toEqual([...NAMES].sort());
      expect(r.declined).toEqual([]);
    }
    expect(result.rounds.slice(0, 3).map((r) => r.metrics)).toEqual([null, null, null]);
    expect(result.finalMetrics).toEqual(result.rounds[3].metrics);
  });

  it('spends ε > 0 and ≤ the target per partner, growing round by round as the accountant predicts', () => {
    const plan = planDp(result.manifest)!;
    expect(result.noiseMultiplier).toBe(plan.noiseMultiplier);
    for (const name of NAMES) {
      expect(result.epsilon[name]).toBeGreaterThan(0);
      expect(result.epsilon[name]).toBeLessThanOrEqual(EPSILON);
      // Every release: the row count once, DP-SGD in each round, the final evaluation.
      expect(result.epsilon[name]).toBeCloseTo(epsilonAfterRounds(plan, ROUNDS, 1), 6);
      expect(result.rounds[3].epsilon[name]).toBeGreaterThan(result.rounds[2].epsilon[name]);
      const perRound = result.rounds.filter((r) => r.kind === 'train').map((r) => r.epsilon[name]);
      expect(perRound[0]).toBeCloseTo(epsilonAfterRounds(plan, 1), 6);
      expect(perRound[1]).toBeGreaterThan(perRound[0]);
      expect(perRound[2]).toBeGreaterThan(perRound[1]);
    }
  });

  it('ends on one model hash that matches the parameters, and the model changes every train round', () => {
    expect(result.modelHash).toBe(hashParameters(result.params));
    expect(result.rounds[3].modelHash).toBe(result.modelHash);
    const hashes = result.rounds.slice(0, 3).map((r) => r.modelHash);
    expect(new Set(hashes).size).toBe(3);
    expect(result.params.some((v) => v !== 0)).toBe(true);
  });

  it('reports the CKKS wire size of an update', () => {
    expect(result.wireBytes.update).toBeGreaterThan(0);
    expect(result.wireBytes.perParameter).toBeGreaterThan(0);
  });
});

describe('simulate(): partners that decline', () => {
  it('a partner whose maxEpsilon is too small declines every round and the job completes with the quorum', async () => {
    const strict = partners.map((p, i) => (i === 1 ? { ...p, maxEpsilon: 0.05 } : p));
    const r = await simulate({ job: job(), partners: strict });
    expect(r.manifest.quorum).toBe(2);
    const train = r.rounds.filter((x) => x.kind === 'train');
    expect(train).toHaveLength(ROUNDS);
    for (const round of train) {
      expect([...round.partners].sort()).toEqual(['bank-a', 'retail-c']);
      expect(round.declined).toHaveLength(1);
      expect(round.declined[0].name).toBe('telco-b');
      expect(round.declined[0].reason).toMatch(/above the limit 0\.05/);
    }
    // It spent nothing: the budget check runs before any training.
    expect(r.epsilon['telco-b']).toBe(0);
    expect(r.epsilon['bank-a']).toBeGreaterThan(0);
    // The evaluation round is budget-gated like a training round: its histograms are a release too.
    expect(r.rounds[ROUNDS].partners).not.toContain('telco-b');
    expect(r.rounds[ROUNDS].declined.map((d) => d.name)).toEqual(['telco-b']);
    expect(pooledAuc(r)).toBeGreaterThan(0.7);
  });

  it('fails with ROUND_FAILED when declines leave fewer partners than the quorum', async () => {
    const strict = partners.map((p, i) => (i > 0 ? { ...p, maxEpsilon: 0.05 } : p));
    const rounds: number[] = [];
    const err = await simulate({ job: job(), partners: strict, onRound: (x) => rounds.push(x.round) }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FedmarkError);
    expect((err as FedmarkError).code).toBe('ROUND_FAILED');
    expect((err as FedmarkError).message).toMatch(/round 1 missed its quorum of 2/);
    expect(rounds).toEqual([]);
  });
});

describe('simulate(): server strategies', () => {
  it('FedAdam and FedProx run to completion and learn; FedProx changes the result versus FedAvg', async () => {
    const base = { epsilon: null, rounds: ROUNDS };
    const fedavg = await simulate({ job: job(base), partners });
    const fedadam = await simulate({ job: job({ ...base, strategy: { name: 'fedadam', serverLr: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 } }), partners });
    const fedprox = await simulate({ job: job({ ...base, strategy: { name: 'fedprox', serverLr: 1, mu: 0.5 } }), partners });
    for (const [r, name] of [
      [fedavg, 'fedavg'],
      [fedadam, 'fedadam'],
      [fedprox, 'fedprox'],
    ] as const) {
      expect(r.manifest.strategy.name).toBe(name);
      expect(r.rounds).toHaveLength(ROUNDS + 1);
      expect(r.epsilon).toEqual({});
      expect(r.noiseMultiplier).toBeNull();
      expect(r.finalMetrics.auc).toBeGreaterThan(0.7);
      expect(pooledAuc(r)).toBeGreaterThan(0.7);
      // Without DP the 1000-bin histograms are exact: their AUC is the pooled one, up to binning.
      expect(Math.abs(r.finalMetrics.auc - pooledAuc(r))).toBeLessThan(0.01);
      // And every round's entering model is evaluated (per-round evaluation is free without DP).
      expect(r.rounds.every((x) => x.metrics !== null)).toBe(true);
    }
    expect(fedadam.modelHash).not.toBe(fedavg.modelHash);
    expect(fedprox.modelHash).not.toBe(fedavg.modelHash);
    // The proximal term pulls local models towards the global one, so FedProx moves less from 0.
    const norm = (p: Float64Array) => Math.sqrt(p.reduce((a, v) => a + v * v, 0));
    expect(norm(fedprox.params)).toBeLessThan(norm(fedavg.params));
  });
});
