/**
 * Per-segment (fairness) metrics computed directly from scores — the centralized / simulation
 * counterpart of the histogram path in src/metrics/histogram.ts. Both return `SegmentMetrics[]` of the
 * same shape so a simulation can put the pooled figures next to the federated ones.
 *
 * Disparate impact is each group's selection rate divided by the highest selection rate in its segment
 * (the best-treated group). A ratio below 0.8 is flagged: the "four-fifths rule" of the US Uniform
 * Guidelines on Employee Selection Procedures (29 C.F.R. § 1607.4(D), 1978), the usual screening
 * threshold for adverse impact. It is a screen, not a verdict — the report says so.
 */
import { FedmarkError } from '../errors.ts';
import { auc, checkLengths } from './classification.ts';

export const DISPARATE_IMPACT_THRESHOLD = 0.8;

export interface GroupMetrics {
  group: string;
  count: number;
  positives: number;
  /** positives / count (the observed outcome rate). */
  baseRate: number;
  /** Share of rows predicted positive (score ≥ threshold). */
  selectionRate: number;
  /** True-positive rate (recall) at the threshold; NaN without positives. */
  tpr: number;
  /** False-positive rate at the threshold; NaN without negatives. */
  fpr: number;
  /** NaN when the group is single-class. */
  auc: number;
  /** selectionRate / max selectionRate in the segment; NaN when undefined (empty group, nobody selected). */
  disparateImpact: number;
  /** disparateImpact < 0.8 (four-fifths rule). */
  flagged: boolean;
}

export interface SegmentMetrics {
  segment: string;
  threshold: number;
  /** The best-treated group (highest selection rate), the denominator of disparate impact. */
  referenceGroup: string | null;
  groups: GroupMetrics[];
}

export type GroupCounts = Omit<GroupMetrics, 'disparateImpact' | 'flagged'>;

/**
 * A group's rates from its confusion counts at the threshold — shared by the direct (pooled scores)
 * and the histogram (federated) paths, so both report exactly the same definitions.
 */
export function groupRates(group: string, positives: number, negatives: number, tp: number, fp: number, groupAuc: number): GroupCounts {
  const count = positives + negatives;
  return {
    group,
    count,
    positives,
    baseRate: count > 0 ? positives / count : NaN,
    selectionRate: count > 0 ? (tp + fp) / count : NaN,
    tpr: positives > 0 ? tp / positives : NaN,
    fpr: negatives > 0 ? fp / negatives : NaN,
    auc: groupAuc,
  };
}

/** Adds disparate impact and the four-fifths flag to per-group counts of one segment. */
export function finalizeSegment(segment: string, threshold: number, groups: GroupCounts[]): SegmentMetrics {
  let best = -1;
  let referenceGroup: string | null = null;
  for (const g of groups) {
    if (Number.isFinite(g.selectionRate) && g.selectionRate > best) {
      best = g.selectionRate;
      referenceGroup = g.group;
    }
  }
  const out: GroupMetrics[] = groups.map((g) => {
    const di = best > 0 && Number.isFinite(g.selectionRate) ? g.selectionRate / best : NaN;
    return { ...g, disparateImpact: di, flagged: di < DISPARATE_IMPACT_THRESHOLD };
  });
  return { segment, threshold, referenceGroup: best > 0 ? referenceGroup : null, groups: out };
}

export interface FairnessOptions {
  /** Score at or above which a row counts as selected (predicted positive). Default 0.5. */
  threshold?: number;
  /**
   * Declared groups per segment, in display order. Groups listed but absent from the data appear with
   * count 0; a value not listed throws. Without it, groups are the distinct values, sorted.
   */
  groups?: Record<string, readonly string[]>;
}

/**
 * Direct per-segment metrics. `segmentsPerRow[name][i]` is row i's group in segment `name`.
 * Segments are returned sorted by name, matching `histogramLayout`.
 */
export function fairnessMetrics(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  segmentsPerRow: Record<string, ArrayLike<string>>,
  options: FairnessOptions = {},
): SegmentMetrics[] {
  const n = checkLengths(scores, labels);
  const threshold = options.threshold ?? 0.5;
  const names = Object.keys(segmentsPerRow).sort();
  return names.map((name) => {
    const values = segmentsPerRow[name];
    if (values.length !== n) {
      throw new FedmarkError('METRICS_LENGTH_MISMATCH', `segment "${name}" has ${values.length} entries but there are ${n} rows`);
    }
    const declared = options.groups?.[name];
    const order = declared ? [...declared] : [...new Set(Array.from(values))].sort();
    const rows = new Map<string, number[]>(order.map((g) => [g, []]));
    for (let i = 0; i < n; i++) {
      const bucket = rows.get(values[i]);
      if (!bucket) {
        throw new FedmarkError('METRICS_UNKNOWN_GROUP', `row ${i}: segment "${name}" has value "${values[i]}", which is not a declared group`, {
          segment: name,
          row: i,
        });
      }
      bucket.push(i);
    }
    const counts: GroupCounts[] = order.map((group) => {
      const idx = rows.get(group)!;
      const s = new Float64Array(idx.length);
      const y = new Uint8Array(idx.length);
      let pos = 0;
      let tp = 0;
      let fp = 0;
      idx.forEach((row, k) => {
        s[k] = scores[row];
        y[k] = labels[row];
        pos += y[k];
        if (s[k] >= threshold) {
          if (y[k] === 1) tp++;
          else fp++;
        }
      });
      return groupRates(group, pos, idx.length - pos, tp, fp, idx.length > 0 ? auc(s, y) : NaN);
    });
    return finalizeSegment(name, threshold, counts);
  });
}
