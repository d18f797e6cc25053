/**
 * Exact (non-histogram) binary classification metrics over scores in [0, 1] and labels in {0, 1}.
 *
 * Conventions shared with the histogram path (src/metrics/histogram.ts) so the two can be compared
 * number for number:
 * - AUC is the Mann–Whitney statistic: P(score⁺ > score⁻) + ½·P(score⁺ = score⁻). When only one class
 *   is present it is undefined and we return NaN rather than throw, because a single partner's hold-out
 *   or a small fairness segment legitimately can be single-class and the rest of the metrics still
 *   make sense. Length mismatches, empty input, labels other than 0/1 and non-finite scores throw.
 * - A row is "predicted positive" when score ≥ threshold.
 * - Calibration bins are equal-width over [0, 1]; a score of exactly 1 falls in the last bin; empty bins
 *   are omitted (as scikit-learn's calibration_curve does) because they carry no information.
 */
import { FedmarkError } from '../errors.ts';

export interface CalibrationBin {
  lower: number;
  upper: number;
  /** Mean predicted score of the rows in the bin. */
  meanPredicted: number;
  /** Share of positives among the rows in the bin. */
  observedRate: number;
  count: number;
}

export interface LiftResult {
  /** Positive rate in the top fraction divided by the overall positive rate. */
  lift: number;
  /** Share of all positives that fall in the top fraction (a.k.a. gain / recall at the cut). */
  captureRate: number;
}

export interface ClassificationMetrics {
  n: number;
  positives: number;
  baseRate: number;
  auc: number;
  logLoss: number;
  brier: number;
  accuracy: number;
  liftTopDecile: LiftResult;
  calibration: CalibrationBin[];
}

/** Probabilities are clipped to [ε, 1−ε] for log loss, as scikit-learn does, so a confident miss costs ~34.5 nats, not ∞. */
export const LOG_LOSS_EPS = 1e-15;

export function checkLengths(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (scores.length !== labels.length) {
    throw new FedmarkError('METRICS_LENGTH_MISMATCH', `scores has ${scores.length} entries but labels has ${labels.length}`);
  }
  if (scores.length === 0) throw new FedmarkError('METRICS_EMPTY', 'no rows to evaluate (scores and labels are empty)');
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y !== 0 && y !== 1) {
      throw new FedmarkError('METRICS_BAD_LABEL', `label at index ${i} is ${String(y)}; labels must be 0 or 1`, { index: i });
    }
  }
  return scores.length;
}

function checkFinite(scores: ArrayLike<number>): void {
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) {
      throw new FedmarkError('METRICS_BAD_SCORE', `score at index ${i} is ${String(scores[i])}; scores must be finite`, { index: i });
    }
  }
}

export function checkProbabilities(scores: ArrayLike<number>): void {
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (!(s >= 0 && s <= 1)) {
      throw new FedmarkError('METRICS_BAD_SCORE', `score at index ${i} is ${String(s)}; probabilities must lie in [0, 1]`, { index: i });
    }
  }
}

function countPositives(labels: ArrayLike<number>): number {
  let p = 0;
  for (let i = 0; i < labels.length; i++) p += labels[i];
  return p;
}

/** Row indices ordered by descending score (stable, so equal scores keep input order). */
function descendingOrder(scores: ArrayLike<number>): Uint32Array {
  const idx = new Uint32Array(scores.length);
  for (let i = 0; i < idx.length; i++) idx[i] = i;
  // A typed-array sort with a comparator is stable in V8 and avoids boxing n numbers.
  idx.sort((a, b) => scores[b] - scores[a]);
  return idx;
}

/**
 * Exact ROC AUC (Mann–Whitney U / (P·N)) in O(n log n) by sorting, instead of the O(P·N) pairwise
 * count. Ties between a positive and a negative count ½. Returns NaN when either class is absent.
 */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = checkLengths(scores, labels);
  checkFinite(scores);
  const pos = countPositives(labels);
  const neg = n - pos;
  if (pos === 0 || neg === 0) return NaN;
  const order = descendingOrder(scores);
  // Walk high → low; negatives seen so far all outrank the positives still to come, so the
  // complement (negatives below) = neg − negatives seen − negatives in the current tie group.
  let negSeen = 0;
  let wins = 0;
  let i = 0;
  while (i < n) {
    const s = scores[order[i]];
    let gPos = 0;
    let gNeg = 0;
    let j = i;
    while (j < n && scores[order[j]] === s) {
      if (labels[order[j]] === 1) gPos++;
      else gNeg++;
      j++;
    }
    const negBelow = neg - negSeen - gNeg;
    wins += gPos * negBelow + 0.5 * gPos * gNeg;
    negSeen += gNeg;
    i = j;
  }
  return wins / (pos * neg);
}

/** Mean binary cross-entropy in nats, probabilities clipped to [1e-15, 1 − 1e-15]. */
export function logLoss(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = checkLengths(scores, labels);
  checkProbabilities(scores);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += rowLogLoss(scores[i], labels[i]);
  return sum / n;
}

