/**
 * The terms of cyclic mode: an additive model f(x) = base + Σ_terms value_term(cell(x)) whose terms
 * are one column (a main effect) or two (an interaction), each over a fixed public partition of its
 * columns' bins — DP-EBM (Nori, Caruana et al., "Accuracy, Interpretability, and Differential Privacy
 * via Explainable Boosting", ICML 2021) for the main effects, and GA²M-style pair terms (Lou, Caruana
 * et al., KDD 2013) for the interactions. Because the partition is public, a term's round releases one
 * histogram in which each row touches one cell, and every released value becomes a model value: no
 * budget is spent on choosing split points.
 *
 * A term is exported as one tree that splits on its columns only (a balanced tree over a numeric
 * column's cells, a chain of one-hot tests over a categorical's slots), so the model is an ordinary
 * XGBoost ensemble.
 */
import { FedmarkError } from '../errors.ts';
import type { BinEdges, BinnedMatrix } from './edges.ts';
import { groupBins, type FeatureLayout } from './layout.ts';
import type { CompactTree } from './model.ts';
import type { GbdtParams } from './params.ts';

/** One column of a term: its cells and which cell each of its bins falls in. */
export interface TermAxis {
  group: number;
  /** Cells along the axis. */
  size: number;
  /** Cell of each bin of the group. */
  cellOfBin: Int32Array;
  /** First bin of each cell (cells are runs of consecutive bins). */
  firstBin: Int32Array;
}

/**
 * The axis of group `g` with numeric columns merged into `cells` runs of consecutive bins (null: one
 * cell per bin). Binary and categorical columns keep one cell per bin (value).
 */
export function termAxis(layout: FeatureLayout, params: Pick<GbdtParams, 'bins'>, g: number, cells: number | null): TermAxis {
  const group = layout.groups[g];
  if (!group) throw new FedmarkError('GBDT_BAD_TERM', `term column ${g} is not a feature group of the layout`);
  const bins = groupBins(group, params.bins);
  const size = group.kind === 'numeric' && cells !== null ? Math.min(cells, bins) : bins;
  const cellOfBin = new Int32Array(bins);
  for (let b = 0; b < bins; b++) cellOfBin[b] = size === bins ? b : Math.floor((b * size) / bins);
  const firstBin = new Int32Array(size).fill(-1);
  for (let b = bins - 1; b >= 0; b--) firstBin[cellOfBin[b]] = b;
  return { group: g, size, cellOfBin, firstBin };
}

/** Cells of a term over `axes`: the product of their sizes (first axis major). */
export function termCells(axes: readonly TermAxis[]): number {
  return axes.reduce((a, x) => a * x.size, 1);
}

/** The cell row `i` of a binned matrix falls in. */
export function cellOfRow(axes: readonly TermAxis[], data: BinnedMatrix, i: number): number {
  let c = 0;
  const row = i * data.groups;
  for (const a of axes) c = c * a.size + a.cellOfBin[data.bins[row + a.group]];
  return c;
}

/**
 * Candidate pairs of the interaction screening: every pair of the `columns` strongest columns
 * (`ranked`, strongest first), in a fixed order so every key holder lists them alike.
 */
export function candidatePairs(ranked: readonly number[], columns: number): [number, number][] {
  const top = [...ranked.slice(0, columns)].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (let x = 0; x < top.length; x++) for (let y = x + 1; y < top.length; y++) out.push([top[x], top[y]]);
  return out;
}

/** How many pairs the screening scores and how many interaction terms it keeps, for a layout of `groups` columns. */
export function pairCounts(
  p: Pick<NonNullable<GbdtParams['cyclic']>, 'interactions' | 'interactionColumns'>,
  groups: number,
): { candidates: number; kept: number } {
  const q = Math.min(p.interactionColumns, groups);
  const candidates = (q * (q - 1)) / 2;
  return { candidates, kept: Math.min(p.interactions, candidates) };
}

/** The largest number of cells a pair term can have at this resolution (so part lengths do not depend on the pair). */
export function maxPairCells(layout: FeatureLayout, params: Pick<GbdtParams, 'bins'>, cells: number): number {
  const sizes = layout.groups.map((_, g) => termAxis(layout, params, g, cells).size).sort((a, b) => b - a);
  return sizes.length < 2 ? 0 : sizes[0] * sizes[1];
}

// --- export --------------------------------------------------------------------------------------

interface Pending {
  id: number;
  axis: number;
  /** The cells [lo, hi) of this axis still possible at the node. */
  lo: number;
  hi: number;
  /** Cell index accumulated over the axes before `axis`. */
  prefix: number;
}

/**
 * A term as one tree. A numeric or binary axis splits its cell range in halves (left x < the first
 * cut of the upper half, as the bins were computed); a categorical axis tests its slots one by one
 * (slot v: x_v ≥ 0.5 goes right); the leaves hold the term's cell values. Node ids are assigned
 * breadth-first, so children follow their parents (XGBoost's order).
 */
export function termTree(layout: FeatureLayout, edges: BinEdges, axes: readonly TermAxis[], values: readonly number[]): CompactTree {
  if (values.length !== termCells(axes)) throw new FedmarkError('GBDT_BAD_TERM', `term has ${values.length} values for ${termCells(axes)} cells`);
  const t: CompactTree = { left: [], right: [], feature: [], threshold: [], value: [], defaultLeft: [] };
  const add = () => {
    t.left.push(-1);
    t.right.push(-1);
    t.feature.push(0);
    t.threshold.push(0);
    t.value.push(0);
    t.defaultLeft.push(true);
    return t.left.length - 1;
  };
  const strides = axes.map((_, k) => axes.slice(k + 1).reduce((a, x) => a * x.size, 1));
  const start = (id: number, axis: number, prefix: number): Pending => ({ id, axis, lo: 0, hi: axes[axis].size, prefix });
  const queue: Pending[] = [start(add(), 0, 0)];
  while (queue.length) {
    const n = queue.shift()!;
    const ax = axes[n.axis];
    const g = layout.groups[ax.group];
    if (n.hi - n.lo === 1) {
      // One cell left on this axis: go on with the next axis at the same node, or it is a leaf.
      const cell = n.prefix + n.lo * strides[n.axis];
      if (n.axis + 1 < axes.length) queue.unshift(start(n.id, n.axis + 1, cell));
      else t.value[n.id] = Math.fround(values[cell]);
      continue;
    }
    const l = add();
    const r = add();
    t.left[n.id] = l;
    t.right[n.id] = r;
    if (g.kind === 'categorical') {
      // Slot lo goes right; the other slots continue down the left branch.
      t.feature[n.id] = g.offset + n.lo;
      t.threshold[n.id] = 0.5;
      queue.push({ ...n, id: l, lo: n.lo + 1 }, { ...n, id: r, hi: n.lo + 1 });
    } else {
      const mid = (n.lo + n.hi) >> 1;
      t.feature[n.id] = g.feature;
      // Cell mid starts at bin firstBin[mid]; a row is in a cell ≥ mid iff x ≥ the cut below that bin.
      t.threshold[n.id] = edges.cuts[ax.group][ax.firstBin[mid] - 1];
      queue.push({ ...n, id: l, hi: mid }, { ...n, id: r, lo: mid });
    }
  }
  return t;
}
