import { beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../../../src/crypto/identity.ts';
import { loadBundledSchema } from '../../../../src/data/bundled.ts';
import type { DatasetSchema } from '../../../../src/data/schema.ts';
import { FedmarkError } from '../../../../src/errors.ts';
import { epsilonAfterRounds, planDp, stepsPerRound } from '../../../../src/federation/workloads/sgd/dp-plan.ts';
import { jobPreset } from '../../../../src/federation/job-presets.ts';
import { parseManifest, type JobManifest, MANIFEST_SCHEMA_VERSION } from '../../../../src/federation/manifest.ts';

/** Calibration stops once target − ε ≤ this (calibrateNoiseMultiplier's default, as in Opacus). */
const CALIBRATION_TOLERANCE = 0.01;

const owner = publicIdentity(generateIdentity('owner'));
const partners = ['bank-a', 'telco-b', 'retail-c'].map((n) => publicIdentity(generateIdentity(n)));
let schema: DatasetSchema;

beforeAll(async () => {
  schema = await loadBundledSchema('telco-churn');
});

function manifestInput(opts: { epsilon?: number | null; rounds?: number; samplingRate?: number; epochs?: number; delta?: number }): Record<string, unknown> {
  const preset = jobPreset({ jobId: 'dp-plan-test', schema, partners: 3, rounds: opts.rounds ?? 20, epsilon: opts.epsilon, delta: opts.delta });
  const localTraining = {
    ...preset.localTraining,
    ...(opts.samplingRate !== undefined ? { samplingRate: opts.samplingRate } : {}),
    ...(opts.epochs !== undefined ? { epochs: opts.epochs } : {}),
  };
  return { ...preset, localTraining, schemaVersion: MANIFEST_SCHEMA_VERSION, createdAt: '2026-01-01T00:00:00.000Z', owner, partners };
}

const manifest = (opts: Parameters<typeof manifestInput>[0]): JobManifest => parseManifest(manifestInput(opts));

function thrown(f: () => unknown): FedmarkError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return err as FedmarkError;
  }
  throw new Error('expected a FedmarkError, nothing was thrown');
}

