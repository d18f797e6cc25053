import { calibrateShares } from '../../../privacy/calibrate.ts';
import { composedEpsilon, RdpAccountant } from '../../../privacy/accountant.ts';
import { computeRdp } from '../../../privacy/analysis/rdp.ts';
import type { DpEvent, LabelledDpEvent } from '../../../privacy/dp-event.ts';
import { FedmarkError } from '../../../errors.ts';
import type { JobManifest } from '../../manifest.ts';
import { DP_LOG_LOSS_CAP, evaluationSensitivity } from '../evaluation.ts';

/**
 * Everything about a job's DP that follows from the manifest alone, so every partner and the job
 * owner derive the same σ's and step counts. The sampling rate is part of the manifest, not derived
 * from a partner's row count, so reporting it reveals nothing about the partner's size.
 *
 * What a partner releases (docs/PRIVACY.md):
 * - `weight`, once per job with its first training upload: its training row count plus Gaussian
 *   noise (sensitivity 1 row), reused as the aggregation weight and as DP-SGD's normaliser q·ñ in
 *   every later round (post-processing);
 * - `update`, every training round it is selected for: DP-SGD (q, σ, steps);
 * - `evaluation`, the score histograms of the final evaluation round (and of every training round's
 *   entering model when `evaluation.everyRound`, or of each checkpoint's with
 *   `evaluation.earlyStopping`): one Gaussian release of the histogram vector. An early stop makes
 *   fewer than planned; the calibration covers them all.
 * Every planned release is composed by adding RDP curves (Mironov 2017), and the composition meets
 * the target ε. `dp.split` says how that budget is shared: at the order α where the composition is
 * converted to (ε, δ), the weight's and the evaluation's Rényi divergences are those shares of the
 * budget (`calibrateShares`), and DP-SGD's σ is calibrated to the rest.
 */
export interface DpPlan {
  samplingRate: number;
  noiseMultiplier: number;
  clipNorm: number;
  delta: number;
  targetEpsilon: number;
  stepsPerRound: number;
  /** Steps if the partner is selected in every round: the worst case the calibration covers. */
  maxSteps: number;
  /** The noisy row count: noise multiplier (= noise std in rows, sensitivity 1). */
  weightNoiseMultiplier: number;
  /** The evaluation histograms: noise multiplier, L2 sensitivity of one row, and how many are planned. */
  evaluationNoiseMultiplier: number;
  evaluationSensitivity: number;
  evaluationReleases: number;
  /** Per-row log loss is capped at this (nats) in DP evaluation vectors, so one row moves Σ log loss by at most it. */
  logLossCap: number;
  /**
   * How the budget is split: each class's share of the composed Rényi divergence at `order` (they
   * sum to 1), the ε of the training releases alone, and the ε of all of them composed (≤ target).
   */
  split: { order: number; training: number; weight: number; evaluation: number; trainingEpsilon: number; total: number };
}

export { DP_LOG_LOSS_CAP, evaluationSensitivity } from '../evaluation.ts';

export function stepsPerRound(manifest: JobManifest): number {
  const q = manifest.localTraining.samplingRate;
  if (q === undefined) throw new FedmarkError('DP_NO_SAMPLING_RATE', 'a DP job needs localTraining.samplingRate');
  return manifest.localTraining.epochs * Math.max(1, Math.round(1 / q));
}

/** Score histograms of every training round (the model entering it) besides the final one: the manifest's choice, else only without DP (and never with early stopping, which plans its own). */
export function evaluatesEveryRound(m: JobManifest): boolean {
  if (m.evaluation.earlyStopping) return false;
  return m.evaluation.everyRound ?? m.dp === null;
}

/**
 * Whether training round `round` carries the score histograms of the model entering it: every
 * round with `everyRound`; with early stopping, the rounds after each checkpoint (the model after
 * round every, 2·every, … is scored with the next round's upload).
 */
export function evaluatesRound(m: JobManifest, round: number): boolean {
  if (round > m.rounds) return false;
  const es = m.evaluation.earlyStopping;
  if (es) return round >= 2 && (round - 1) % es.every === 0;
  return evaluatesEveryRound(m);
}

/** Evaluation releases a partner makes if selected in every round: the training rounds' (evaluatesRound) and the final round's. */
export function plannedEvaluations(m: JobManifest): number {
  let n = 1;
  for (let r = 1; r <= m.rounds; r++) if (evaluatesRound(m, r)) n++;
  return n;
}

