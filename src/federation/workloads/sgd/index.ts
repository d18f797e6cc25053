import { FedmarkError } from '../../../errors.ts';
import { buildEvalHistograms, histogramLayout, metricsFromHistograms, type FederatedEvalMetrics, type HistogramLayout } from '../../../metrics/histogram.ts';
import { initParameters, parameterCount, predictProba } from '../../../model/params.ts';
import { trainLocal } from '../../../train/local.ts';
import { hashParameters } from '../../../util/hash.ts';
import { deriveSeed } from '../../../util/rng.ts';
import type { Dataset } from '../../../data/encode.ts';
import type { JobManifest } from '../../manifest.ts';
import type { LocalContext, LocalResult, PartSpec, PrivacyPlan, RoundPlan, Workload } from '../../workload.ts';
import { planDp, type DpPlan } from './dp-plan.ts';
import { FederatedStrategy, weightedUpdateVector, type SgdState } from './strategy.ts';

/**
 * The first workload: logistic regression or an MLP, trained by local (DP-)SGD on each partner and
 * combined by a server optimizer (FedAvg, FedProx, FedAdam). Rounds 1..R train: each selected
 * partner uploads its weighted model delta with its weight (`update`, charged as one DP-SGD release)
 * and the score histograms of the model entering the round on its hold-out (`evaluation`). Round
 * R+1 only evaluates the final model, with every partner.
 */

export type { SgdState } from './strategy.ts';
export { planDp, epsilonAfterRounds, stepsPerRound, type DpPlan } from './dp-plan.ts';
export { FederatedStrategy, weightedUpdateVector, WEIGHT_UNIT } from './strategy.ts';

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
  const evaluation: PartSpec = { name: 'evaluation', length: evaluationLayout(m).length, domain: 'count', bound: null, use: 'report' };
  if (!train) return [evaluation];
  return [{ name: 'update', length: updateLength(m), domain: 'real', bound: null, use: 'state' }, evaluation];
}

/** Scores the hold-out with the model entering the round as fixed-bin histograms (the declared segments only). */
function evaluationVector(m: JobManifest, params: Float64Array, test: Dataset): Float64Array {
  const scores = predictProba(m.model, m.dataset.featureNames.length, params, test.X, test.n);
  const declared = m.evaluation.segments;
  const segments = Object.fromEntries(Object.entries(test.sensitive).filter(([name]) => name in declared));
  return buildEvalHistograms(scores, test.y, segments, evaluationLayout(m));
}

async function local(ctx: LocalContext<SgdState>): Promise<LocalResult> {
  const { manifest: m, state, data, plan } = ctx;
  const d = m.dataset.featureNames.length;
  const evaluation = evaluationVector(m, state.params, data.test);
  if (plan.kind !== 'train') return { parts: { evaluation } };
  const dp = dpPlanOf(m);
  const lt = m.localTraining;
  const result = await trainLocal(m.model, d, state.params, data.train, {
    epochs: lt.epochs,
    batchSize: lt.batchSize,
    learningRate: lt.learningRate,
    optimizer: lt.optimizer,
    l2: lt.l2,
    seed: deriveSeed(m.seed, 'train', ctx.keyId, ctx.round, ctx.attempt),
    proximalMu: new FederatedStrategy(m).proximalMu,
    dp: dp ? { noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm, samplingRate: dp.samplingRate } : undefined,
  });
  const update = weightedUpdateVector(state.params, result.params, data.train.n);
  const releases = plan.releases.map((r) => ({ ...r, steps: result.dp?.steps ?? r.steps }));
  return { parts: { update, evaluation }, releases };
}

export const sgdWorkload: Workload<SgdState, FederatedEvalMetrics> = {
  kind: 'sgd',
  validate: (m) => {
    // The manifest schema already checks model, localTraining (sampling rate with DP) and strategy.
    if (m.encryption.scheme === 'none') throw new FedmarkError('MANIFEST_INVALID', `job ${m.jobId}: SGD sums model updates at the coordinator, so encryption "none" cannot be used`);
  },
  totalRounds: (m) => m.rounds + 1,
  plan: (m, round): RoundPlan => {
    const train = round <= m.rounds;
    const dp = train ? dpPlanOf(m) : null;
    return {
      kind: train ? 'train' : 'evaluate',
      stages: ['upload'],
      parts: parts(m, train),
      selection: train ? 'sample' : 'all',
      releases: dp ? [{ label: 'update', samplingRate: dp.samplingRate, noiseMultiplier: dp.noiseMultiplier, steps: dp.stepsPerRound, sensitivity: dp.clipNorm }] : [],
      updatesState: train,
    };
  },
  privacy: (m): PrivacyPlan | null => {
    const dp = dpPlanOf(m);
    return dp ? { targetEpsilon: dp.targetEpsilon, delta: dp.delta, noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm } : null;
  },
  initialState: (m) => ({ params: initParameters(m.model, m.dataset.featureNames.length, deriveSeed(m.seed, 'init')), optimizerState: null }),
  hash: (s) => hashParameters(s.params),
  local,
  apply: (m, state, _round, sums) => new FederatedStrategy(m).apply(state, sums.update),
  report: (m, _round, sums): FederatedEvalMetrics => metricsFromHistograms(sums.evaluation, evaluationLayout(m)),
};
