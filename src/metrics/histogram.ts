/**
 * Federated evaluation from fixed-bin score histograms.
 *
 * Each partner scores its hold-out and builds ONE flat Float64Array of counts and sums whose layout
 * depends only on the declared segments and the bin count — never on the data — so every partner's
 * vector has the same length and meaning, can be encrypted as a single CKKS vector and summed under
 * encryption. Sum of histograms = histogram of the pooled data, exactly; every metric below is a
 * function of that sum, so the coordinator never needs (or sees) a single score.
 *
 * Flat layout (B = bins, offsets in `HistogramLayout`):
 *
 *   [0, B)            global positives: count of label-1 rows per score bin
 *   [B, 2B)           global negatives: count of label-0 rows per score bin
 *   [2B, 2B+3)        sums: Σ log loss (nats, p clipped to [1e-15, 1−1e-15]), Σ (score − label)², row count
 *   then for each segment (sorted by name) and each of its groups (declared order):
 *                     B positives, then B negatives
 *
 *   length = 2B + 3 + 2B · (total number of groups)
 *
 * Bin b holds b/B ≤ score < (b+1)/B (score 1 in the last bin), so a threshold that is a multiple of 1/B
 * (0.5 with the default 1,000 bins) splits bins exactly and threshold metrics match a direct
 * computation exactly.
 *
 * Noise: a partner may add DP noise to its vector before encryption (that hook lives in
 * src/privacy). Noisy counts can be negative or fractional, so `metricsFromHistograms` clamps every
 * bin count at 0 and never assumes integers.
 */
import { FedmarkError } from '../errors.ts';
import { sha256Hex } from '../util/hash.ts';
import { binIndex, calibrationFromSums, checkLengths, checkProbabilities, rowLogLoss, type CalibrationBin } from './classification.ts';
import { finalizeSegment, groupRates, type GroupCounts, type SegmentMetrics } from './fairness.ts';

export const DEFAULT_HISTOGRAM_BINS = 1000;

export interface HistogramGroupOffsets {
  group: string;
  /** Offset of this group's B positive counts. */
  pos: number;
  /** Offset of this group's B negative counts. */
  neg: number;
}

export interface HistogramLayout {
  bins: number;
  /** Total length of the flat vector. */
  length: number;
  globalPos: number;
  globalNeg: number;
  /** Offset of [Σ log loss, Σ squared error, row count]. */
  sums: number;
  /** Sorted by segment name; groups in declared order. */
  segments: { name: string; groups: HistogramGroupOffsets[] }[];
  /** sha256 of the canonical layout description; partners compare it before summing. */
  id: string;
}

export function histogramLayout(segments: Record<string, readonly string[]> = {}, bins: number = DEFAULT_HISTOGRAM_BINS): HistogramLayout {
  if (!Number.isInteger(bins) || bins < 2) {
    throw new FedmarkError('METRICS_BAD_BINS', `histogram bins must be an integer ≥ 2, got ${bins}`);
  }
  // Sorting names makes the layout independent of object key insertion order on each partner.
  const names = Object.keys(segments).sort();
  let offset = 2 * bins + 3;
  const segs = names.map((name) => {
    if (name.length === 0) throw new FedmarkError('METRICS_BAD_SEGMENT', 'segment names must be non-empty');
    const groups = segments[name];
    if (groups.length === 0) {
      throw new FedmarkError('METRICS_BAD_SEGMENT', `segment "${name}" declares no groups`);
    }
    if (new Set(groups).size !== groups.length) {
      throw new FedmarkError('METRICS_BAD_SEGMENT', `segment "${name}" declares a group twice`);
    }
    return {
      name,
      groups: groups.map((group) => {
        const g = { group, pos: offset, neg: offset + bins };
        offset += 2 * bins;
        return g;
      }),
    };
  });
  const id = sha256Hex(JSON.stringify({ v: 1, bins, segments: segs.map((s) => [s.name, s.groups.map((g) => g.group)]) }));
  return { bins, length: offset, globalPos: 0, globalNeg: bins, sums: 2 * bins, segments: segs, id };
}

/**
 * One partner's evaluation vector. `segmentsPerRow[name][i]` is row i's group for segment `name`;
 * it must name exactly the layout's segments, and every value must be a declared group.
 */