describe('planDp', () => {
  it.each([
    // target ε, rounds, sampling rate, local epochs, δ
    [0.5, 20, 0.02, 1, 1e-5],
    [1, 20, 0.02, 1, 1e-5],
    [3, 20, 0.02, 1, 1e-5],
    [8, 20, 0.02, 1, 1e-5],
    [3, 5, 0.05, 2, 1e-6],
    [2, 50, 0.01, 1, 1e-5],
  ])(
    'target ε %f: calibrated σ gives ε after all rounds ≤ target and within tolerance (rounds %i, q %f, epochs %i, δ %f)',
    (target, rounds, q, epochs, delta) => {
      const plan = planDp(manifest({ epsilon: target, rounds, samplingRate: q, epochs, delta }))!;
      expect(plan).not.toBeNull();
      expect(plan.samplingRate).toBe(q);
      expect(plan.delta).toBe(delta);
      expect(plan.targetEpsilon).toBe(target);
      expect(plan.stepsPerRound).toBe(epochs * Math.round(1 / q));
      expect(plan.maxSteps).toBe(plan.stepsPerRound * rounds);
      // Every planned release composed: DP-SGD in every round, the row count once, every evaluation.
      const eps = epsilonAfterRounds(plan, rounds, plan.evaluationReleases);
      expect(eps).toBeLessThanOrEqual(target);
      expect(target - eps).toBeLessThanOrEqual(CALIBRATION_TOLERANCE);
      expect(plan.split.total).toBeCloseTo(eps, 12);
      // σ is (near-)minimal: 2% less noise no longer fits under the target minus the tolerance.
      expect(epsilonAfterRounds({ ...plan, noiseMultiplier: plan.noiseMultiplier * 0.98 }, rounds, plan.evaluationReleases)).toBeGreaterThan(
        target - CALIBRATION_TOLERANCE,
      );
      // The budget is split as the manifest says: 2 % to the row count, 10 % to the evaluation (of the Rényi divergence at the conversion's order).
      expect(plan.split.weight).toBeCloseTo(0.02, 2);
      expect(plan.split.evaluation).toBeCloseTo(0.1, 2);
      expect(plan.split.training + plan.split.weight + plan.split.evaluation).toBeCloseTo(1, 12);
      // Training alone costs less than the target: the rest went to the other releases.
      expect(plan.split.trainingEpsilon).toBeLessThan(eps);
    },
  );

  it('spends ε monotonically over the rounds, starting from 0', () => {
    const plan = planDp(manifest({ epsilon: 3, rounds: 10 }))!;
    const spent = Array.from({ length: 11 }, (_, r) => epsilonAfterRounds(plan, r));
    expect(spent[0]).toBe(0);
    for (let r = 1; r <= 10; r++) expect(spent[r]).toBeGreaterThan(spent[r - 1]);
    expect(spent[10]).toBeLessThanOrEqual(3);
  });

  it('plans one weight release, and one evaluation per round only when the manifest asks for it', () => {
    const off = planDp(manifest({ epsilon: 3, rounds: 10 }))!;
    expect(off.evaluationReleases).toBe(1);
    const input = manifestInput({ epsilon: 3, rounds: 10 });
    const on = planDp(parseManifest({ ...input, evaluation: { ...(input.evaluation as object), everyRound: true } }))!;
    expect(on.evaluationReleases).toBe(11);
    // Ten more evaluations at the same share: each is noisier, and DP-SGD's σ is the same.
    expect(on.evaluationNoiseMultiplier).toBeGreaterThan(off.evaluationNoiseMultiplier * 3);
    expect(on.noiseMultiplier).toBeCloseTo(off.noiseMultiplier, 1);
    // The sensitivity of one hold-out row: global histogram, two segments (telco), count, squared error, capped log loss.
    expect(off.evaluationSensitivity).toBeCloseTo(Math.sqrt(6), 12);
  });

  it('needs more noise for a smaller ε or more rounds', () => {
    const sigma = (epsilon: number, rounds: number) => planDp(manifest({ epsilon, rounds }))!.noiseMultiplier;
    expect(sigma(1, 20)).toBeGreaterThan(sigma(3, 20));
    expect(sigma(3, 40)).toBeGreaterThan(sigma(3, 20));
  });

  it('keeps a fixed noise multiplier as given and accounts it honestly', () => {
    const input = manifestInput({ epsilon: 3, rounds: 20 });
    const m = parseManifest({ ...input, dp: { ...(input.dp as object), noiseMultiplier: 0.8 } });
    const plan = planDp(m)!;
    expect(plan.noiseMultiplier).toBe(0.8);
    // σ = 0.8 is less noise than the calibrated σ for ε = 3, so the true spend exceeds the target.
    expect(epsilonAfterRounds(plan, 20)).toBeGreaterThan(3);
    expect(plan.split.total).toBeGreaterThan(3);
    expect(plan.split.weight).toBeCloseTo(0.02, 3);
  });

  it('returns null for a job without DP', () => {
    expect(planDp(manifest({ epsilon: null }))).toBeNull();
  });

  it('derives the same σ for every party from the manifest alone', () => {
    const m = manifest({ epsilon: 3 });
    expect(planDp(structuredClone(m))).toEqual(planDp(m));
  });
});

describe('manifests without a sampling rate', () => {
  it('parseManifest rejects a DP job without localTraining.samplingRate, naming the field', () => {
    const input = manifestInput({ epsilon: 3 });
    const { samplingRate: _dropped, ...localTraining } = input.localTraining as Record<string, unknown>;
    const err = thrown(() => parseManifest({ ...input, localTraining }));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toMatch(/samplingRate/);
    expect(err.message).toMatch(/dp/);
  });

  it('planDp and stepsPerRound refuse a DP manifest that bypassed parsing without a sampling rate', () => {
    const m = manifest({ epsilon: 3 });
    const broken = { ...m, localTraining: { ...m.localTraining, samplingRate: undefined } } as JobManifest;
    const e1 = thrown(() => planDp(broken));
    expect(e1.code).toBe('DP_NO_SAMPLING_RATE');
    expect(e1.message).toMatch(/samplingRate/);
    expect(thrown(() => stepsPerRound(broken)).code).toBe('DP_NO_SAMPLING_RATE');
  });

  it('accepts a non-DP job without a sampling rate', () => {
    const m = manifest({ epsilon: null });
    expect(m.localTraining.samplingRate).toBeUndefined();
    expect(m.dp).toBeNull();
  });

  it.each([0, -0.1, 1.5])('rejects the sampling rate %f with a clear error', (q) => {
    const err = thrown(() => parseManifest(manifestInput({ epsilon: 3, samplingRate: q })));
    expect(err.code).toBe('MANIFEST_INVALID');
    expect(err.message).toMatch(/localTraining\.samplingRate/);
  });
});