export function planDp(manifest: JobManifest): DpPlan | null {
  const dp = manifest.dp;
  if (!dp) return null;
  const samplingRate = manifest.localTraining.samplingRate;
  if (samplingRate === undefined) throw new FedmarkError('DP_NO_SAMPLING_RATE', 'a DP job needs localTraining.samplingRate');
  const perRound = stepsPerRound(manifest);
  const maxSteps = perRound * manifest.rounds;
  const { delta, targetEpsilon } = dp;
  const evaluationReleases = plannedEvaluations(manifest);
  let noiseMultiplier: number;
  let weightNoiseMultiplier: number;
  let evaluationNoiseMultiplier: number;
  if (dp.noiseMultiplier === 'calibrate') {
    const shares = calibrateShares({
      targetEpsilon,
      delta,
      samplingRate,
      steps: maxSteps,
      shares: [
        { share: dp.split.weight, releases: 1 },
        { share: dp.split.evaluation, releases: evaluationReleases },
      ],
    });
    noiseMultiplier = shares.noiseMultiplier;
    [weightNoiseMultiplier, evaluationNoiseMultiplier] = shares.others;
  } else {
    // A fixed DP-SGD σ: the other releases take their shares of what it would cost alone.
    noiseMultiplier = dp.noiseMultiplier;
    const order = orderOf([{ samplingRate, noiseMultiplier, steps: maxSteps }], delta);
    const rho = composedRdpAt(order, [{ samplingRate, noiseMultiplier, steps: maxSteps }]) / (1 - dp.split.weight - dp.split.evaluation);
    weightNoiseMultiplier = Math.sqrt(order / (2 * dp.split.weight * rho));
    evaluationNoiseMultiplier = Math.sqrt((order * evaluationReleases) / (2 * dp.split.evaluation * rho));
  }
  const others: DpEvent[] = [
    { samplingRate: 1, noiseMultiplier: weightNoiseMultiplier, steps: 1 },
    { samplingRate: 1, noiseMultiplier: evaluationNoiseMultiplier, steps: evaluationReleases },
  ];
  const training: DpEvent = { samplingRate, noiseMultiplier, steps: maxSteps };
  const all = [training, ...others];
  const order = orderOf(all, delta);
  const rdp = all.map((e) => composedRdpAt(order, [e]));
  const sum = rdp.reduce((a, b) => a + b, 0);
  return {
    samplingRate,
    noiseMultiplier,
    clipNorm: dp.clipNorm,
    delta,
    targetEpsilon,
    stepsPerRound: perRound,
    maxSteps,
    weightNoiseMultiplier,
    evaluationNoiseMultiplier,
    evaluationSensitivity: evaluationSensitivity(manifest),
    evaluationReleases,
    logLossCap: DP_LOG_LOSS_CAP,
    split: {
      order,
      training: rdp[0] / sum,
      weight: rdp[1] / sum,
      evaluation: rdp[2] / sum,
      trainingEpsilon: composedEpsilon([training], delta),
      total: composedEpsilon(all, delta),
    },
  };
}

function orderOf(events: DpEvent[], delta: number): number {
  const acc = new RdpAccountant();
  for (const e of events) acc.step(e);
  return acc.getEpsilon(delta).bestOrder;
}

function composedRdpAt(order: number, events: DpEvent[]): number {
  return events.reduce((a, e) => a + computeRdp(e.samplingRate, e.noiseMultiplier, e.steps, [order])[0], 0);
}

/** The plan's releases as labelled events: the job's one `weight`, a round's `update`, an `evaluation`. */
export function weightRelease(p: DpPlan): LabelledDpEvent {
  return { label: 'weight', samplingRate: 1, noiseMultiplier: p.weightNoiseMultiplier, steps: 1, sensitivity: 1 };
}
export function updateRelease(p: DpPlan): LabelledDpEvent {
  return { label: 'update', samplingRate: p.samplingRate, noiseMultiplier: p.noiseMultiplier, steps: p.stepsPerRound, sensitivity: p.clipNorm };
}
export function evaluationRelease(p: DpPlan): LabelledDpEvent {
  return { label: 'evaluation', samplingRate: 1, noiseMultiplier: p.evaluationNoiseMultiplier, steps: 1, sensitivity: p.evaluationSensitivity };
}

/** ε after `roundsParticipated` training rounds of this plan, with the weight and the evaluations each round carried (every release composed). */
export function epsilonAfterRounds(plan: DpPlan, roundsParticipated: number, evaluations = 0): number {
  if (roundsParticipated === 0 && evaluations === 0) return 0;
  const events: DpEvent[] = [];
  if (roundsParticipated > 0)
    events.push(weightRelease(plan), {
      samplingRate: plan.samplingRate,
      noiseMultiplier: plan.noiseMultiplier,
      steps: plan.stepsPerRound * roundsParticipated,
    });
  if (evaluations > 0) events.push({ samplingRate: 1, noiseMultiplier: plan.evaluationNoiseMultiplier, steps: evaluations });
  return composedEpsilon(events, plan.delta);
}
