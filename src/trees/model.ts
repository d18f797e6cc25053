/**
 * The released ensemble: what prediction needs and nothing more. Each tree is compact (XGBoost's node
 * numbering: breadth-first, children after parents) with split feature, float32 threshold (a row goes
 * left when x < threshold, as XGBoost) and leaf values. No cover (hessian sums), no per-node gain, no
 * internal node weights: TimberStrike (2025) rebuilt most of a client's rows from such statistics in
 * models trained by Flower, NVFlare and FedTree. Feature importance is carried as one total per feature.
 */
import { FedmarkError } from '../errors.ts';
import { SPLIT, LEAF, type HeapTree } from './heap-tree.ts';
import type { FeatureLayout } from './layout.ts';
import { logit } from './local.ts';
import { termAxes, type GbdtState, type TermState } from './state.ts';
import { termTree } from './terms.ts';

export const MODEL_FORMAT = 'fedmark-gbdt/1';

export interface CompactTree {
  /** Child ids, −1 for leaves. */
  left: number[];
  right: number[];
  /** Split feature (index into the encoded vector); 0 for leaves. */
  feature: number[];
  /** Float32 threshold of splits; 0 for leaves. */
  threshold: number[];
  /** Float32 leaf value (already × learning rate); 0 for splits. */
  value: number[];
  /** Direction of a missing (NaN) value at each split. */
  defaultLeft: boolean[];
  /** Cover (hessian sum) per node: only in models imported from XGBoost, never in models fedmark trains. */
  cover?: number[];
}

export interface GbdtModel {
  format: typeof MODEL_FORMAT;
  /** Prior probability; the margin starts at logit(baseScore). */
  baseScore: number;
  numFeature: number;
  featureNames: string[];
  trees: CompactTree[];
  /** Total gain per feature over all splits (from the key holders' sums; an aggregate, not per node). */
  importance: number[] | null;
}

/** The saved form of one training tree: breadth-first over the nodes that exist. */
export function compactTree(tree: HeapTree, layout: FeatureLayout, cuts: number[][]): CompactTree {
  const ids = new Map<number, number>();
  const order: number[] = [];
  for (let i = 0; i < tree.kind.length; i++) {
    if (tree.kind[i] === SPLIT || tree.kind[i] === LEAF) {
      ids.set(i, order.length);
      order.push(i);
    }
  }
  const out: CompactTree = { left: [], right: [], feature: [], threshold: [], value: [], defaultLeft: [] };
  for (const i of order) {
    if (tree.kind[i] === SPLIT) {
      const g = layout.groups[tree.group[i]];
      const c = tree.cut[i];
      out.left.push(ids.get(2 * i + 1)!);
      out.right.push(ids.get(2 * i + 2)!);
      out.feature.push(g.kind === 'categorical' ? g.offset + c : g.feature);
      out.threshold.push(g.kind === 'categorical' ? 0.5 : cuts[tree.group[i]][c]);
      out.value.push(0);
    } else {
      out.left.push(-1);
      out.right.push(-1);
      out.feature.push(0);
      out.threshold.push(0);
      out.value.push(tree.value[i]);
    }
    out.defaultLeft.push(true);
  }
  return out;
}

/**
 * A term's gain shared out over the encoded features it splits on: evenly over its columns, and within
 * a categorical column over its slots in proportion to how far each slot's cells move the margin
 * (hessian-weighted squared values).
 */
function addTermImportance(state: GbdtState, t: TermState, imp: number[]): void {
  const axes = termAxes(state, t);
  const strides = axes.map((_, k) => axes.slice(k + 1).reduce((a, x) => a * x.size, 1));
  axes.forEach((ax, k) => {
    const g = state.layout.groups[ax.group];
    const share = t.gain / axes.length;
    if (g.kind !== 'categorical') {
      imp[g.feature] += share;
      return;
    }
    const mass = new Float64Array(ax.size);
    const W = t.H.reduce((a, h) => a + h, 0);
    const mean = W > 0 ? t.values.reduce((a, v, c) => a + t.H[c] * v, 0) / W : 0;
    t.values.forEach((v, c) => (mass[Math.floor(c / strides[k]) % ax.size] += t.H[c] * (v - mean) ** 2));
    const total = mass.reduce((a, b) => a + b, 0);
    for (let v = 0; v < ax.size; v++) imp[g.offset + v] += total > 0 ? (share * mass[v]) / total : share / ax.size;
  });
}