export function rowLogLoss(score: number, label: number): number {
  const p = Math.min(1 - LOG_LOSS_EPS, Math.max(LOG_LOSS_EPS, score));
  return label === 1 ? -Math.log(p) : -Math.log(1 - p);
}

/** Mean squared error between probability and label. */
export function brier(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = checkLengths(scores, labels);
  checkProbabilities(scores);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += (scores[i] - labels[i]) ** 2;
  return sum / n;
}

/** Share of rows where (score ≥ threshold) equals the label. */
export function accuracy(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold = 0.5): number {
  const n = checkLengths(scores, labels);
  checkFinite(scores);
  let correct = 0;
  for (let i = 0; i < n; i++) if ((scores[i] >= threshold ? 1 : 0) === labels[i]) correct++;
  return correct / n;
}

/**
 * Lift and capture rate in the top `fraction` of rows by score (the marketing "top decile" figure).
 * The cut holds exactly fraction·n rows (fractional when fraction·n is not an integer); rows tied with
 * the cut score are taken pro rata, so the result does not depend on input order — the same
 * convention the histogram path uses within a bin. NaN when there are no positives.
 */
export function liftAtTopFraction(scores: ArrayLike<number>, labels: ArrayLike<number>, fraction = 0.1): LiftResult {
  const n = checkLengths(scores, labels);
  checkFinite(scores);
  if (!(fraction > 0 && fraction <= 1)) {
    throw new FedmarkError('METRICS_BAD_FRACTION', `fraction must be in (0, 1], got ${fraction}`);
  }
  const pos = countPositives(labels);
  if (pos === 0) return { lift: NaN, captureRate: NaN };
  const order = descendingOrder(scores);
  const target = fraction * n;
  let taken = 0;
  let posTaken = 0;
  let i = 0;
  while (i < n && taken < target) {
    const s = scores[order[i]];
    let gPos = 0;
    let j = i;
    while (j < n && scores[order[j]] === s) {
      gPos += labels[order[j]];
      j++;
    }
    const gSize = j - i;
    const take = Math.min(gSize, target - taken);
    posTaken += (gPos * take) / gSize;
    taken += take;
    i = j;
  }
  const baseRate = pos / n;
  return { lift: posTaken / taken / baseRate, captureRate: posTaken / pos };
}

/** Equal-width reliability bins over [0, 1]; empty bins are omitted. */
export function calibrationBins(scores: ArrayLike<number>, labels: ArrayLike<number>, bins = 10): CalibrationBin[] {
  const n = checkLengths(scores, labels);
  checkProbabilities(scores);
  if (!Number.isInteger(bins) || bins < 1) {
    throw new FedmarkError('METRICS_BAD_BINS', `bins must be a positive integer, got ${bins}`);
  }
  const count = new Float64Array(bins);
  const sumScore = new Float64Array(bins);
  const sumLabel = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    const b = binIndex(scores[i], bins);
    count[b]++;
    sumScore[b] += scores[i];
    sumLabel[b] += labels[i];
  }
  return calibrationFromSums(count, sumScore, sumLabel);
}

/**
 * Reliability bins from per-bin totals (count, Σ predicted, Σ observed) over equal-width bins of
 * [0, 1]; empty bins are omitted. Shared by the pooled and the histogram (federated) paths.
 */
export function calibrationFromSums(count: Float64Array, sumPredicted: Float64Array, sumObserved: Float64Array): CalibrationBin[] {
  const bins = count.length;
  const out: CalibrationBin[] = [];
  for (let b = 0; b < bins; b++) {
    if (!(count[b] > 0)) continue;
    out.push({
      lower: b / bins,
      upper: (b + 1) / bins,
      meanPredicted: sumPredicted[b] / count[b],
      observedRate: sumObserved[b] / count[b],
      count: count[b],
    });
  }
  return out;
}

/**
 * Bin b holds scores with b/bins ≤ s < (b+1)/bins, with the edges computed exactly as `b / bins`
 * (and 1 in the last bin). The correction steps matter: `floor(s * bins)` alone can land one bin off
 * for scores within an ulp of an edge, which would make "score ≥ 0.5" and "bin ≥ bins/2" disagree.
 */
export function binIndex(score: number, bins: number): number {
  let b = Math.floor(score * bins);
  if (b >= bins) return bins - 1;
  if (b < 0) b = 0;
  if (b > 0 && score < b / bins) b--;
  else if (b < bins - 1 && score >= (b + 1) / bins) b++;
  return b;
}

export function evaluateScores(scores: ArrayLike<number>, labels: ArrayLike<number>): ClassificationMetrics {
  const n = checkLengths(scores, labels);
  checkProbabilities(scores);
  const positives = countPositives(labels);
  return {
    n,
    positives,
    baseRate: positives / n,
    auc: auc(scores, labels),
    logLoss: logLoss(scores, labels),
    brier: brier(scores, labels),
    accuracy: accuracy(scores, labels),
    liftTopDecile: liftAtTopFraction(scores, labels, 0.1),
    calibration: calibrationBins(scores, labels),
  };
}
