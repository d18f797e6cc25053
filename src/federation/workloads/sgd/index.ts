import { buildEvalHistograms, histogramLayout, metricsFromHistograms, type FederatedEvalMetrics, type HistogramLayout } from '../../../metrics/histogram.ts';
import { initParameters, parameterCount, predictProba } from '../../../model/params.ts';
import { trainLocal } from '../../../train/local.ts';
import { hashParameters } from '../../../util/hash.ts';
import { deriveSeed } from '../../../util/rng.ts';
import type { Dataset } from '../../../data/encode.ts';
import type { JobManifest } from '../../manifest.ts';
import { FedmarkError } from '../../../errors.ts';
import type { LocalContext, LocalResult, PartSpec, PrivacyPlan, RoundPlan, Workload } from '../../workload.ts';
import { addGaussianNoiseInPlace } from '../../../privacy/noise.ts';
import { evaluatesEveryRound, evaluationRelease, planDp, updateRelease, weightRelease, type DpPlan } from './dp-plan.ts';
import { FederatedStrategy, weightedUpdateVector, type SgdState } from './strategy.ts';
import { standardizedRows, validateSgdParams } from './standardize.ts';

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
export { planDp, epsilonAfterRounds, evaluatesEveryRound, stepsPerRound, type DpPlan } from './dp-plan.ts';
export { FederatedStrategy, weightedUpdateVector, WEIGHT_UNIT } from './strategy.ts';
export { foldStandardization, standardizeSchema, type Standardize } from './standardize.ts';

// Resolved once per manifest object: σ calibration and the histogram layout are not free.
const dpPlans = new WeakMap<JobManifest, DpPlan | null>();
const layouts = new WeakMap<JobManifest, HistogramLayout>();

function dpPlanOf(m: JobManifest): DpPlan | null {
  if (!dpPlans.has(m)) dpPlans.set(m, planDp(m));
  return dpPlans.get(m)!;
}

export function evaluationLayout(m: JobManifest): HistogramLayout {
  let l = layouts.get(m);
  if (!l) {
    l = histogramLayout(m.evaluation.segments, m.evaluation.bins);
    layouts.set(m, l);
  }
  return l;
}

/** Length of the `update` part: the parameters followed by the weight. */
export function updateLength(m: JobManifest): number {
  return parameterCount(m.model, m.dataset.featureNames.length) + 1;
}

function parts(m: JobManifest, train: boolean): PartSpec[] {
  const evaluation: PartSpec = { name: 'evaluation', length: evaluationLayout(m).length, domain: 'count', realSlots: [[evaluationLayout(m).sums, evaluationLayout(m).sums + 2]], bound: null, use: 'report' };
  if (!train) return [evaluation];
  const update: PartSpec = { name: 'update', length: updateLength(m), domain: 'real', bound: null, use: 'state' };
  return evaluatesEveryRound(m) ? [update, evaluation] : [update];
}

/**
 * Scores the hold-out with the model entering the round as fixed-bin histograms (the declared
 * segments only). With DP: per-row log loss capped, its sum carried divided by the cap (so one row
 * moves every cell by at most 1: L2 sensitivity √(4 + segments)), and Gaussian noise added to
 * every cell — a release charged as `evaluation`.
 */
function evaluationVector(m: JobManifest, params: Float64Array, test: Dataset): Float64Array {
  const scores = predictProba(m.model, m.dataset.featureNames.length, params, test.X, test.n);
  const declared = m.evaluation.segments;
  const segments = Object.fromEntries(Object.entries(test.sensitive).filter(([name]) => name in declared));
  const layout = evaluationLayout(m);
  const dp = dpPlanOf(m);
  const v = buildEvalHistograms(scores, test.y, segments, layout, dp ? { logLossCap: dp.logLossCap } : {});
  if (dp) {
    v[layout.sums] /= dp.logLossCap;
    addGaussianNoiseInPlace(v, dp.evaluationNoiseMultiplier * dp.evaluationSensitivity);
  }
  return v;
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
  const result = await trainLocal(m.model, d, state.params, data.train, {
    epochs: lt.epochs,
    batchSize: lt.batchSize,
    learningRate: lt.learningRate,
    optimizer: lt.optimizer,
    l2: lt.l2,
    seed: deriveSeed(m.seed, 'train', ctx.keyId, ctx.round, ctx.attempt),
    proximalMu: new FederatedStrategy(m).proximalMu,
    dp: dp ? { noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm, samplingRate: dp.samplingRate, normalizerRows: rows } : undefined,
  });
  const update = weightedUpdateVector(state.params, result.params, rows);
  const releases = plan.releases.map((r) => (r.label === 'update' ? { ...r, steps: result.dp?.steps ?? r.steps } : r));
  return { parts: evaluation ? { update, evaluation } : { update }, releases };
}

/** The owner's metrics from a round's evaluation sums: the capped log-loss sum scaled back, n/a for groups the noise drowns. */
function report(m: JobManifest, round: number, sums: Record<string, Float64Array>): FederatedEvalMetrics | null {
  if (!sums.evaluation) return null;
  const layout = evaluationLayout(m);
  const dp = dpPlanOf(m);
  if (!dp) return metricsFromHistograms(sums.evaluation, layout);
  const v = Float64Array.from(sums.evaluation);
  v[layout.sums] *= dp.logLossCap;
  // Noise std of a summed cell: each submitter added its own (at most every partner of the round).
  const submitters = sgdWorkload.plan(m, round).selection === 'all' ? m.partners.length : m.partnersPerRound;
  return metricsFromHistograms(v, layout, { noiseStd: dp.evaluationNoiseMultiplier * dp.evaluationSensitivity * Math.sqrt(submitters) });
}

export const sgdWorkload: Workload<SgdState, FederatedEvalMetrics> = {
  kind: 'sgd',
  // The manifest schema already checks model, localTraining (sampling rate with DP) and strategy; params are the optional standardisation.
  validate: validateSgdParams,
  totalRounds: (m) => m.rounds + 1,
  plan: (m, round): RoundPlan => {
    const train = round <= m.rounds;
    const dp = dpPlanOf(m);
    const evaluates = !train || evaluatesEveryRound(m);
    const releases = dp ? [...(train ? [updateRelease(dp)] : []), ...(evaluates ? [evaluationRelease(dp)] : [])] : [];
    return {
      kind: train ? 'train' : 'evaluate',
      stages: ['upload'],
      parts: parts(m, train),
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
    if (!dp || labels.some((l) => l !== 'weight')) throw new FedmarkError('WORKLOAD_RELEASES', `the SGD workload releases only "weight" once per job, asked for ${labels.join(', ')}`);
    // The training row count with Gaussian noise of std σ_w (sensitivity 1 row): charged once, reused every round.
    const noisy = Float64Array.from([data.train.n]);
    addGaussianNoiseInPlace(noisy, dp.weightNoiseMultiplier);
    return { weight: noisy };
  },
  privacy: (m): PrivacyPlan | null => {
    const dp = dpPlanOf(m);
    return dp ? { targetEpsilon: dp.targetEpsilon, delta: dp.delta, noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm } : null;
  },
  initialState: (m) => ({ params: initParameters(m.model, m.dataset.featureNames.length, deriveSeed(m.seed, 'init')), optimizerState: null }),
  hash: (s) => hashParameters(s.params),
  local,
  apply: (m, state, round, sums) => new FederatedStrategy(m).apply(state, sums.update, round),
  report,
};
