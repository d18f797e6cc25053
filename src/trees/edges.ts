/**
 * Shared bin edges, derived without pooling rows: from the schema's declared ranges (no ε), or from one
 * quantile round in which every partner releases noisy counts on a fine grid, the federation sums them,
 * and every key holder derives the same edges from the sum (a deterministic function of public input).
 *
 * The quantile counts are dyadic (Hay, Rastogi, Miklau & Suciu 2010, "Boosting the accuracy of
 * differentially private histograms through consistency"; Dwork, Naor, Pitassi & Rothblum 2010 for the
 * tree-of-counts idea): a row increments one cell at each of the log₂(grid)+1 levels of a binary tree over
 * the grid, and any prefix count is a sum of at most log₂(grid) nodes. Against a flat grid that costs
 * √(levels) in sensitivity but cuts the variance of a mid-range prefix from O(grid) noise terms to
 * O(log grid), which is what a quantile needs. Merging GK/KLL sketches is avoided on purpose: sketches do
 * not add, and each partner's sketch exposes its own rows.
 *
 * Edges are float32 values: the released model stores thresholds as float32 (XGBoost does), and a row's
 * bin is computed by comparing its float32 feature with the same float32 edge, so the bins the trees
 * were trained on and the comparisons the saved model makes agree exactly.
 */
import { FedmarkError } from '../errors.ts';
import { sha256Hex } from '../util/hash.ts';
import { binLayout, numericGroups, type FeatureLayout } from './layout.ts';
import type { GbdtParams } from './params.ts';

/** Per group (layout order): ascending cut values; a value x falls in bin #{cuts ≤ x}. Categorical groups have none. */
export interface BinEdges {
  cuts: number[][];
}

/** Edges from the declared ranges: numeric ranges cut into `bins` equal widths (in the encoded space). */
export function schemaEdges(layout: FeatureLayout, params: Pick<GbdtParams, 'bins'>): BinEdges {
  return {
    cuts: layout.groups.map((g) => {
      if (g.kind === 'binary') return [0.5];
      if (g.kind === 'categorical') return [];
      const out: number[] = [];
      for (let k = 1; k < params.bins; k++) out.push(Math.fround(g.lo + ((g.hi - g.lo) * k) / params.bins));
      return out;
    }),
  };
}

function levelsOf(grid: number): number {
  return Math.round(Math.log2(grid)) + 1;
}

/** Length of the quantile round's `counts` part: per numeric group, the 2·grid − 1 nodes of the dyadic tree. */
export function quantilePartLength(params: Pick<GbdtParams, 'quantileGrid'>, layout: FeatureLayout): number {
  return numericGroups(layout).length * (2 * params.quantileGrid - 1);
}

/** Cells a row increments in the quantile release: one per dyadic level per numeric group. */
export function quantileCellsPerRow(params: Pick<GbdtParams, 'quantileGrid'>, layout: FeatureLayout): number {
  return numericGroups(layout).length * levelsOf(params.quantileGrid);
}

function gridCell(x: number, lo: number, hi: number, grid: number): number {
  const c = Math.floor(((x - lo) / (hi - lo)) * grid);
  return c < 0 ? 0 : c >= grid ? grid - 1 : c;
}

/**
 * A partner's exact dyadic counts for the quantile round (noise is added by the caller after the
 * release is charged). Layout per numeric group: level 0 (grid cells), level 1 (grid/2), …, the root.
 */
export function dyadicCounts(params: Pick<GbdtParams, 'quantileGrid'>, layout: FeatureLayout, X: Float32Array, n: number): Float64Array {
  const grid = params.quantileGrid;
  const L = levelsOf(grid);
  const groups = numericGroups(layout);
  const out = new Float64Array(quantilePartLength(params, layout));
  const { d } = layout;
  checkMatrix(X, n, d);
  groups.forEach((g, gi) => {
    const base = gi * (2 * grid - 1);
    for (let i = 0; i < n; i++) {
      const x = X[i * d + g.feature];
      if (Number.isNaN(x)) throw new FedmarkError('GBDT_BAD_VALUE', `row ${i}, feature "${g.name}": value is NaN`);
      let cell = gridCell(x, g.lo, g.hi, grid);
      let at = base;
      let width = grid;
      for (let l = 0; l < L; l++) {
        out[at + cell] += 1;
        at += width;
        width >>= 1;
        cell >>= 1;
      }
    }
  });
  return out;
}

/** Noisy prefix counts P(c) = #{rows in cells < c}, c = 0 … grid, read off the dyadic tree. */
function prefixCounts(counts: Float64Array, base: number, grid: number): Float64Array {
  const L = levelsOf(grid);
  const starts: number[] = [];
  for (let l = 0, at = base, width = grid; l < L; l++, at += width, width >>= 1) starts.push(at);
  const P = new Float64Array(grid + 1);
  for (let c = 1; c <= grid; c++) {
    let s = 0;
    let pos = 0;
    for (let l = L - 1; l >= 0; l--) {
      if (c & (1 << l)) {
        s += counts[starts[l] + (pos >> l)];
        pos += 1 << l;
      }
    }
    P[c] = s;
  }
  return P;
}

/**
 * Edges from the summed (noisy) counts — a deterministic function, so every key holder gets the same
 * edges. The noisy prefix is made monotone (running maximum, a post-processing step) and numeric group
 * edge k sits at the first grid boundary where it reaches k/bins of the total. Duplicate edges are kept
 * (the part lengths stay fixed by the parameters); they only produce empty bins that splits skip. A group
 * whose noisy total is not positive (no rows anywhere) falls back to the schema's equal widths.
 */
