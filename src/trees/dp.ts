/**
 * Every value a partner sends in a GBDT job is a Gaussian release (or nothing is private). Sensitivities
 * under add/remove-one-row, with g ∈ [−1, 1] and h ∈ [0, ¼] per row:
 *
 *   histogram level, part grad: a row is in one node of the level and one bin per histogrammed column
 *                               (c = columnsPerTree, or every column)                   → Δ₂ = √c · 1
 *   histogram level, part hess:                                                          Δ₂ = √c · ¼
 *   leaf round, grad / hess:    a row is in one leaf                                     Δ₂ = 1 / ¼
 *   quantile round, counts:     one cell per dyadic level per numeric group              Δ₂ = √(levels · numeric groups)
 *   cyclic term (main or pair): a row is in one cell of the term                          Δ₂ = 1 / ¼
 *   cyclic screening round:     one cell per candidate pair (P pairs)                    Δ₂ = √P / √P·¼
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
 * resulting events is recomputed with the accountant and checked to be ≤ the target. Cyclic mode shares
 * the rest between the main-effect terms and the interactions (`interactionShare`, of which
 * `screenShare` goes to the screening round).
 *
 * Distributed noise (params.dp.noise = 'distributed'; Kairouz, Liu & Steinke, ICML 2021): the event
 * charged is the same — the noise the *sum* carries against a coalition — but each partner adds only
 * std/√(minContributors − colluders), so any minContributors − colluders honest uploads together carry
 * the calibrated std. Sound only when no single upload is ever decrypted (masked aggregation); the
 * federation refuses it otherwise.
 */
import { FedmarkError } from '../errors.ts';
import { RdpAccountant, addGaussianNoiseInPlace, calibrateNoiseMultiplier, type DpEvent } from '../privacy/index.ts';
import { quantileCellsPerRow } from './edges.ts';
import { numericGroups, type FeatureLayout } from './layout.ts';
import { hasLeafRound, type GbdtParams } from './params.ts';
import { GRAD_BOUND, HESS_BOUND, cyclicSteps, histogramColumns, stepAt, totalSteps, type GbdtStep } from './schedule.ts';
import { pairCounts } from './terms.ts';

export type GbdtReleaseLabel = 'histogram' | 'leaf' | 'quantiles' | 'term' | 'screen';

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
  /** Standard deviation of the Gaussian noise the release is charged for (0 without DP): what the sum carries against the stated coalition. */
  std: number;
  /** What each partner adds to its upload: `std` with local noise, a share of it with distributed noise. */
  partnerStd: number;
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
  /** Cyclic mode: the main-effect terms, the screening round and the pair terms. */
  main: { noiseMultiplier: number; releases: number } | null;
  screen: { noiseMultiplier: number } | null;
  pair: { noiseMultiplier: number; releases: number } | null;
  /** Each partner's noise std as a fraction of the charged std (1 for local noise). */
  partnerShare: number;
  /** ε of all events composed by the RDP accountant (≤ target), at δ. */
  epsilon: number;
  delta: number | null;
}

type Kind = 'hist' | 'leaf' | 'quant' | 'main' | 'screen' | 'pair';

/** Releases of each kind; a quantile round over a layout without numeric columns counts nothing and releases nothing. */
function counts(params: GbdtParams, layout: FeatureLayout): Record<Kind, number> {
  const c = cyclicSteps(params, layout);
  return {
    hist: params.trees * params.histogramLevels,
    leaf: hasLeafRound(params) ? params.trees : 0,
    quant: params.binEdges === 'dp-quantiles' && numericGroups(layout).length > 0 ? 1 : 0,
    main: c.main,
    screen: c.screen,
    pair: c.pair,
  };
}

