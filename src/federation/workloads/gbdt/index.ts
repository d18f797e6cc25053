/**
 * The GBDT workload: gradient-boosted trees (or cyclic mode's additive terms) over the workload seam,
 * a thin adapter over src/trees. Round r runs the job's step r − 1 — the DP quantile round, a
 * (tree, level) histogram round, a leaf round, or a term/screening round — and a final round
 * evaluates the model on every partner's hold-out (encrypted score histograms, with fairness
 * segments). Every key holder applies the same deterministic server step to the decrypted sums, and
 * the coordinator compares the state hashes (model-hash agreement).
 *
 * Parts of a step round: `grad` and `hess` (or `counts` in the quantile round), each value divided by
 * the public `heUnit` so large partners fit the HE encoder, and `partners` — a public 1 per upload, so
 * key holders know how many partners' noise a sum carries (the noise-aware split gain needs it).
 */
import type { Dataset } from '../../../data/encode.ts';
import { FedmarkError } from '../../../errors.ts';
import type { FederatedEvalMetrics } from '../../../metrics/histogram.ts';
import {
  GbdtLocalData,
  addReleaseNoise,
  applyStep,
  initialState,
  localStepOnThreads,
  modelFromState,
  predictProba,
  stateHash,
  stepAt,
  stepParts,
  stepRelease,
  type GbdtModel,
  type GbdtState,
} from '../../../trees/index.ts';
import type { LabelledDpEvent } from '../../../privacy/dp-event.ts';
import type { JobManifest } from '../../manifest.ts';
import type { LocalContext, LocalResult, PartSpec, PrivacyPlan, RoundPlan, Workload } from '../../workload.ts';
import { evaluationEvent, evaluationHistograms, evaluationMetrics, evaluationPart } from '../evaluation.ts';
import { jobLimits, NOISE_MARGIN_SIGMAS } from '../../part-encoding.ts';
import { threadMinRows, workerThreads } from '../../../util/worker-pool.ts';
import { gbdtSettings } from './settings.ts';

export { gbdtSettings, gbdtWorkloadParamsSchema, type GbdtSettings, type GbdtWorkloadParams } from './settings.ts';
export { gbdtJobPreset, type GbdtJobPresetOptions } from './preset.ts';

/** The public count each upload carries. */
const PARTNERS_PART = 'partners';

/** The ledger's label of a release: what was bought (`histogram-grad`, `leaf-hess`, `term-grad`, `quantiles`, …). */
function releaseLabel(label: string, part: string): string {
  return part === 'counts' ? label : `${label}-${part}`;
}

function stepReleases(m: JobManifest, step: number): LabelledDpEvent[] {
  const s = gbdtSettings(m);
  const r = stepRelease(s.params, s.layout, s.noise, step);
  if (!r || !s.params.dp) return [];
  return r.events.map((e, k) => ({
    label: releaseLabel(e.label, e.part),
    samplingRate: e.samplingRate,
    noiseMultiplier: e.noiseMultiplier,
    steps: e.steps,
    sensitivity: r.parts[k].sensitivity,
  }));
}

const plans = new WeakMap<JobManifest, Map<number, RoundPlan>>();

function buildPlan(m: JobManifest, round: number): RoundPlan {
  const s = gbdtSettings(m);
  if (round === s.steps + 1) {
    return {
      kind: 'evaluate',
      stages: ['upload'],
      parts: [evaluationPart(m, s.evaluation)],
      selection: 'all',
      // With DP the histograms are a Gaussian release like SGD's, charged before they leave.
      releases: s.evaluation ? [evaluationEvent(s.evaluation)] : [],
      updatesState: false,
    };
  }
  const step = stepAt(s.params, s.layout, round - 1);
  const release = stepRelease(s.params, s.layout, s.noise, round - 1);
  const rows = jobLimits(m).maxRowsPerPartner;
  // Declared bound of a slot (for the part encoding): a sum over at most `rows` rows of values within ±perRowBound, plus the partner's own noise margin, in heUnits.
  const bound = (name: string, perRowBound: number) => {
    const std = s.params.dp ? (release?.parts.find((r) => r.part === name)?.partnerStd ?? 0) : 0;
    return (rows * perRowBound + NOISE_MARGIN_SIGMAS * std) / s.heUnit;
  };
  const parts: PartSpec[] = stepParts(s.params, s.layout, step).map((p) => ({
    name: p.name,
    length: p.length,
    domain: 'real',
    bound: bound(p.name, p.perRowBound),
    use: 'state',
  }));
  parts.push({ name: PARTNERS_PART, length: 1, domain: 'count', bound: 1, use: 'state' });
  return { kind: step.kind, stages: ['upload'], parts, selection: 'all', releases: stepReleases(m, round - 1), updatesState: true };
}

