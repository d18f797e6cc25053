import { FedmarkError } from '../../errors.ts';

/**
 * DP-SGD's sampling rate from the partner sizes a job declares (issue 16), never from rows it
 * measured: a rate derived from a partner's true row count would release that count.
 *
 * Why the mean declared size. Each partner's DP-SGD step adds N(0, σ²C²) to its clipped gradient
 * sum and divides by its expected batch q·nᵢ; FedAvg weights partner i by nᵢ, so the noise in the
 * aggregate step is σC·√P / (q·Σnᵢ) per coordinate: it depends on q times the *total* (equivalently
 * the mean) rows, not on any one partner. Holding q·mean(n) at a fixed expected batch B therefore
 * gives every job the same signal-to-noise per step whatever its partners' sizes. A fixed q does
 * not: the bank-marketing preset's q = 0.02 means ≈ 145 rows a step at its mean partner (7 234
 * training rows) but ≈ 23 at telco's (1 127), a noise six times larger on every step.
 *
 * The accounting follows what is run: q and the steps per round (epochs · round(1/q)) are in the
 * manifest, so the job's DP plan (`fedmark privacy plan`), the partners' trainers and the audit
 * all read the same (q, σ, steps).
 */
export function samplingRateForDeclaredRows(declaredMeanRows: number, expectedBatch: number): number {
  if (!(Number.isFinite(declaredMeanRows) && declaredMeanRows >= 1)) {
    throw new FedmarkError('PRESET_INVALID', `declared rows per partner must be a finite number ≥ 1, got ${declaredMeanRows}`);
  }
  if (!(Number.isInteger(expectedBatch) && expectedBatch >= 1)) {
    throw new FedmarkError('PRESET_INVALID', `the expected batch must be a positive integer, got ${expectedBatch}`);
  }
  return Math.min(1, expectedBatch / declaredMeanRows);
}

/** The mean of the declared training rows of the partners (one number, or one per partner). */
export function declaredMeanRows(declared: number | readonly number[]): number {
  const list = typeof declared === 'number' ? [declared] : declared;
  if (list.length === 0) throw new FedmarkError('PRESET_INVALID', 'declared rows: give at least one partner size');
  for (const n of list) {
    if (!(Number.isFinite(n) && n >= 1)) throw new FedmarkError('PRESET_INVALID', `declared rows must be finite numbers ≥ 1, got ${n}`);
  }
  return list.reduce((a, b) => a + b, 0) / list.length;
}