/** Share of the job's precision 1/σ² each kind of release gets (summing to 1 over the kinds that occur). */
function shares(params: GbdtParams, layout: FeatureLayout): Record<Kind, number> {
  const c = counts(params, layout);
  const dp = params.dp!;
  const out: Record<Kind, number> = { hist: 0, leaf: 0, quant: 0, main: 0, screen: 0, pair: 0 };
  out.quant = c.quant ? dp.quantileShare : 0;
  const rest = 1 - out.quant;
  if (params.cyclic) {
    const inter = c.pair ? dp.interactionShare : 0;
    out.main = rest * (1 - inter);
    out.screen = rest * inter * dp.screenShare;
    out.pair = rest * inter * (1 - dp.screenShare);
  } else if (c.hist === 0) out.leaf = rest;
  else if (c.leaf === 0) out.hist = rest;
  else {
    out.hist = rest * (1 - dp.leafShare);
    out.leaf = rest * dp.leafShare;
  }
  return out;
}

type Multipliers = Pick<GbdtNoisePlan, 'jobNoiseMultiplier' | 'histogram' | 'leaf' | 'quantiles' | 'main' | 'screen' | 'pair' | 'partnerShare'>;

/** Each partner's share of the charged std: 1 locally, 1/√(honest uploads) with distributed noise. */
function partnerShare(params: GbdtParams): number {
  const d = params.dp?.distributed;
  return d ? 1 / Math.sqrt(d.minContributors - d.colluders) : 1;
}

function planWithMultiplier(params: GbdtParams, layout: FeatureLayout, z: number): Multipliers {
  const c = counts(params, layout);
  const s = shares(params, layout);
  const precision = 1 / (z * z);
  const per = (share: number, n: number) => 1 / Math.sqrt((precision * share) / n);
  const many = (k: Kind) => (c[k] ? { noiseMultiplier: per(s[k], c[k]), releases: c[k] } : null);
  const once = (k: Kind) => (c[k] ? { noiseMultiplier: per(s[k], 1) } : null);
  return {
    jobNoiseMultiplier: z,
    histogram: many('hist'),
    leaf: many('leaf'),
    quantiles: once('quant'),
    main: many('main'),
    screen: once('screen'),
    pair: many('pair'),
    partnerShare: partnerShare(params),
  };
}

const NO_NOISE: GbdtNoisePlan = {
  jobNoiseMultiplier: null,
  histogram: null,
  leaf: null,
  quantiles: null,
  main: null,
  screen: null,
  pair: null,
  partnerShare: 1,
  epsilon: 0,
  delta: null,
};

/**
 * The noise of every release of the job, calibrated so the composition is (ε, δ)-DP per partner. Pure:
 * the same parameters give the same plan at every key holder and in the coordinator's release plan.
 */