export function buildEvalHistograms(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  segmentsPerRow: Record<string, ArrayLike<string>>,
  layout: HistogramLayout,
  options: { logLossCap?: number } = {},
): Float64Array {
  const cap = options.logLossCap ?? Infinity;
  const n = checkLengths(scores, labels);
  checkProbabilities(scores);
  const declared = new Set(layout.segments.map((s) => s.name));
  for (const name of Object.keys(segmentsPerRow)) {
    if (!declared.has(name)) {
      throw new FedmarkError('METRICS_BAD_SEGMENT', `segment "${name}" is not declared in the histogram layout`);
    }
  }
  const B = layout.bins;
  const out = new Float64Array(layout.length);
  const rowBins = new Int32Array(n);
  let sumLog = 0;
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const b = binIndex(scores[i], B);
    rowBins[i] = b;
    out[(labels[i] === 1 ? layout.globalPos : layout.globalNeg) + b]++;
    // A cap bounds what one row adds (DP: the release's sensitivity); without one, p is clipped to [1e-15, 1 − 1e-15].
    sumLog += Math.min(cap, rowLogLoss(scores[i], labels[i]));
    sumSq += (scores[i] - labels[i]) ** 2;
  }
  out[layout.sums] = sumLog;
  out[layout.sums + 1] = sumSq;
  out[layout.sums + 2] = n;
  for (const seg of layout.segments) {
    const values = segmentsPerRow[seg.name];
    if (values === undefined) {
      throw new FedmarkError('METRICS_BAD_SEGMENT', `no values given for declared segment "${seg.name}"`);
    }
    if (values.length !== n) {
      throw new FedmarkError('METRICS_LENGTH_MISMATCH', `segment "${seg.name}" has ${values.length} entries but there are ${n} rows`);
    }
    const byGroup = new Map(seg.groups.map((g) => [g.group, g]));
    for (let i = 0; i < n; i++) {
      const g = byGroup.get(values[i]);
      if (!g) {
        throw new FedmarkError('METRICS_UNKNOWN_GROUP', `row ${i}: segment "${seg.name}" has value "${values[i]}", which is not a declared group`, {
          segment: seg.name,
          row: i,
        });
      }
      out[(labels[i] === 1 ? g.pos : g.neg) + rowBins[i]]++;
    }
  }
  return out;
}

/** Plaintext sum of partners' vectors (what the encrypted aggregation computes). */
export function sumHistograms(vectors: readonly Float64Array[]): Float64Array {
  if (vectors.length === 0) throw new FedmarkError('METRICS_EMPTY', 'no histogram vectors to sum');
  const len = vectors[0].length;
  const out = new Float64Array(len);
  for (const [k, v] of vectors.entries()) {
    if (v.length !== len) {
      throw new FedmarkError('METRICS_LENGTH_MISMATCH', `histogram vector ${k} has length ${v.length}, expected ${len}`);
    }
    for (let i = 0; i < len; i++) out[i] += v[i];
  }
  return out;
}

export interface RocPoint {
  /** Rows with score ≥ threshold are predicted positive. */
  threshold: number;
  fpr: number;
  tpr: number;
}

export interface PrPoint {
  threshold: number;
  recall: number;
  precision: number;
}

export interface LiftRow {
  /** 1 = top 10 % of rows by score. */
  decile: number;
  /** Cumulative share of rows up to and including this decile. */
  fraction: number;
  /** Rows in this decile (n/10, up to histogram noise). */
  count: number;
  /** Positives in this decile; rows sharing a bin with the cut are taken pro rata. */
  positives: number;
  /** positives / count. */
  responseRate: number;
  /** responseRate / base rate. */
  lift: number;
  /** Positive rate of the top `fraction` / base rate. */
  cumulativeLift: number;
  /** Share of all positives captured in the top `fraction` (the gain curve). */
  gain: number;
  /** Lower edge of the score bin where this decile's cut falls. */
  minScore: number;
}

export interface FederatedEvalMetrics {
  bins: number;
  /** Threshold actually used, rounded to the nearest bin edge. */
  threshold: number;
  n: number;
  positives: number;
  negatives: number;
  baseRate: number;
  /** Ties within a bin count ½ (the trapezoid rule over the binned ROC curve). NaN if single-class. */
  auc: number;
  /** From the summed Σ log loss / row count — exact, not binned. */
  logLoss: number;
  /** From the summed Σ squared error / row count — exact, not binned. */
  brier: number;
  accuracy: number;
  /** From (0,0) to (1,1), one point per non-empty bin edge. */
  roc: RocPoint[];
  pr: PrPoint[];
  lift: LiftRow[];
  /** meanPredicted uses fine-bin midpoints (error ≤ 1/(2B)); empty bins omitted. */
  calibration: CalibrationBin[];
  segments: SegmentMetrics[];
}

