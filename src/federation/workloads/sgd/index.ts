import type { FederatedEvalMetrics } from '../../../metrics/histogram.ts';
import { initParameters, parameterCount, predictProba } from '../../../model/params.ts';
import { trainLocal } from '../../../train/local.ts';
import { workerThreads } from '../../../util/worker-pool.ts';
import { hashParameters } from '../../../util/hash.ts';
import { deriveSeed } from '../../../util/rng.ts';
import type { Dataset } from '../../../data/encode.ts';
import { FedmarkError } from '../../../errors.ts';
import type { ModelSpec } from '../../../model/spec.ts';
import type { JobManifest } from '../../manifest.ts';
import type { LocalContext, LocalResult, PartSpec, PrivacyPlan, RoundPlan, Workload } from '../../workload.ts';
import { addGaussianNoiseInPlace } from '../../../privacy/noise.ts';
import { evaluatesRound, evaluationRelease, planDp, updateRelease, weightRelease, type DpPlan } from './dp-plan.ts';
import { FederatedStrategy, WEIGHT_UNIT, weightedUpdateVector, type SgdState } from './strategy.ts';
import { jobLimits, NOISE_MARGIN_SIGMAS } from '../../part-encoding.ts';
import { toGrid } from '../../release-grid.ts';
import { standardizedRows, validateSgdParams } from './standardize.ts';
import { evaluationHistograms, evaluationMetrics, evaluationPart, evaluationPartBound, type EvaluationNoise } from '../evaluation.ts';
import { initialSelection, selectionHash, selectionStep } from './selection.ts';
import { sha256Hex } from '../../../util/hash.ts';

/**
 * The first workload: logistic regression or an MLP, trained by local (DP-)SGD on each partner and
 * combined by a server optimizer (FedAvg, FedProx, FedAdam). Rounds 1..R train: each selected
 * partner uploads its weighted model delta with its weight (`update`) and, when the manifest asks
 * for per-round evaluation, the score histograms of the model entering the round on its hold-out
 * (`evaluation`). Round R+1 only evaluates the final model, with every partner.
 *
 * With DP every value derived from rows is a charged release (dp-plan.ts): the weight is the
 * partner's noisy row count, released once (`weight`) and reused; the update is DP-SGD (`update`),
 * normalised by that noisy count; each evaluation vector is a Gaussian release (`evaluation`).
 */

export type { SgdState } from './strategy.ts';
export { planDp, epsilonAfterRounds, evaluatesEveryRound, evaluatesRound, plannedEvaluations, stepsPerRound, type DpPlan } from './dp-plan.ts';
export { FederatedStrategy, weightedUpdateVector, WEIGHT_UNIT } from './strategy.ts';
export { foldStandardization, standardizeSchema, type Standardize } from './standardize.ts';
export { evaluationHistograms, evaluationLayout } from '../evaluation.ts';

// Resolved once per manifest object: σ calibration and the histogram layout are not free.
const dpPlans = new WeakMap<JobManifest, DpPlan | null>();

function dpPlanOf(m: JobManifest): DpPlan | null {
  if (!dpPlans.has(m)) dpPlans.set(m, planDp(m));
  return dpPlans.get(m)!;
}

/** The SGD job's evaluation noise (null without DP). */
function evaluationNoiseOf(m: JobManifest): EvaluationNoise | null {
  const dp = dpPlanOf(m);
  return dp ? { noiseMultiplier: dp.evaluationNoiseMultiplier, sensitivity: dp.evaluationSensitivity, logLossCap: dp.logLossCap } : null;
}

/** The job's logistic or MLP spec (the manifest's model of an `sgd` job). */
export function sgdModel(m: Pick<JobManifest, 'jobId' | 'model'>): ModelSpec {
  if (m.model.kind === 'gbdt')
    throw new FedmarkError('MANIFEST_INVALID', `job ${m.jobId}: the sgd workload trains logistic or MLP models, not ${m.model.kind}`);
  return m.model;
}

