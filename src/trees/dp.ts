/**
 * Every value a partner sends in a GBDT job is a Gaussian release (or nothing is private). Sensitivities
 * under add/remove-one-row, with g ∈ [−1, 1] and h ∈ [0, ¼] per row:
 *
 *   histogram level, part grad: a row is in one node of the level and one bin per histogrammed column
 *                               (c = columnsPerTree, or every column)                   → Δ₂ = √c · 1
 *   histogram level, part hess:                                                          Δ₂ = √c · ¼
 *   leaf round, grad / hess:    a row is in one leaf                                     Δ₂ = 1 / ¼
 *   quantile round, counts:     one cell per dyadic level per numeric group              Δ₂ = √(levels · numeric groups)
 *
 * (the tree built so far is public, so a row's node and gradient depend on that row alone). Each part is
 * one Gaussian mechanism, expressed as the DpEvent (q = 1, σ = std/Δ₂, steps = 1) with a label; the
 * partner's RDP accountant composes them with everything else it releases (Mironov 2017).
 *
 * Calibration for a target ε: a composition of Gaussian mechanisms with multipliers σᵢ has RDP
 * α/2 · Σ 1/σᵢ², i.e. it is one Gaussian mechanism with 1/σ² = Σ 1/σᵢ². So σ for the whole job comes from
 * src/privacy's calibration (q = 1, one step), and its precision 1/σ² is shared out: `quantileShare` to
 * the quantile round, `leafShare` of the rest to the leaf rounds, the remainder to the histogram levels,
 * and inside each histogram or leaf release `hessianShare` to the hessian part. The composed ε of the
 * resulting events is recomputed with the accountant and checked to be ≤ the target.
 */
import { FedmarkError } from '../errors.ts';
import { RdpAccountant, addGaussianNoiseInPlace, calibrateNoiseMultiplier, type DpEvent } from '../privacy/index.ts';
import { quantileCellsPerRow } from './edges.ts';
import { numericGroups, type FeatureLayout } from './layout.ts';
import { hasLeafRound, type GbdtParams } from './params.ts';
import { GRAD_BOUND, HESS_BOUND, histogramColumns, stepAt, totalSteps, type GbdtStep } from './schedule.ts';

export type GbdtReleaseLabel = 'histogram' | 'leaf' | 'quantiles';

/** A DP event with what it bought (ROUND2 accounting model). */
export interface LabelledDpEvent extends DpEvent {
  label: GbdtReleaseLabel;
  /** The part of the round the event covers. */
  part: 'grad' | 'hess' | 'counts';
}

export interface PartRelease {
  part: 'grad' | 'hess' | 'counts';
  /** L2 sensitivity of the part to one row. */
  sensitivity: number;
  /** Standard deviation of the Gaussian noise on every value of the part (0 without DP). */
  std: number;
}

export interface StepRelease {
  label: GbdtReleaseLabel;
  parts: PartRelease[];
  /** Empty without DP. */
  events: LabelledDpEvent[];
}

export interface GbdtNoisePlan {
  /** Noise multiplier of the whole job seen as one Gaussian mechanism (null without DP). */
  jobNoiseMultiplier: number | null;
  histogram: { noiseMultiplier: number; releases: number } | null;
  leaf: { noiseMultiplier: number; releases: number } | null;
  quantiles: { noiseMultiplier: number } | null;
  /** ε of all events composed by the RDP accountant (≤ target), at δ. */
  epsilon: number;
  delta: number | null;
}

/** Releases of each kind; a quantile round over a layout without numeric columns counts nothing and releases nothing. */
function counts(params: GbdtParams, layout: FeatureLayout): { hist: number; leaf: number; quant: number } {
  return {
    hist: params.trees * params.histogramLevels,
    leaf: hasLeafRound(params) ? params.trees : 0,
    quant: params.binEdges === 'dp-quantiles' && numericGroups(layout).length > 0 ? 1 : 0,
  };
}

function shares(params: GbdtParams, layout: FeatureLayout): { hist: number; leaf: number; quant: number } {
  const c = counts(params, layout);
  const dp = params.dp!;
  const quant = c.quant ? dp.quantileShare : 0;
  const rest = 1 - quant;
  if (c.hist === 0) return { hist: 0, leaf: rest, quant };
  if (c.leaf === 0) return { hist: rest, leaf: 0, quant };
  return { hist: rest * (1 - dp.leafShare), leaf: rest * dp.leafShare, quant };
}

type Multipliers = Omit<GbdtNoisePlan, 'epsilon' | 'delta'>;

function planWithMultiplier(params: GbdtParams, layout: FeatureLayout, z: number): Multipliers {
  const c = counts(params, layout);
  const s = shares(params, layout);
  const precision = 1 / (z * z);
  const per = (share: number, n: number) => 1 / Math.sqrt((precision * share) / n);
  return {
    jobNoiseMultiplier: z,
    histogram: c.hist ? { noiseMultiplier: per(s.hist, c.hist), releases: c.hist } : null,
    leaf: c.leaf ? { noiseMultiplier: per(s.leaf, c.leaf), releases: c.leaf } : null,
    quantiles: c.quant ? { noiseMultiplier: per(s.quant, 1) } : null,
  };
}