export function edgesFromCounts(params: Pick<GbdtParams, 'bins' | 'quantileGrid'>, layout: FeatureLayout, summed: Float64Array): BinEdges {
  const grid = params.quantileGrid;
  const expected = quantilePartLength(params, layout);
  if (summed.length !== expected) {
    throw new FedmarkError('GBDT_BAD_PART', `quantile counts have ${summed.length} values, expected ${expected}`);
  }
  const fallback = schemaEdges(layout, params);
  let gi = 0;
  return {
    cuts: layout.groups.map((g, index) => {
      if (g.kind !== 'numeric') return fallback.cuts[index];
      const P = prefixCounts(summed, gi++ * (2 * grid - 1), grid);
      for (let c = 1; c <= grid; c++) if (P[c] < P[c - 1]) P[c] = P[c - 1];
      const total = P[grid];
      if (!(total > 0)) return fallback.cuts[index];
      const out: number[] = [];
      let c = 1;
      for (let k = 1; k < params.bins; k++) {
        const target = (total * k) / params.bins;
        while (c < grid && P[c] < target) c++;
        out.push(Math.fround(g.lo + ((g.hi - g.lo) * c) / grid));
      }
      return out;
    }),
  };
}

/** Throws GBDT_BAD_EDGES unless `edges` fits the layout and parameters (shape, order, float32 values). */
export function checkEdges(layout: FeatureLayout, params: Pick<GbdtParams, 'bins'>, edges: BinEdges): BinEdges {
  const bad = (m: string) => new FedmarkError('GBDT_BAD_EDGES', `bin edges: ${m}`);
  if (!edges || !Array.isArray(edges.cuts) || edges.cuts.length !== layout.groups.length) {
    throw bad(`expected ${layout.groups.length} groups of cuts`);
  }
  const sizes = binLayout(layout, params.bins).sizes;
  layout.groups.forEach((g, i) => {
    const cuts = edges.cuts[i];
    const want = g.kind === 'categorical' ? 0 : sizes[i] - 1;
    if (!Array.isArray(cuts) || cuts.length !== want) throw bad(`group "${g.name}" needs ${want} cuts, got ${Array.isArray(cuts) ? cuts.length : typeof cuts}`);
    for (let k = 0; k < cuts.length; k++) {
      const c = cuts[k];
      if (typeof c !== 'number' || !Number.isFinite(c) || Math.fround(c) !== c) throw bad(`group "${g.name}" cut ${k} is not a finite float32 value`);
      if (k > 0 && c < cuts[k - 1]) throw bad(`group "${g.name}" cuts are not ascending at ${k}`);
    }
  });
  return edges;
}

/** Hash of the edges for the ledger and for model-hash agreement (sha256 of their canonical JSON). */
export function edgesHash(edges: BinEdges): string {
  return sha256Hex(JSON.stringify({ format: 'fedmark-bin-edges/1', cuts: edges.cuts }));
}

function checkMatrix(X: Float32Array, n: number, d: number): void {
  if (!Number.isInteger(n) || n < 0 || X.length < n * d) {
    throw new FedmarkError('GBDT_BAD_DATA', `feature matrix has ${X.length} values, expected ${n} rows × ${d} features`);
  }
}

/** Rows binned per group, row-major n × groups; Uint8 when every group has at most 256 bins. */
export interface BinnedMatrix {
  n: number;
  groups: number;
  bins: Uint8Array | Uint16Array;
}

/** Upper bound: number of cuts ≤ x (cuts ascending). */
function binOf(cuts: readonly number[], x: number): number {
  let lo = 0;
  let hi = cuts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cuts[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Bins the encoded matrix. A categorical group's bin is the slot that is set; a row whose slots are not
 * exactly one-hot is refused (the encoder never produces one), since a tree split on slot v tests x_v
 * and must route the row exactly as its bin did.
 */
export function binMatrix(layout: FeatureLayout, params: Pick<GbdtParams, 'bins'>, edges: BinEdges, X: Float32Array, n: number): BinnedMatrix {
  checkEdges(layout, params, edges);
  const { d, groups } = layout;
  checkMatrix(X, n, d);
  const G = groups.length;
  const wide = binLayout(layout, params.bins).sizes.some((s) => s > 256);
  const bins = wide ? new Uint16Array(n * G) : new Uint8Array(n * G);
  for (let gi = 0; gi < G; gi++) {
    const g = groups[gi];
    if (g.kind === 'categorical') {
      for (let i = 0; i < n; i++) {
        let slot = -1;
        for (let s = 0; s < g.slots; s++) {
          const v = X[i * d + g.offset + s];
          if (v >= 0.5) {
            if (slot >= 0) throw new FedmarkError('GBDT_BAD_VALUE', `row ${i}, column "${g.name}": more than one one-hot slot is set`);
            slot = s;
          } else if (!(v >= -0.5)) {
            throw new FedmarkError('GBDT_BAD_VALUE', `row ${i}, column "${g.name}": one-hot value ${v} is not 0 or 1`);
          }
        }
        if (slot < 0) throw new FedmarkError('GBDT_BAD_VALUE', `row ${i}, column "${g.name}": no one-hot slot is set`);
        bins[i * G + gi] = slot;
      }
    } else {
      const cuts = edges.cuts[gi];
      const f = g.feature;
      for (let i = 0; i < n; i++) {
        const x = X[i * d + f];
        if (Number.isNaN(x)) throw new FedmarkError('GBDT_BAD_VALUE', `row ${i}, feature "${g.name}": value is NaN`);
        bins[i * G + gi] = binOf(cuts, x);
      }
    }
  }
  return { n, groups: G, bins };
}