/** A tree of one leaf: cyclic mode's intercept (base_score holds a probability, not an arbitrary margin). */
function constantTree(value: number): CompactTree {
  return { left: [-1], right: [-1], feature: [0], threshold: [0], value: [Math.fround(value)], defaultLeft: [true] };
}

/** Total gain per encoded feature over every split of the finished trees (and every term of cyclic mode). */
export function featureImportance(state: GbdtState): number[] {
  const imp = new Array<number>(state.layout.d).fill(0);
  for (const t of state.terms) addTermImportance(state, t, imp);
  for (const t of state.trees) {
    for (let i = 0; i < t.kind.length; i++) {
      if (t.kind[i] !== SPLIT) continue;
      const g = state.layout.groups[t.group[i]];
      imp[g.kind === 'categorical' ? g.offset + t.cut[i] : g.feature] += t.gain[i];
    }
  }
  return imp;
}

/** The releasable model of the state's finished trees. */
export function modelFromState(state: GbdtState): GbdtModel {
  if (!state.edges) throw new FedmarkError('GBDT_WRONG_STEP', 'no trees yet: the bin edges are not known');
  return {
    format: MODEL_FORMAT,
    baseScore: state.params.baseScore,
    numFeature: state.layout.d,
    featureNames: [...state.layout.featureNames],
    trees: [
      ...(state.terms.length ? [constantTree(state.intercept)] : []),
      ...state.terms.map((t) => termTree(state.layout, state.edges!, termAxes(state, t), t.values)),
      ...state.trees.map((t) => compactTree(t, state.layout, state.edges!.cuts)),
    ],
    importance: featureImportance(state),
  };
}

/** The child of split `node` a row goes to: left when x < threshold (as XGBoost), NaN by default_left. */
export function childOf(tree: CompactTree, node: number, x: ArrayLike<number>, offset: number): number {
  const v = x[offset + tree.feature[node]];
  const left = Number.isNaN(v) ? tree.defaultLeft[node] : v < tree.threshold[node];
  return left ? tree.left[node] : tree.right[node];
}

/** Leaf a row reaches in one tree (x holds the row's encoded features from `offset`). */
export function leafOf(tree: CompactTree, x: ArrayLike<number>, offset = 0): number {
  let node = 0;
  while (tree.left[node] >= 0) node = childOf(tree, node, x, offset);
  return node;
}

function checkRows(model: GbdtModel, X: ArrayLike<number>, n: number): void {
  if (!Number.isInteger(n) || n < 0 || X.length < n * model.numFeature) {
    throw new FedmarkError('GBDT_BAD_DATA', `expected ${n} rows × ${model.numFeature} features, got ${X.length} values`);
  }
}

/** The margin every row starts from: logit of the float32 base score, as XGBoost stores it. */
export function baseMargin(model: Pick<GbdtModel, 'baseScore'>): number {
  return logit(Math.fround(model.baseScore));
}

/** Margins (logits) of n rows, row-major X with the model's feature count. */
export function predictMargin(model: GbdtModel, X: ArrayLike<number>, n: number): Float64Array {
  checkRows(model, X, n);
  const d = model.numFeature;
  const out = new Float64Array(n).fill(baseMargin(model));
  for (const tree of model.trees) {
    for (let i = 0; i < n; i++) out[i] += tree.value[leafOf(tree, X, i * d)];
  }
  return out;
}

export function predictProba(model: GbdtModel, X: ArrayLike<number>, n: number): Float64Array {
  const m = predictMargin(model, X, n);
  for (let i = 0; i < n; i++) m[i] = 1 / (1 + Math.exp(-m[i]));
  return m;
}