/**
 * The noise of every release of the job, calibrated so the composition is (ε, δ)-DP per partner. Pure:
 * the same parameters give the same plan at every key holder and in the coordinator's release plan.
 */
export function calibrateGbdtNoise(params: GbdtParams, layout: FeatureLayout): GbdtNoisePlan {
  if (!params.dp) return { jobNoiseMultiplier: null, histogram: null, leaf: null, quantiles: null, epsilon: 0, delta: null };
  const { epsilon, delta } = params.dp;
  let z = calibrateNoiseMultiplier({ targetEpsilon: epsilon, delta, samplingRate: 1, steps: 1 });
  // The shares are re-composed event by event; rounding may not push ε above the target.
  for (let k = 0; k < 60; k++) {
    const plan = planWithMultiplier(params, layout, z);
    const eps = composedEpsilon(jobEvents(params, layout, plan), delta);
    if (eps <= epsilon) return { ...plan, epsilon: eps, delta };
    z *= 1 + 1e-9 * 2 ** k;
  }
  throw new FedmarkError('DP_TARGET_UNREACHABLE', `could not calibrate GBDT noise to ε = ${epsilon}`);
}

function composedEpsilon(events: readonly DpEvent[], delta: number): number {
  const acc = new RdpAccountant();
  for (const e of events) acc.step({ samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps });
  return acc.getEpsilon(delta).epsilon;
}

/** A grad/hess pair; z = null gives the same sensitivities with no noise and no event (a job without DP). */
function pairRelease(label: 'histogram' | 'leaf', z: number | null, groups: number, hessianShare: number): StepRelease {
  const dg = Math.sqrt(groups) * GRAD_BOUND;
  const dh = Math.sqrt(groups) * HESS_BOUND;
  if (z === null) return { label, parts: [{ part: 'grad', sensitivity: dg, std: 0 }, { part: 'hess', sensitivity: dh, std: 0 }], events: [] };
  const zg = z / Math.sqrt(1 - hessianShare);
  const zh = z / Math.sqrt(hessianShare);
  return {
    label,
    parts: [
      { part: 'grad', sensitivity: dg, std: zg * dg },
      { part: 'hess', sensitivity: dh, std: zh * dh },
    ],
    events: [
      { label, part: 'grad', samplingRate: 1, noiseMultiplier: zg, steps: 1 },
      { label, part: 'hess', samplingRate: 1, noiseMultiplier: zh, steps: 1 },
    ],
  };
}

function releaseFromPlan(params: GbdtParams, layout: FeatureLayout, plan: Multipliers, step: GbdtStep): StepRelease | null {
  switch (step.kind) {
    case 'done':
      return null;
    case 'quantiles': {
      const sensitivity = Math.sqrt(quantileCellsPerRow(params, layout));
      const z = plan.quantiles?.noiseMultiplier ?? null;
      if (z === null) return { label: 'quantiles', parts: [{ part: 'counts', sensitivity, std: 0 }], events: [] };
      return {
        label: 'quantiles',
        parts: [{ part: 'counts', sensitivity, std: z * sensitivity }],
        events: [{ label: 'quantiles', part: 'counts', samplingRate: 1, noiseMultiplier: z, steps: 1 }],
      };
    }
    case 'level':
      return pairRelease('histogram', plan.histogram?.noiseMultiplier ?? null, histogramColumns(params, layout), params.dp?.hessianShare ?? 0.5);
    case 'leaves':
      return pairRelease('leaf', plan.leaf?.noiseMultiplier ?? null, 1, params.dp?.hessianShare ?? 0.5);
  }
}

function jobEvents(params: GbdtParams, layout: FeatureLayout, plan: Multipliers): LabelledDpEvent[] {
  const out: LabelledDpEvent[] = [];
  for (let s = 0; s < totalSteps(params); s++) out.push(...(releaseFromPlan(params, layout, plan, stepAt(params, s))?.events ?? []));
  return out;
}

/** What step `step` releases: sensitivities, noise std per part and the labelled DP events to charge. */
export function stepRelease(params: GbdtParams, layout: FeatureLayout, plan: GbdtNoisePlan, step: number): StepRelease | null {
  return releaseFromPlan(params, layout, plan, stepAt(params, step));
}

/** Every event of the job in step order (the release plan a partner approves before the job starts). */
export function releasePlan(params: GbdtParams, layout: FeatureLayout, plan: GbdtNoisePlan): LabelledDpEvent[] {
  return jobEvents(params, layout, plan);
}

/** Adds the release's Gaussian noise (CSPRNG) to each part in place — after the release was charged. */
export function addReleaseNoise(parts: Record<string, Float64Array>, release: StepRelease): void {
  for (const p of release.parts) {
    const v = parts[p.part];
    if (!v) throw new FedmarkError('GBDT_BAD_PART', `missing part "${p.part}" to noise`);
    addGaussianNoiseInPlace(v, p.std);
  }
}