export interface HistogramMetricsOptions {
  /** Default 0.5; rounded to the nearest multiple of 1/bins. */
  threshold?: number;
  /** Reliability-diagram bins, default 10. */
  calibrationBins?: number;
  /**
   * Standard deviation of the DP noise in each cell of the (summed) vector, 0 for exact counts. A
   * segment group whose noisy row count (or positives, negatives) cannot be told from noise — below
   * three standard deviations of the noise its total carries — reports NaN rates (n/a), never a
   * ratio of noise.
   */
  noiseStd?: number;
}

function clamped(flat: Float64Array, offset: number, bins: number): Float64Array {
  const out = new Float64Array(bins);
  for (let b = 0; b < bins; b++) {
    const v = flat[offset + b];
    out[b] = v > 0 ? v : 0;
  }
  return out;
}

function total(h: Float64Array): number {
  let s = 0;
  for (let b = 0; b < h.length; b++) s += h[b];
  return s;
}

/** AUC from binned counts: walking bins high → low, ties inside a bin count ½. */
export function aucFromHistograms(pos: Float64Array, neg: Float64Array): number {
  const P = total(pos);
  const N = total(neg);
  if (!(P > 0 && N > 0)) return NaN;
  let negBelow = N;
  let wins = 0;
  for (let b = pos.length - 1; b >= 0; b--) {
    negBelow -= neg[b];
    wins += pos[b] * Math.max(0, negBelow) + 0.5 * pos[b] * neg[b];
  }
  return Math.min(1, Math.max(0, wins / (P * N)));
}

function thresholdCounts(pos: Float64Array, neg: Float64Array, tBin: number): { tp: number; fp: number } {
  let tp = 0;
  let fp = 0;
  for (let b = tBin; b < pos.length; b++) {
    tp += pos[b];
    fp += neg[b];
  }
  return { tp, fp };
}

function liftTable(pos: Float64Array, neg: Float64Array, bins: number): LiftRow[] {
  const P = total(pos);
  const n = P + total(neg);
  if (!(n > 0)) return [];
  const baseRate = P / n;
  const rows: LiftRow[] = [];
  let b = bins - 1;
  let usedInBin = 0; // rows of bin b already assigned to earlier deciles
  let cumCount = 0;
  let cumPos = 0;
  for (let d = 1; d <= 10; d++) {
    const target = (d / 10) * n;
    let dCount = 0;
    let dPos = 0;
    let cutBin = b;
    while (b >= 0 && cumCount + dCount < target - 1e-9 * n) {
      const binCount = pos[b] + neg[b];
      const remaining = binCount - usedInBin;
      const need = target - cumCount - dCount;
      cutBin = b;
      if (remaining <= need) {
        if (binCount > 0) {
          dCount += remaining;
          dPos += (pos[b] * remaining) / binCount;
        }
        b--;
        usedInBin = 0;
      } else {
        dCount += need;
        dPos += (pos[b] * need) / binCount;
        usedInBin += need;
      }
    }
    cumCount += dCount;
    cumPos += dPos;
    const responseRate = dCount > 0 ? dPos / dCount : NaN;
    rows.push({
      decile: d,
      fraction: d / 10,
      count: dCount,
      positives: dPos,
      responseRate,
      lift: baseRate > 0 ? responseRate / baseRate : NaN,
      cumulativeLift: baseRate > 0 && cumCount > 0 ? cumPos / cumCount / baseRate : NaN,
      gain: P > 0 ? cumPos / P : NaN,
      minScore: Math.max(0, cutBin) / bins,
    });
  }
  return rows;
}

function calibrationFromHistograms(pos: Float64Array, neg: Float64Array, bins: number, cBins: number): CalibrationBin[] {
  const count = new Float64Array(cBins);
  const sumMid = new Float64Array(cBins);
  const sumPos = new Float64Array(cBins);
  for (let b = 0; b < bins; b++) {
    const c = pos[b] + neg[b];
    if (c === 0) continue;
    const mid = (b + 0.5) / bins;
    const k = binIndex(mid, cBins);
    count[k] += c;
    sumMid[k] += c * mid;
    sumPos[k] += pos[b];
  }
  return calibrationFromSums(count, sumMid, sumPos);
}