export function calibrateGbdtNoise(params: GbdtParams, layout: FeatureLayout): GbdtNoisePlan {
  if (!params.dp) return NO_NOISE;
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

/**
 * A grad/hess pair whose rows each touch `cells` values per part; z = null gives the same
 * sensitivities with no noise and no event (a job without DP).
 */
function pairRelease(label: GbdtReleaseLabel, z: number | null, cells: number, hessianShare: number, share: number): StepRelease {
  const dg = Math.sqrt(cells) * GRAD_BOUND;
  const dh = Math.sqrt(cells) * HESS_BOUND;
  if (z === null)
    return {
      label,
      parts: [
        { part: 'grad', sensitivity: dg, std: 0, partnerStd: 0 },
        { part: 'hess', sensitivity: dh, std: 0, partnerStd: 0 },
      ],
      events: [],
    };
  const zg = z / Math.sqrt(1 - hessianShare);
  const zh = z / Math.sqrt(hessianShare);
  return {
    label,
    parts: [
      { part: 'grad', sensitivity: dg, std: zg * dg, partnerStd: share * zg * dg },
      { part: 'hess', sensitivity: dh, std: zh * dh, partnerStd: share * zh * dh },
    ],
    events: [
      { label, part: 'grad', samplingRate: 1, noiseMultiplier: zg, steps: 1 },
      { label, part: 'hess', samplingRate: 1, noiseMultiplier: zh, steps: 1 },
    ],
  };
}

function releaseFromPlan(params: GbdtParams, layout: FeatureLayout, plan: Multipliers, step: GbdtStep): StepRelease | null {
  const hs = params.dp?.hessianShare ?? 0.5;
  const share = plan.partnerShare;
  switch (step.kind) {
    case 'done':
      return null;
    case 'quantiles': {
      const sensitivity = Math.sqrt(quantileCellsPerRow(params, layout));
      const z = plan.quantiles?.noiseMultiplier ?? null;
      if (z === null) return { label: 'quantiles', parts: [{ part: 'counts', sensitivity, std: 0, partnerStd: 0 }], events: [] };
      return {
        label: 'quantiles',
        parts: [{ part: 'counts', sensitivity, std: z * sensitivity, partnerStd: share * z * sensitivity }],
        events: [{ label: 'quantiles', part: 'counts', samplingRate: 1, noiseMultiplier: z, steps: 1 }],
      };
    }
    case 'level':
      return pairRelease('histogram', plan.histogram?.noiseMultiplier ?? null, histogramColumns(params, layout), hs, share);
    case 'leaves':
      return pairRelease('leaf', plan.leaf?.noiseMultiplier ?? null, 1, hs, share);
    case 'main':
      return pairRelease('term', plan.main?.noiseMultiplier ?? null, 1, hs, share);
    case 'pair':
      return pairRelease('term', plan.pair?.noiseMultiplier ?? null, 1, hs, share);
    case 'screen':
      return pairRelease('screen', plan.screen?.noiseMultiplier ?? null, pairCounts(params.cyclic!, layout.groups.length).candidates, hs, share);
  }
}

function jobEvents(params: GbdtParams, layout: FeatureLayout, plan: Multipliers): LabelledDpEvent[] {
  const out: LabelledDpEvent[] = [];
  for (let s = 0; s < totalSteps(params, layout); s++) out.push(...(releaseFromPlan(params, layout, plan, stepAt(params, layout, s))?.events ?? []));
  return out;
}

/** What step `step` releases: sensitivities, noise std per part and the labelled DP events to charge. */
export function stepRelease(params: GbdtParams, layout: FeatureLayout, plan: GbdtNoisePlan, step: number): StepRelease | null {
  return releaseFromPlan(params, layout, plan, stepAt(params, layout, step));
}

/** Every event of the job in step order (the release plan a partner approves before the job starts). */
export function releasePlan(params: GbdtParams, layout: FeatureLayout, plan: GbdtNoisePlan): LabelledDpEvent[] {
  return jobEvents(params, layout, plan);
}

/**
 * Variance of the noise in a sum of `contributors` uploads, per part (0 without DP): each partner
 * adds its own `partnerStd`, so the variances add.
 */
export function sumNoiseVariance(release: StepRelease | null, contributors: number): { grad: number; hess: number } {
  if (!(Number.isFinite(contributors) && contributors >= 1)) throw new FedmarkError('GBDT_BAD_PART', `contributors must be a number ≥ 1, got ${contributors}`);
  const of = (name: string) => {
    const p = release?.parts.find((x) => x.part === name);
    return p ? contributors * p.partnerStd ** 2 : 0;
  };
  return { grad: of('grad'), hess: of('hess') };
}

/** Adds the partner's share of the release's Gaussian noise (CSPRNG) to each part in place — after the release was charged. */
export function addReleaseNoise(parts: Record<string, Float64Array>, release: StepRelease): void {
  for (const p of release.parts) {
    const v = parts[p.part];
    if (!v) throw new FedmarkError('GBDT_BAD_PART', `missing part "${p.part}" to noise`);
    addGaussianNoiseInPlace(v, p.partnerStd);
  }
}
