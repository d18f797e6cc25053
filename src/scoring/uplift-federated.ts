/**
 * The pure pieces of a multi-partner campaign measurement. Each partner's count table (decile ×
 * arm × outcome, uplift.ts) is a release — it is derived from customer rows and leaves the partner —
 * so it is a Gaussian mechanism charged before the bytes leave, then summed through the encrypted
 * aggregation path like any other part.
 *
 * 1. Layout: UPLIFT_CELLS = 40 count cells per partner (the workload's part adds one
 *    participation cell, uplift-workload.ts). Deciles are
 *    each partner's own (its top tenth is decile 1): a partner's score distribution is its own.
 * 2. The DP event: every customer in the campaign falls in exactly one cell (its decile, its arm,
 *    whether it responded), so adding or removing one customer changes one cell by 1: L2
 *    sensitivity Δ = 1 under add/remove adjacency (√2 if a neighbouring dataset may *replace* one
 *    customer: pass sensitivity √2). Gaussian noise of std s on every cell is the event
 *    (q = 1, σ = s/Δ, steps = 1), label "count" (ROUND2.md's accounting model).
 * 3. Combine: the key holders decrypt Σ_partners (counts + noise); each cell then carries noise of
 *    variance P·s², and `combineUpliftCounts` gives the same figures as a single partner's with
 *    intervals widened for that noise (uplift.ts).
 *
 * The round kind that asks each partner for this table, charges it and sums it is uplift-workload.ts.
 */
import { FedmarkError } from '../errors.ts';
import { calibrateNoiseMultiplier } from '../privacy/calibrate.ts';
import type { LabelledDpEvent } from '../privacy/dp-event.ts';
import { gaussianNoise } from '../privacy/noise.ts';
import { upliftFromCounts, UPLIFT_CELLS, type UpliftResult } from './uplift.ts';

/** A count-table release as the accountant composes it (q = 1, σ = s/Δ, one step), with its per-cell noise std s. */
export interface UpliftCountEvent extends LabelledDpEvent {
  label: 'count';
  /** Noise std per cell, in counts (= σ · Δ). */
  noiseStd: number;
}

/** The DP event of releasing one partner's count table with noise std `noiseStd` per cell. */
export function upliftCountEvent(noiseStd: number, sensitivity = 1): UpliftCountEvent {
  if (!(noiseStd > 0 && Number.isFinite(noiseStd))) throw new FedmarkError('DP_BAD_NOISE', `noise std must be finite and > 0, got ${noiseStd}`);
  if (!(sensitivity > 0 && Number.isFinite(sensitivity))) throw new FedmarkError('DP_BAD_EVENT', `sensitivity must be finite and > 0, got ${sensitivity}`);
  return { label: 'count', samplingRate: 1, noiseMultiplier: noiseStd / sensitivity, steps: 1, noiseStd, sensitivity };
}

/** The smallest per-cell noise whose single release costs at most `targetEpsilon` at δ (RDP). */
export function calibrateUpliftNoise(targetEpsilon: number, delta: number, sensitivity = 1): UpliftCountEvent {
  const sigma = calibrateNoiseMultiplier({ targetEpsilon, delta, samplingRate: 1, steps: 1 });
  return upliftCountEvent(sigma * sensitivity, sensitivity);
}

/**
 * The partner's release: its exact counts plus fresh CSPRNG Gaussian noise. Call only after the
 * event is charged, and persist the result: a repeated request must get these bytes again, never a
 * second draw (one charge buys one release).
 */
export function noisyUpliftCounts(counts: ArrayLike<number>, event: UpliftCountEvent): Float64Array {
  if (counts.length !== UPLIFT_CELLS) throw new FedmarkError('UPLIFT_BAD_COUNTS', `count table has ${counts.length} cells, expected ${UPLIFT_CELLS}`);
  const noise = gaussianNoise(UPLIFT_CELLS, event.noiseStd);
  for (let i = 0; i < UPLIFT_CELLS; i++) noise[i] += counts[i];
  return noise;
}

/** Uplift figures from the decrypted sum of `partners` noisy count tables, each with noise std `noiseStd`. */
export function combineUpliftCounts(summed: ArrayLike<number>, o: { partners: number; noiseStd: number; confidence?: number }): UpliftResult {
  if (!(Number.isInteger(o.partners) && o.partners >= 1))
    throw new FedmarkError('UPLIFT_BAD_PARTNERS', `partners must be a positive integer, got ${o.partners}`);
  if (!(o.noiseStd >= 0 && Number.isFinite(o.noiseStd))) throw new FedmarkError('DP_BAD_NOISE', `noise std must be finite and ≥ 0, got ${o.noiseStd}`);
  return upliftFromCounts(summed, { confidence: o.confidence, cellVariance: o.partners * o.noiseStd * o.noiseStd });
}
