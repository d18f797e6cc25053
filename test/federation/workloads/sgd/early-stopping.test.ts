import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundled } from '../../../../src/data/bundled.ts';
import { subsetDataset } from '../../../../src/data/encode.ts';
import { partitionIid } from '../../../../src/data/partition.ts';
import type { DatasetSchema } from '../../../../src/data/schema.ts';
import { jobPreset } from '../../../../src/federation/job-presets.ts';
import { parseManifest } from '../../../../src/federation/manifest.ts';
import { simulate, type SimulationPartner } from '../../../../src/federation/simulate.ts';
import { epsilonAfterRounds, planDp, plannedEvaluations } from '../../../../src/federation/workloads/sgd/dp-plan.ts';
import { releasePlan } from '../../../../src/federation/workload.ts';
import { sgdWorkload, type SgdState } from '../../../../src/federation/workloads/sgd/index.ts';
import { initialSelection, selectionStep } from '../../../../src/federation/workloads/sgd/selection.ts';
import type { FederatedEvalMetrics } from '../../../../src/metrics/histogram.ts';
import { splitPartnerData } from '../../../../cli/partner-data.ts';
import { identityFromSeed, publicIdentity } from '../../../../src/crypto/identity.ts';
import { openSecureSum } from '../../../../src/federation/secure-sum.ts';
import { PartnerRuntime } from '../../../../src/federation/partner-runtime.ts';
import { MemoryBudgetGuard } from '../../../../src/privacy/budget/memory-guard.ts';
import { signerFromSecretKey } from '../../../../src/privacy/ledger/signing.ts';

let schema: DatasetSchema;
let partners: SimulationPartner[];

beforeAll(async () => {
  const loaded = await loadBundled('telco-churn');
  schema = loaded.schema;
  const sample = subsetDataset(
    loaded.dataset,
    Array.from({ length: 1200 }, (_, i) => i),
  );
  partners = partitionIid(sample.n, 2, 5).map((idx, i) => ({ name: `p${i}`, ...splitPartnerData(subsetDataset(sample, idx), 0.25, 3) }));
});

const people = [identityFromSeed('owner', new Uint8Array(32).fill(1)), identityFromSeed('a', new Uint8Array(32).fill(2))];
const manifestOf = (o: Parameters<typeof jobPreset>[0]) =>
  parseManifest({
    ...jobPreset(o),
    schemaVersion: 3,
    createdAt: new Date(0).toISOString(),
    owner: publicIdentity(people[0]),
    partners: [publicIdentity(people[1])],
  });

const metrics = (auc: number) => ({ auc, logLoss: 0.5 }) as FederatedEvalMetrics;

describe('selectionStep: the rule every key holder applies to the decrypted checkpoint scores', () => {
  const m = () =>
    manifestOf({ jobId: 'es-unit', schema, partners: 1, rounds: 6, epsilon: null, earlyStopping: { every: 1, patience: 2, minDelta: 0.01, metric: 'auc' } });
  const p = (x: number) => Float64Array.of(x);

  it('keeps the best checkpoint and stops after `patience` checkpoints within minDelta of it, restoring its model', () => {
    const man = m();
    let sel = initialSelection();
    let r = selectionStep(man, sel, 2, p(1), p(2), metrics(0.7));
    expect(r.selection.best?.round).toBe(1);
    sel = r.selection;
    r = selectionStep(man, sel, 3, p(2), p(3), metrics(0.705)); // not better by more than 0.01
    expect(r.selection.chosen).toBeNull();
    expect(r.selection.sinceBest).toBe(1);
    r = selectionStep(man, r.selection, 4, p(3), p(4), metrics(0.69));
    expect(r.selection.chosen).toEqual({ round: 1, stopped: true });
    expect([...r.params]).toEqual([1]);
  });

  it('after the last round keeps its (unscored) model while the checkpoints still improved, else restores the best', () => {
    const man = m();
    let r = selectionStep(man, initialSelection(), 6, p(5), p(6), metrics(0.7));
    expect(r.selection.chosen).toEqual({ round: 6, stopped: false });
    expect([...r.params]).toEqual([6]);
    const s1 = selectionStep(man, initialSelection(), 5, p(4), p(5), metrics(0.8)).selection;
    r = selectionStep(man, s1, 6, p(5), p(6), metrics(0.7));
    expect(r.selection.chosen).toEqual({ round: 4, stopped: false });
    expect([...r.params]).toEqual([4]);
  });

  it('a NaN score (a class drowned by noise) never improves and never becomes the selection', () => {
    const man = m();
    const r = selectionStep(man, initialSelection(), 2, p(1), p(2), metrics(Number.NaN));
    const r2 = selectionStep(man, r.selection, 3, p(2), p(3), metrics(Number.NaN));
    const r3 = selectionStep(man, r2.selection, 4, p(3), p(4), metrics(Number.NaN));
    expect(r3.selection.chosen).toBeNull();
  });
});