function groupCounts(group: string, flat: Float64Array, g: HistogramGroupOffsets, bins: number, tBin: number, noiseStd: number): GroupCounts {
  const pos = clamped(flat, g.pos, bins);
  const neg = clamped(flat, g.neg, bins);
  const { tp, fp } = thresholdCounts(pos, neg, tBin);
  const counts = groupRates(group, total(pos), total(neg), tp, fp, aucFromHistograms(pos, neg));
  if (!(noiseStd > 0)) return counts;
  // Raw (unclamped) sums: the noise in them has mean 0, so a group of no rows sums to about 0.
  const raw = (offset: number) => flat.subarray(offset, offset + bins).reduce((a, b) => a + b, 0);
  const floor = (cells: number) => 3 * noiseStd * Math.sqrt(cells);
  const rawPos = raw(g.pos);
  const rawNeg = raw(g.neg);
  const hasRows = rawPos + rawNeg >= floor(2 * bins);
  const hasPos = rawPos >= floor(bins);
  const hasNeg = rawNeg >= floor(bins);
  return {
    ...counts,
    baseRate: hasRows ? counts.baseRate : NaN,
    selectionRate: hasRows ? counts.selectionRate : NaN,
    tpr: hasPos ? counts.tpr : NaN,
    fpr: hasNeg ? counts.fpr : NaN,
    auc: hasPos && hasNeg ? counts.auc : NaN,
  };
}

/** All global and per-segment metrics from a (summed) evaluation vector. */
export function metricsFromHistograms(flat: Float64Array, layout: HistogramLayout, options: HistogramMetricsOptions = {}): FederatedEvalMetrics {
  if (flat.length !== layout.length) {
    throw new FedmarkError('METRICS_LAYOUT_MISMATCH', `evaluation vector has length ${flat.length} but the layout expects ${layout.length}`);
  }
  for (let i = 0; i < flat.length; i++) {
    if (Number.isNaN(flat[i])) {
      throw new FedmarkError('METRICS_BAD_HISTOGRAM', `evaluation vector entry ${i} is NaN`, { index: i });
    }
  }
  const B = layout.bins;
  const threshold = options.threshold ?? 0.5;
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new FedmarkError('METRICS_BAD_THRESHOLD', `threshold must be in [0, 1], got ${threshold}`);
  }
  const cBins = options.calibrationBins ?? 10;
  if (!Number.isInteger(cBins) || cBins < 1) {
    throw new FedmarkError('METRICS_BAD_BINS', `calibrationBins must be a positive integer, got ${cBins}`);
  }
  const tBin = Math.round(threshold * B);
  const pos = clamped(flat, layout.globalPos, B);
  const neg = clamped(flat, layout.globalNeg, B);
  const P = total(pos);
  const N = total(neg);
  const n = P + N;

  const roc: RocPoint[] = [{ threshold: 1, fpr: 0, tpr: 0 }];
  const pr: PrPoint[] = [];
  let tp = 0;
  let fp = 0;
  for (let b = B - 1; b >= 0; b--) {
    if (pos[b] === 0 && neg[b] === 0) continue;
    tp += pos[b];
    fp += neg[b];
    const t = b / B;
    roc.push({ threshold: t, fpr: N > 0 ? fp / N : NaN, tpr: P > 0 ? tp / P : NaN });
    if (P > 0) pr.push({ threshold: t, recall: tp / P, precision: tp / (tp + fp) });
  }
  const last = roc[roc.length - 1];
  if (last.fpr !== 1 || last.tpr !== 1) roc.push({ threshold: 0, fpr: 1, tpr: 1 });

  const at = thresholdCounts(pos, neg, tBin);
  const count = flat[layout.sums + 2];
  const segments = layout.segments.map((seg) =>
    finalizeSegment(
      seg.name,
      tBin / B,
      seg.groups.map((g) => groupCounts(g.group, flat, g, B, tBin, options.noiseStd ?? 0)),
    ),
  );
  return {
    bins: B,
    threshold: tBin / B,
    n,
    positives: P,
    negatives: N,
    baseRate: n > 0 ? P / n : NaN,
    auc: aucFromHistograms(pos, neg),
    logLoss: count > 0 ? Math.max(0, flat[layout.sums]) / count : NaN,
    brier: count > 0 ? Math.max(0, flat[layout.sums + 1]) / count : NaN,
    accuracy: n > 0 ? (at.tp + (N - at.fp)) / n : NaN,
    roc,
    pr,
    lift: liftTable(pos, neg, B),
    calibration: calibrationFromHistograms(pos, neg, B, cBins),
    segments,
  };
}
