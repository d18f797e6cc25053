/**
 * Label differential privacy of vertical SecureBoost: the label holder adds Gaussian noise to the
 * gradient sums it decrypted (and computed for its own columns) before choosing splits, and to each
 * leaf's gradient sum before computing the leaf value. Everything that leaves the label holder — split
 * choices, node memberships, left-instance requests, and through later gradients every later tree — is
 * a function of those noisy values and of the parties' features, so it is DP with respect to the labels
 * (post-processing and adaptive composition; Ghazi et al., "Deep learning with label differential
 * privacy", NeurIPS 2021, for the definition).
 *
 * Neighbouring datasets differ in one row's label. With g = p − y clipped to [−1, 1] and h = p(1 − p),
 * changing y changes g by at most 1 and h not at all (p depends only on earlier, already-noised trees),
 * and a row sits in one node per level and one bin per column:
 *   histogram release of a level: the G values of every open node's bins over all F columns of all
 *                                 parties                                         → Δ₂ = √F
 *   leaf release of a tree:       one G per leaf                                   → Δ₂ = 1
 * Hessian sums carry no label information and are not noised. Each release is one Gaussian mechanism,
 * a labelled DpEvent (q = 1, σ = std/Δ₂, steps = 1) charged to the label holder's accountant; the job's
 * σ comes from src/privacy's calibration and its precision 1/σ² is shared out (leafShare to leaves), as
 * src/trees/dp.ts does, with the composed ε re-checked by the accountant.
 */
import { FedmarkError } from '../../errors.ts';
import { calibrateNoiseMultiplier } from '../../privacy/calibrate.ts';
import { composedEpsilon } from '../../privacy/accountant.ts';
import type { LabelledDpEvent } from '../../privacy/dp-event.ts';
import type { SecureBoostParams } from './params.ts';
import { schedule, type Step } from './schedule.ts';

export interface LabelDpPlan {
  /** Columns of all parties (the histogram sensitivity is √columns). */
  columns: number;
  histogram: LabelledDpEvent & { std: number };
  leaf: LabelledDpEvent & { std: number };
  /** ε of every release of the job composed by the RDP accountant (≤ the target), at δ. */
  epsilon: number;
  delta: number;
}

type DpShape = Pick<SecureBoostParams, 'trees' | 'depth' | 'labelDp'>;

function planFor(p: DpShape, columns: number, z: number): Omit<LabelDpPlan, 'epsilon' | 'delta'> {
  const dp = p.labelDp!;
  const precision = 1 / (z * z);
  const per = (share: number, n: number) => 1 / Math.sqrt((precision * share) / n);
  const zh = per(1 - dp.leafShare, p.trees * p.depth);
  const zl = per(dp.leafShare, p.trees);
  const dh = Math.sqrt(columns);
  return {
    columns,
    histogram: { label: 'histogram', samplingRate: 1, noiseMultiplier: zh, steps: 1, sensitivity: dh, std: zh * dh },
    leaf: { label: 'leaf', samplingRate: 1, noiseMultiplier: zl, steps: 1, sensitivity: 1, std: zl },
  };
}

/** Every release of the job, in round order. */
function events(p: DpShape, plan: Omit<LabelDpPlan, 'epsilon' | 'delta'>): LabelledDpEvent[] {
  return schedule(p).flatMap((s) => (s.release === 'histogram' ? [plan.histogram] : s.release === 'leaf' ? [plan.leaf] : []));
}

/** The job's label DP plan (null without label DP). `columns` counts every party's feature columns. */
export function labelDpPlan(p: DpShape, columns: number): LabelDpPlan | null {
  if (!p.labelDp) return null;
  if (!(Number.isInteger(columns) && columns >= 1)) throw new FedmarkError('VERTICAL_BAD_PARAMS', `the job needs at least one column, got ${columns}`);
  const { epsilon, delta } = p.labelDp;
  let z = calibrateNoiseMultiplier({ targetEpsilon: epsilon, delta, samplingRate: 1, steps: 1 });
  for (let k = 0; k < 60; k++) {
    const plan = planFor(p, columns, z);
    const eps = composedEpsilon(events(p, plan), delta);
    if (eps <= epsilon) return { ...plan, epsilon: eps, delta };
    z *= 1 + 1e-9 * 2 ** k;
  }
  throw new FedmarkError('DP_TARGET_UNREACHABLE', `could not calibrate label DP noise to ε = ${epsilon}`);
}

/** The release charged in a step (null when none). */
export function releaseOf(plan: LabelDpPlan | null, step: Step): LabelledDpEvent | null {
  if (!plan || !step.release) return null;
  const e = step.release === 'histogram' ? plan.histogram : plan.leaf;
  return { label: e.label, samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps, sensitivity: e.sensitivity };
}

/** Every release of the job with its round (the release plan the label holder approves before it starts). */
export function releasePlan(p: DpShape, plan: LabelDpPlan | null): { round: number; release: LabelledDpEvent }[] {
  return schedule(p).flatMap((s) => {
    const e = releaseOf(plan, s);
    return e ? [{ round: s.round, release: e }] : [];
  });
}