/** Length of the `update` part: the parameters followed by the weight. */
export function updateLength(m: JobManifest): number {
  return parameterCount(sgdModel(m), m.dataset.featureNames.length) + 1;
}

function parts(m: JobManifest, round: number): PartSpec[] {
  const evaluation = evaluationPart(m, evaluationNoiseOf(m));
  if (round > m.rounds) return [evaluation];
  const update: PartSpec = { name: 'update', length: updateLength(m), domain: 'real', bound: updateBound(m), use: 'state' };
  if (!evaluatesRound(m, round)) return [update];
  // With early stopping a checkpoint's scores decide the next state: every key holder opens them.
  return [update, m.evaluation.earlyStopping ? { ...evaluation, use: 'state' } : evaluation];
}

/**
 * Largest |slot| of one partner's evaluation vector: a count, the row count and Σ squared error are
 * at most its rows; Σ log loss at most rows × the per-row cap (carried divided by the cap with DP);
 * with DP, plus the noise margin.
 */
export function evaluationBound(m: JobManifest): number {
  return evaluationPartBound(m, evaluationNoiseOf(m));
}

/** Largest weight a partner sends (rows / WEIGHT_UNIT; with DP its noisy count, so plus the noise margin). */
export function maxWeight(m: JobManifest): number {
  const dp = dpPlanOf(m);
  return toGrid((jobLimits(m).maxRowsPerPartner + (dp ? NOISE_MARGIN_SIGMAS * dp.weightNoiseMultiplier : 0)) / WEIGHT_UNIT);
}

/** Largest |slot| of the update part: the largest weight times the declared largest |Δ| of a parameter (≥ 1, so the weight slot fits too). */
export function updateBound(m: JobManifest): number {
  return maxWeight(m) * jobLimits(m).maxAbsUpdate;
}

/**
 * Scores the hold-out with the model entering the round as fixed-bin histograms (the declared
 * segments only). With DP: per-row log loss capped, its sum carried divided by the cap (so one row
 * moves every cell by at most 1: L2 sensitivity √(4 + segments)), and Gaussian noise added to
 * every cell — a release charged as `evaluation`.
 */
function evaluationVector(m: JobManifest, params: Float64Array, test: Dataset): Float64Array {
  return evaluationHistograms(m, predictProba(sgdModel(m), m.dataset.featureNames.length, params, test.X, test.n), test, evaluationNoiseOf(m));
}

/** Rows the partner's weight (and DP-SGD's normaliser) stands for: its released noisy count with DP (at least 1), its row count without. */
function weightRows(m: JobManifest, released: Readonly<Record<string, Float64Array>>, n: number): number {
  if (!dpPlanOf(m)) return n;
  const noisy = released.weight?.[0];
  if (noisy === undefined) throw new FedmarkError('WORKLOAD_RELEASES', 'a DP training round needs the partner’s released row count (`weight`)');
  return Math.max(1, noisy);
}

async function local(ctx: LocalContext<SgdState>): Promise<LocalResult> {
  const { manifest: m, state, plan } = ctx;
  const data = standardizedRows(m, ctx.data);
  const d = m.dataset.featureNames.length;
  const evaluation = plan.parts.some((p) => p.name === 'evaluation') ? evaluationVector(m, state.params, data.test) : null;
  if (plan.kind !== 'train') return { parts: { evaluation: evaluation! } };
  const dp = dpPlanOf(m);
  const lt = m.localTraining;
  const rows = weightRows(m, ctx.released, data.train.n);
  const result = await trainLocal(sgdModel(m), d, state.params, data.train, {
    epochs: lt.epochs,
    batchSize: lt.batchSize,
    learningRate: lt.learningRate,
    optimizer: lt.optimizer,
    ...(lt.momentum === undefined ? {} : { momentum: lt.momentum }),
    l2: lt.l2,
    seed: deriveSeed(m.seed, 'train', ctx.keyId, ctx.round, ctx.attempt),
    proximalMu: new FederatedStrategy(m).proximalMu,
    threads: workerThreads(),
    dp: dp ? { noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm, samplingRate: dp.samplingRate, normalizerRows: rows } : undefined,
  });
  const update = weightedUpdateVector(state.params, result.params, rows);
  const releases = plan.releases.map((r) => (r.label === 'update' ? { ...r, steps: result.dp?.steps ?? r.steps } : r));
  return { parts: evaluation ? { update, evaluation } : { update }, releases };
}

