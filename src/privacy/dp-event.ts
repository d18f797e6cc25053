/**
 * What a partner releases, in the one form the accountant composes (Mironov 2017: RDP adds per
 * order). A DP-SGD phase is (q, σ, steps); a plain Gaussian release of a value with L2 sensitivity Δ
 * and noise standard deviation s is (q = 1, σ = s/Δ, steps = 1).
 */
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';

/** One Poisson-subsampled Gaussian phase: `steps` steps at sampling rate q with noise multiplier σ. */
export interface DpEvent {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
}

export const dpEventSchema = z.object({
  samplingRate: z.number().min(0).max(1),
  noiseMultiplier: z.number().min(0),
  steps: z.number().int().min(0),
});

/** Throws DP_BAD_EVENT unless the event is a well-formed (q, σ, steps). */
export function validateDpEvent(event: DpEvent): DpEvent {
  const r = dpEventSchema.safeParse(event);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new FedmarkError('DP_BAD_EVENT', `invalid DP event field "${issue?.path.join('.') ?? '?'}": ${issue?.message ?? 'invalid'}`, { event });
  }
  return r.data;
}

/** What was bought with a charge, so the budget, the ledgers and the audit can say it. */
export type ReleaseLabel = 'update' | 'weight' | 'evaluation' | 'histogram' | 'leaf' | 'quantiles' | 'count' | 'moments' | (string & {});

/** A Gaussian release a workload declares for a round: its DP event, what it is, and its L2 sensitivity (DP-SGD: the clip norm C). */
export interface LabelledDpEvent extends DpEvent {
  label: ReleaseLabel;
  sensitivity: number;
}

/** The (q, σ, steps) part of a labelled release, as the accountant sees it. */
export function dpEventOf(e: DpEvent): DpEvent {
  return { samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps };
}