describe('the DP plan prices every checkpoint evaluation before the job', () => {
  it('plans one evaluation per checkpoint plus the final one, and the composition of all of them meets the target', () => {
    const m = manifestOf({
      jobId: 'es-plan',
      schema,
      partners: 1,
      rounds: 10,
      epsilon: 3,
      earlyStopping: { every: 3, patience: 1, minDelta: 0, metric: 'auc' },
    });
    // Checkpoints after rounds 3, 6, 9 (scored in rounds 4, 7, 10), and the final evaluation.
    expect(plannedEvaluations(m)).toBe(4);
    const plan = planDp(m)!;
    expect(plan.evaluationReleases).toBe(4);
    expect(plan.split.total).toBeLessThanOrEqual(3);
    const rounds = releasePlan(sgdWorkload, m).rounds;
    expect(rounds.filter((r) => r.releases.some((x) => x.label === 'evaluation')).map((r) => r.round)).toEqual([4, 7, 10, 11]);
    const plain = planDp(manifestOf({ jobId: 'es-plan', schema, partners: 1, rounds: 10, epsilon: 3 }))!;
    // The evaluations' share of ε is fixed: four releases instead of one each carry more noise.
    expect(plan.evaluationNoiseMultiplier).toBeGreaterThan(plain.evaluationNoiseMultiplier);
  });

  it('refuses checkpoints with no room before the last round, with everyRound, and on a gbdt job', () => {
    expect(() => manifestOf({ jobId: 'es-bad', schema, partners: 1, rounds: 3, epsilon: 3, earlyStopping: { every: 3, minDelta: 0, metric: 'auc' } })).toThrow(
      /leaves no checkpoint/,
    );
    expect(() =>
      manifestOf({
        jobId: 'es-bad',
        schema,
        partners: 1,
        rounds: 4,
        epsilon: 3,
        evaluateEveryRound: true,
        earlyStopping: { every: 1, minDelta: 0, metric: 'auc' },
      }),
    ).toThrow(/choose one/);
  });
});

describe('simulate(): early stopping on the encrypted, noised checkpoint metrics (CKKS, ε = 3)', () => {
  it('stops, skips the remaining training rounds (no release for them), releases the best checkpoint and spends only what ran', async () => {
    // minDelta 1: no checkpoint after the first can improve, so the job stops at its second checkpoint.
    const job = jobPreset({
      jobId: 'es-sim',
      schema,
      partners: 2,
      rounds: 6,
      epsilon: 3,
      seed: 5,
      earlyStopping: { every: 1, patience: 1, minDelta: 1, metric: 'auc' },
    });
    const r = await simulate({ job, partners });
    expect(r.rounds.map((x) => [x.round, x.kind])).toEqual([
      [1, 'train'],
      [2, 'train'],
      [3, 'train'],
      [7, 'evaluate'],
    ]);
    expect(r.selection).toEqual({ round: 1, stopped: true });
    expect(r.rounds[2].selection).toEqual({ round: 1, stopped: true });
    const state = r.state as SgdState;
    expect(state.selection?.best?.round).toBe(1);
    expect([...r.params]).toEqual([...state.selection!.best!.params]);
    // Spent: 3 updates, the weight, and 3 evaluations (rounds 2, 3 and the final) — below the plan's 6 updates and 6 evaluations.
    const plan = planDp(r.manifest)!;
    for (const p of ['p0', 'p1']) {
      expect(r.epsilon[p]).toBeCloseTo(epsilonAfterRounds(plan, 3, 3), 6);
      expect(r.epsilon[p]).toBeLessThan(plan.split.total);
    }
  });

  it('without patience it only selects: every round runs and the last round keeps its model while the checkpoints improve', async () => {
    const job = jobPreset({ jobId: 'es-sel', schema, partners: 2, rounds: 4, epsilon: null, seed: 5, earlyStopping: { every: 1, minDelta: 0, metric: 'auc' } });
    const r = await simulate({ job, partners });
    expect(r.rounds.map((x) => x.round)).toEqual([1, 2, 3, 4, 5]);
    expect(r.selection?.stopped).toBe(false);
    const { best, last } = (r.state as SgdState).selection!;
    if (r.selection!.round < 4) {
      expect(r.selection!.round).toBe(best!.round);
      expect([...r.params]).toEqual([...best!.params]);
    } else expect(last!.round).toBe(best!.round); // the latest checkpoint was the best: round 4's model is kept
  });
});

describe('a partner after an agreed stop', () => {
  it('refuses to train a round a (lying) coordinator opens after it: nothing computed, nothing charged', async () => {
    const m = manifestOf({
      jobId: 'es-liar',
      schema,
      partners: 1,
      rounds: 6,
      epsilon: 3,
      encryption: { scheme: 'plain-insecure' },
      earlyStopping: { every: 1, patience: 1, minDelta: 0, metric: 'auc' },
    });
    const scheme = await openSecureSum(m.encryption);
    const budget = new MemoryBudgetGuard(3);
    const rt = new PartnerRuntime<SgdState>({
      manifest: m,
      workload: sgdWorkload,
      keyId: publicIdentity(people[1]).keyId,
      signer: signerFromSecretKey(people[1].signSecretKey),
      train: partners[0].train,
      test: partners[0].test,
      scheme,
      secretKey: null,
      budget,
    });
    try {
      // The state every key holder agreed on after round 3: training stopped, round 1's model selected.
      const init = sgdWorkload.initialState(m);
      rt.tracker.state = { ...init, selection: { ...initialSelection(), chosen: { round: 1, stopped: true } } };
      rt.tracker.round = 3;
      const res = await rt.buildSubmission(4, 0);
      expect(res).toMatchObject({ status: 'withheld', reason: expect.stringMatching(/training stopped early/) });
      expect(budget.spent(m.jobId, 1e-5)).toBe(0);
      // The final evaluation round is still answered.
      expect((await rt.buildSubmission(7, 0)).status).toBe('submitted');
    } finally {
      rt.dispose();
      scheme.dispose();
    }
  });
});
