/**
 * The column layouts of a vertical job. Each party has its own feature layout (src/trees/layout.ts,
 * from its own schema) and bins its own columns with its own cuts. The label holder scans split
 * candidates over a joint view — its own columns, then each feature holder's columns as the manifest
 * describes them (kind and bin count, no names, no cuts) — in party order, which is also the column
 * order of the pooled reference model, so ties break the same way.
 */
import { FedmarkError } from '../../errors.ts';
import { binMatrix, dyadicCounts, edgesFromCounts, schemaEdges, type BinEdges, type BinnedMatrix } from '../../trees/edges.ts';
import { checkLayout, groupBins, type FeatureGroup, type FeatureLayout } from '../../trees/layout.ts';
import type { ColumnShape, SecureBoostParams } from './params.ts';

/** A party's columns as the manifest describes them to the label holder. */
export function columnShapes(layout: FeatureLayout, bins: number): ColumnShape[] {
  return layout.groups.map((g) => ({ kind: g.kind, bins: groupBins(g, bins) }));
}

/** The layout of the label holder's view: its own groups, then one placeholder group per foreign column. */
export interface JointView {
  layout: FeatureLayout;
  /** Cuts for the split search: the label holder's own, strictly increasing stand-ins elsewhere (no cut is skipped). */
  edges: BinEdges;
  /** First joint group of each party (party order) and its group count. */
  offsets: number[];
  counts: number[];
}

function placeholder(shape: ColumnShape, name: string, at: number): FeatureGroup {
  if (shape.kind === 'categorical') return { kind: 'categorical', name, offset: at, slots: shape.bins };
  if (shape.kind === 'binary') return { kind: 'binary', name, feature: at };
  return { kind: 'numeric', name, feature: at, lo: 0, hi: 1 };
}

export function jointView(own: FeatureLayout, ownEdges: BinEdges, foreign: readonly ColumnShape[][]): JointView {
  const groups: FeatureGroup[] = [...own.groups];
  const names = [...own.featureNames];
  const cuts = [...ownEdges.cuts];
  const offsets = [0];
  const counts = [own.groups.length];
  foreign.forEach((shapes, p) => {
    offsets.push(groups.length);
    counts.push(shapes.length);
    shapes.forEach((s, j) => {
      const name = `party${p + 1}.column${j}`;
      const g = placeholder(s, name, names.length);
      groups.push(g);
      const width = g.kind === 'categorical' ? g.slots : 1;
      for (let k = 0; k < width; k++) names.push(width === 1 ? name : `${name}.${k}`);
      cuts.push(s.kind === 'categorical' ? [] : Array.from({ length: s.bins - 1 }, (_, k) => k));
    });
  });
  return { layout: checkLayout({ d: names.length, featureNames: names, groups }), edges: { cuts }, offsets, counts };
}

/** The layout of all parties' columns side by side (the pooled reference's view: real cuts everywhere). */
export function concatLayouts(layouts: readonly FeatureLayout[]): FeatureLayout {
  const groups: FeatureGroup[] = [];
  const names: string[] = [];
  for (const l of layouts) {
    const shift = names.length;
    for (const g of l.groups) groups.push(g.kind === 'categorical' ? { ...g, offset: g.offset + shift } : { ...g, feature: g.feature + shift });
    names.push(...l.featureNames);
  }
  return checkLayout({ d: names.length, featureNames: names, groups });
}

/** Rows of several parties' matrices side by side (same row count), for the pooled reference. */
export function concatColumns(parts: readonly { X: Float32Array; d: number }[], n: number): Float32Array {
  const d = parts.reduce((a, p) => a + p.d, 0);
  const X = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let at = i * d;
    for (const p of parts) {
      X.set(p.X.subarray(i * p.d, (i + 1) * p.d), at);
      at += p.d;
    }
  }
  return X;
}

/**
 * A party's own cuts: equal widths of the declared ranges, or exact quantiles of its own training rows
 * (a dyadic grid of 1024 cells per column, as the horizontal GBDT's quantile round, without noise: the
 * cuts never leave the party).
 */
export function partyEdges(params: Pick<SecureBoostParams, 'bins' | 'edges'>, layout: FeatureLayout, X: Float32Array, trainRows: ArrayLike<number>): BinEdges {
  if (params.edges === 'schema') return schemaEdges(layout, params);
  const n = trainRows.length;
  const sub = new Float32Array(n * layout.d);
  for (let k = 0; k < n; k++) sub.set(X.subarray(trainRows[k] * layout.d, (trainRows[k] + 1) * layout.d), k * layout.d);
  const grid = { quantileGrid: 1024 };
  return edgesFromCounts({ bins: params.bins, ...grid }, layout, dyadicCounts(grid, layout, sub, n));
}

/** The party's binned matrix of all aligned rows. */
export function binRows(params: Pick<SecureBoostParams, 'bins'>, layout: FeatureLayout, edges: BinEdges, X: Float32Array, n: number): BinnedMatrix {
  if (X.length < n * layout.d) throw new FedmarkError('VERTICAL_BAD_DATA', `expected ${n} aligned rows × ${layout.d} features, got ${X.length} values`);
  return binMatrix(layout, params, edges, X, n);
}
