/**
 * A tree as the training state holds it: heap-indexed arrays (root 0, children 2i+1 and 2i+2) of a full
 * binary tree of the job's depth, so a node's slot in a level's histogram and a leaf's slot in the leaf
 * round follow from its index alone. Plain number arrays: the state is JSON and hashes the same on every
 * machine.
 *
 * A split node sends a row right when its bin satisfies the split: numeric/binary group g, cut k → right
 * when bin > k (the saved model's x ≥ cuts[k]); categorical group g, slot v → right when the slot is v
 * (the saved model's x_v ≥ 0.5).
 */
import type { BinnedMatrix } from './edges.ts';
import type { FeatureLayout } from './layout.ts';

export const ABSENT = 0;
/** Awaiting a split decision at a histogram level. */
export const OPEN = 1;
export const SPLIT = 2;
/** A leaf whose value comes from the leaf round. */
export const PENDING = 3;
export const LEAF = 4;

export interface HeapTree {
  kind: number[];
  group: number[];
  cut: number[];
  /** Leaf weight (float32 value) of LEAF nodes, 0 elsewhere. */
  value: number[];
  /** Gradient and hessian sums the key holders learnt for the node (leaves; internal nodes once finished). */
  G: number[];
  H: number[];
  /** Loss reduction of each split, recomputed from the leaf sums when the tree is finished. */
  gain: number[];
}

export function heapSize(depth: number): number {
  return 2 ** (depth + 1) - 1;
}

export function depthOf(i: number): number {
  return 31 - Math.clz32(i + 1);
}

export function emptyTree(depth: number): HeapTree {
  const n = heapSize(depth);
  const zeros = () => new Array<number>(n).fill(0);
  return { kind: zeros(), group: zeros(), cut: zeros(), value: zeros(), G: zeros(), H: zeros(), gain: zeros() };
}

export function cloneTree(t: HeapTree): HeapTree {
  return { kind: [...t.kind], group: [...t.group], cut: [...t.cut], value: [...t.value], G: [...t.G], H: [...t.H], gain: [...t.gain] };
}

/** Slot of node i within its level (0 … 2^depth − 1). */
export function levelSlot(i: number): number {
  return i - (2 ** depthOf(i) - 1);
}

/** Slot of a leaf in the leaf round: its leftmost descendant's position in the deepest level. */
export function leafSlot(i: number, depth: number): number {
  let j = i;
  while (depthOf(j) < depth) j = 2 * j + 1;
  return levelSlot(j);
}

export function goesRight(layout: FeatureLayout, group: number, cut: number, bin: number): boolean {
  return layout.groups[group].kind === 'categorical' ? bin === cut : bin > cut;
}

/** Node where row i stops: the first node on its path that is not a split. */
export function routeRow(tree: HeapTree, layout: FeatureLayout, data: BinnedMatrix, i: number): number {
  let node = 0;
  const G = data.groups;
  while (tree.kind[node] === SPLIT) {
    const g = tree.group[node];
    node = goesRight(layout, g, tree.cut[node], data.bins[i * G + g]) ? 2 * node + 2 : 2 * node + 1;
  }
  return node;
}

export function xgbGain(GL: number, HL: number, GR: number, HR: number, lambda: number): number {
  return (GL * GL) / (HL + lambda) + (GR * GR) / (HR + lambda) - ((GL + GR) * (GL + GR)) / (HL + HR + lambda);
}

/**
 * Finishes a tree: node sums of internal nodes from their leaves (bottom-up), and every split's gain
 * recomputed from those sums. The gains feed feature importance; they and the sums stay with the key
 * holders and are never written into a released model.
 */
export function finishTree(tree: HeapTree, lambda: number): HeapTree {
  const t = cloneTree(tree);
  for (let i = t.kind.length - 1; i >= 0; i--) {
    if (t.kind[i] !== SPLIT) continue;
    const l = 2 * i + 1;
    const r = l + 1;
    t.G[i] = t.G[l] + t.G[r];
    t.H[i] = t.H[l] + t.H[r];
    const g = xgbGain(t.G[l], Math.max(t.H[l], 0), t.G[r], Math.max(t.H[r], 0), lambda);
    t.gain[i] = Number.isFinite(g) ? g : 0;
  }
  return t;
}
