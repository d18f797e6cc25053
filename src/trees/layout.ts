/**
 * How the encoded feature vector (src/data/encode.ts) is grouped for histograms. A group is one schema
 * column: a numeric column is one feature binned by edges; a boolean is one 0/1 feature; a categorical
 * column is its one-hot slots, binned by which slot is set. Histogramming a categorical column as one
 * group rather than one 2-bin histogram per slot means a row touches one bin per *column*, so the L2
 * sensitivity of a level's histograms grows with the number of columns, not of one-hot features
 * (bank marketing: 15 columns for 51 features).
 *
 * The layout is a function of the schema alone, so every partner and the coordinator derive it, and
 * with it every part length, before seeing any row.
 */
import { FedmarkError } from '../errors.ts';
import { columnFeatureNames, isFeature, isTypedColumn, type DatasetSchema } from '../data/schema.ts';

export interface NumericGroup {
  kind: 'numeric';
  name: string;
  feature: number;
  /** Encoded range: [0, 1] for scale 'unit', [−1, 1] for 'centered'. */
  lo: number;
  hi: number;
}

export interface BinaryGroup {
  kind: 'binary';
  name: string;
  feature: number;
}

export interface CategoricalGroup {
  kind: 'categorical';
  name: string;
  /** First one-hot feature; the group covers features offset … offset + slots − 1. */
  offset: number;
  slots: number;
}

export type FeatureGroup = NumericGroup | BinaryGroup | CategoricalGroup;

export interface FeatureLayout {
  /** Width of the encoded feature vector. */
  d: number;
  featureNames: string[];
  groups: FeatureGroup[];
}

/** The grouping of a schema's encoded features (same order as `featureNames(schema)`). */
export function featureLayout(schema: DatasetSchema): FeatureLayout {
  const groups: FeatureGroup[] = [];
  const names: string[] = [];
  for (const c of schema.columns) {
    if (!isTypedColumn(c) || !isFeature(c)) continue;
    const offset = names.length;
    const fnames = columnFeatureNames(c);
    names.push(...fnames);
    if (c.type === 'numeric') {
      const centered = c.scale === 'centered';
      groups.push({ kind: 'numeric', name: c.name, feature: offset, lo: centered ? -1 : 0, hi: 1 });
    } else if (c.type === 'boolean') {
      groups.push({ kind: 'binary', name: c.name, feature: offset });
    } else {
      groups.push({ kind: 'categorical', name: c.name, offset, slots: fnames.length });
    }
  }
  return checkLayout({ d: names.length, featureNames: names, groups });
}

/**
 * A layout for a plain matrix without a schema: every feature its own numeric group over a declared
 * range (ranges must be declared, not fitted, for the same reason the schema declares them).
 */
export function numericLayout(ranges: readonly { name: string; lo: number; hi: number }[]): FeatureLayout {
  return checkLayout({
    d: ranges.length,
    featureNames: ranges.map((r) => r.name),
    groups: ranges.map((r, j) => ({ kind: 'numeric' as const, name: r.name, feature: j, lo: r.lo, hi: r.hi })),
  });
}

/** Throws GBDT_BAD_LAYOUT unless groups tile 0 … d−1 in order. */
export function checkLayout(layout: FeatureLayout): FeatureLayout {
  let next = 0;
  const bad = (m: string) => new FedmarkError('GBDT_BAD_LAYOUT', `feature layout: ${m}`);
  if (layout.groups.length === 0) throw bad('no feature groups');
  for (const g of layout.groups) {
    const first = g.kind === 'categorical' ? g.offset : g.feature;
    const width = g.kind === 'categorical' ? g.slots : 1;
    if (first !== next) throw bad(`group "${g.name}" starts at feature ${first}, expected ${next}`);
    if (g.kind === 'categorical' && !(Number.isInteger(g.slots) && g.slots >= 1)) throw bad(`group "${g.name}" needs at least one slot`);
    if (g.kind === 'numeric' && !(Number.isFinite(g.lo) && Number.isFinite(g.hi) && g.lo < g.hi)) {
      throw bad(`group "${g.name}" needs a finite range lo < hi, got [${g.lo}, ${g.hi}]`);
    }
    next += width;
  }
  if (next !== layout.d || layout.featureNames.length !== layout.d) throw bad(`groups cover ${next} features, d is ${layout.d}`);
  return layout;
}

/** Bins of one group: `bins` for numeric, 2 for binary, one per slot for categorical. */
export function groupBins(g: FeatureGroup, bins: number): number {
  return g.kind === 'numeric' ? bins : g.kind === 'binary' ? 2 : g.slots;
}

/** Where each histogrammed group's bins sit in one node's histogram. */
export interface BinLayout {
  /** Group indices (layout order) that are histogrammed. */
  groups: number[];
  /** Per entry of `groups`: start and number of its bins. */
  offsets: Int32Array;
  sizes: Int32Array;
  /** Values per node (≥ the sum of sizes when the layout is padded to a fixed length). */
  total: number;
}

/** All groups, back to back. */
export function binLayout(layout: FeatureLayout, bins: number): BinLayout {
  return packGroups(
    layout,
    bins,
    layout.groups.map((_, i) => i),
  );
}

export function packGroups(layout: FeatureLayout, bins: number, groups: number[], total?: number): BinLayout {
  const offsets = new Int32Array(groups.length);
  const sizes = new Int32Array(groups.length);
  let at = 0;
  groups.forEach((gi, k) => {
    offsets[k] = at;
    sizes[k] = groupBins(layout.groups[gi], bins);
    at += sizes[k];
  });
  return { groups, offsets, sizes, total: total ?? at };
}

/** Groups that take part in the quantile round (numeric ones). */
export function numericGroups(layout: FeatureLayout): NumericGroup[] {
  return layout.groups.filter((g): g is NumericGroup => g.kind === 'numeric');
}