function plan(m: JobManifest, round: number): RoundPlan {
  let byRound = plans.get(m);
  if (!byRound) plans.set(m, (byRound = new Map()));
  let p = byRound.get(round);
  if (!p) byRound.set(round, (p = buildPlan(m, round)));
  return p;
}

// A partner's binned rows and margins, kept between rounds (checked against the state by GbdtLocalData).
const locals = new WeakMap<Dataset, GbdtLocalData>();
function localData(ds: Dataset): GbdtLocalData {
  let l = locals.get(ds);
  if (!l) locals.set(ds, (l = new GbdtLocalData(ds)));
  return l;
}

const models = new WeakMap<GbdtState, GbdtModel>();
/** The released model of a state (what the owner saves as XGBoost JSON). */
export function gbdtModel(state: GbdtState): GbdtModel {
  let model = models.get(state);
  if (!model) models.set(state, (model = modelFromState(state)));
  return model;
}

async function local(ctx: LocalContext<GbdtState>): Promise<LocalResult> {
  const m = ctx.manifest;
  const s = gbdtSettings(m);
  if (ctx.plan.kind === 'evaluate') {
    const { test } = ctx.data;
    return { parts: { evaluation: evaluationHistograms(m, predictProba(gbdtModel(ctx.state), test.X, test.n), test, s.evaluation) } };
  }
  if (ctx.state.step !== ctx.round - 1) {
    throw new FedmarkError('OUT_OF_STEP', `gbdt: round ${ctx.round} runs step ${ctx.round - 1}, but the state is at step ${ctx.state.step}`);
  }
  const parts = await localStepOnThreads(ctx.state, localData(ctx.data.train), { threads: workerThreads(), minRows: threadMinRows() });
  // The runtime has authorized these releases; the noise is the partner's own (CSPRNG), added before anything is encrypted.
  const release = stepRelease(s.params, s.layout, s.noise, ctx.state.step);
  if (release && s.params.dp) addReleaseNoise(parts, release);
  for (const v of Object.values(parts)) for (let i = 0; i < v.length; i++) v[i] /= s.heUnit;
  return { parts: { ...parts, [PARTNERS_PART]: Float64Array.of(1) } };
}

function apply(m: JobManifest, state: GbdtState, round: number, sums: Record<string, Float64Array>): GbdtState {
  const s = gbdtSettings(m);
  const count = sums[PARTNERS_PART]?.[0];
  const contributors = Math.round(count ?? NaN);
  if (!(contributors >= 1)) throw new FedmarkError('AGGREGATE_EMPTY', `gbdt round ${round}: the sums hold ${count} partners' uploads`);
  const scaled: Record<string, Float64Array> = {};
  for (const p of plan(m, round).parts) {
    if (p.name === PARTNERS_PART) continue;
    const v = sums[p.name];
    if (!v) throw new FedmarkError('AGGREGATE_PART_MISSING', `gbdt round ${round}: no "${p.name}" sum`);
    scaled[p.name] = v.map((x) => x * s.heUnit);
  }
  return applyStep(state, scaled, contributors);
}

export const gbdtWorkload: Workload<GbdtState, FederatedEvalMetrics> = {
  kind: 'gbdt',
  validate: (m) => void gbdtSettings(m),
  totalRounds: (m) => gbdtSettings(m).steps + 1,
  plan,
  privacy: (m): PrivacyPlan | null => {
    const { noise } = gbdtSettings(m);
    return m.dp && noise.jobNoiseMultiplier !== null
      ? { targetEpsilon: m.dp.targetEpsilon, delta: m.dp.delta, noiseMultiplier: noise.jobNoiseMultiplier, clipNorm: 1 }
      : null;
  },
  initialState: (m) => {
    const s = gbdtSettings(m);
    return initialState(s.params, s.layout);
  },
  hash: stateHash,
  local,
  apply,
  report: (m, round, sums) => {
    const s = gbdtSettings(m);
    // Every partner submits in the evaluation round (selection `all`), each with its own noise.
    return round === s.steps + 1 && sums.evaluation ? evaluationMetrics(m, sums.evaluation, s.evaluation, m.partners.length) : null;
  },
};
