import { calibrateNoiseMultiplier } from '../../../privacy/calibrate.ts';
import { RdpAccountant } from '../../../privacy/accountant.ts';
import { FedmarkError } from '../../../errors.ts';
import type { JobManifest } from '../../manifest.ts';

/**
 * Everything about a job's DP that follows from the manifest alone, so every partner and the job
 * owner derive the same σ and step counts. The sampling rate is part of the manifest, not derived
 * from a partner's row count, so reporting it reveals nothing about the partner's size.
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
}

export function stepsPerRound(manifest: JobManifest): number {
  const q = manifest.localTraining.samplingRate;
  if (q === undefined) throw new FedmarkError('DP_NO_SAMPLING_RATE', 'a DP job needs localTraining.samplingRate');
  return manifest.localTraining.epochs * Math.max(1, Math.round(1 / q));
}

export function planDp(manifest: JobManifest): DpPlan | null {
  const dp = manifest.dp;
  if (!dp) return null;
  const samplingRate = manifest.localTraining.samplingRate;
  if (samplingRate === undefined) throw new FedmarkError('DP_NO_SAMPLING_RATE', 'a DP job needs localTraining.samplingRate');
  const perRound = stepsPerRound(manifest);
  const maxSteps = perRound * manifest.rounds;
  const noiseMultiplier =
    dp.noiseMultiplier === 'calibrate'
      ? calibrateNoiseMultiplier({ targetEpsilon: dp.targetEpsilon, delta: dp.delta, samplingRate, steps: maxSteps })
      : dp.noiseMultiplier;
  return { samplingRate, noiseMultiplier, clipNorm: dp.clipNorm, delta: dp.delta, targetEpsilon: dp.targetEpsilon, stepsPerRound: perRound, maxSteps };
}

/** ε after `roundsParticipated` rounds of this plan, by the RDP accountant (composition over all steps). */
export function epsilonAfterRounds(plan: DpPlan, roundsParticipated: number): number {
  if (roundsParticipated === 0) return 0;
  const acc = new RdpAccountant();
  acc.step({ samplingRate: plan.samplingRate, noiseMultiplier: plan.noiseMultiplier, steps: plan.stepsPerRound * roundsParticipated });
  return acc.getEpsilon(plan.delta).epsilon;
}