/** The owner's metrics from a round's evaluation sums: the capped log-loss sum scaled back, n/a for groups the noise drowns. */
function report(m: JobManifest, round: number, sums: Record<string, Float64Array>): FederatedEvalMetrics | null {
  if (!sums.evaluation) return null;
  // Each submitter added its own noise (at most every partner of the round).
  const submitters = round > m.rounds ? m.partners.length : m.partnersPerRound;
  return evaluationMetrics(m, sums.evaluation, evaluationNoiseOf(m), submitters);
}

/** The server step: the strategy on the summed update, then (with early stopping) the selection on the checkpoint's decrypted scores. */
function apply(m: JobManifest, state: SgdState, round: number, sums: Record<string, Float64Array>): SgdState {
  const next = new FederatedStrategy(m).apply(state, sums.update, round);
  if (!m.evaluation.earlyStopping) return next;
  const { selection, params } = selectionStep(m, state.selection ?? initialSelection(), round, state.params, next.params, report(m, round, sums));
  return { params, optimizerState: next.optimizerState, selection };
}

export const sgdWorkload: Workload<SgdState, FederatedEvalMetrics> = {
  kind: 'sgd',
  validate: (m) => {
    // The manifest schema already checks model, localTraining (sampling rate with DP) and strategy; params are the optional standardisation.
    if (m.encryption.scheme === 'none')
      throw new FedmarkError('MANIFEST_INVALID', `job ${m.jobId}: SGD sums model updates at the coordinator, so encryption "none" cannot be used`);
    validateSgdParams(m);
  },
  totalRounds: (m) => m.rounds + 1,
  plan: (m, round): RoundPlan => {
    const train = round <= m.rounds;
    const dp = dpPlanOf(m);
    const evaluates = !train || evaluatesRound(m, round);
    const releases = dp ? [...(train ? [updateRelease(dp)] : []), ...(evaluates ? [evaluationRelease(dp)] : [])] : [];
    return {
      kind: train ? 'train' : 'evaluate',
      stages: ['upload'],
      parts: parts(m, round),
      selection: train ? 'sample' : 'all',
      releases,
      updatesState: train,
      uses: dp && train ? ['weight'] : [],
    };
  },
  jobReleases: (m) => {
    const dp = dpPlanOf(m);
    return dp ? [weightRelease(dp)] : [];
  },
  releaseOnce: ({ manifest: m, labels, data }) => {
    const dp = dpPlanOf(m);
    if (!dp || labels.some((l) => l !== 'weight'))
      throw new FedmarkError('WORKLOAD_RELEASES', `the SGD workload releases only "weight" once per job, asked for ${labels.join(', ')}`);
    // The training row count with Gaussian noise of std σ_w (sensitivity 1 row): charged once, reused every round.
    const noisy = Float64Array.from([data.train.n]);
    addGaussianNoiseInPlace(noisy, dp.weightNoiseMultiplier);
    return { weight: noisy };
  },
  privacy: (m): PrivacyPlan | null => {
    const dp = dpPlanOf(m);
    return dp ? { targetEpsilon: dp.targetEpsilon, delta: dp.delta, noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm } : null;
  },
  initialState: (m) => ({
    params: initParameters(sgdModel(m), m.dataset.featureNames.length, deriveSeed(m.seed, 'init')),
    optimizerState: null,
    ...(m.evaluation.earlyStopping ? { selection: initialSelection() } : {}),
  }),
  // Without selection the hash is the parameters' alone (as before early stopping existed).
  hash: (s) => (s.selection ? sha256Hex(`${hashParameters(s.params)}:${selectionHash(s.selection)}`) : hashParameters(s.params)),
  local,
  apply,
  report,
  selection: (_m, s) => s.selection?.chosen ?? null,
};
