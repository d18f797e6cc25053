/**
 * The label holder's per-node histograms over the joint view, in fixed-point integers: its own
 * columns summed in the clear, the feature holders' columns decrypted (root and left children) or
 * derived (right = parent − left, exactly). Integers make the derivation exact and let the label holder
 * check every returned column against node totals it computed itself.
 */
import { FedmarkError } from '../../errors.ts';
import type { BinnedMatrix } from '../../trees/edges.ts';
import type { BinLayout } from '../../trees/layout.ts';
import type { BinSums } from '../he/label-holder.ts';
import type { JointView } from './layout.ts';

/** One node's joint histogram: G and H per bin of every column, in fixed-point units. */
export interface NodeHist {
  G: Float64Array;
  H: Float64Array;
  /** Exact totals of the node's rows. */
  totalG: number;
  totalH: number;
}

export function emptyHist(bins: BinLayout): NodeHist {
  return { G: new Float64Array(bins.total), H: new Float64Array(bins.total), totalG: 0, totalH: 0 };
}

/** Sums the label holder's own columns for every open node (rows → node via `nodeOf`). */
export function ownHistograms(
  nodes: Map<number, NodeHist>,
  nodeOf: Int32Array,
  train: Int32Array,
  binned: BinnedMatrix,
  ownGroups: number,
  bins: BinLayout,
  gq: Float64Array,
  hq: Float64Array,
): void {
  const G = binned.groups;
  for (let i = 0; i < nodeOf.length; i++) {
    const h = nodes.get(nodeOf[i]);
    if (!h) continue;
    const row = train[i] * G;
    h.totalG += gq[i];
    h.totalH += hq[i];
    for (let k = 0; k < ownGroups; k++) {
      const at = bins.offsets[k] + binned.bins[row + k];
      h.G[at] += gq[i];
      h.H[at] += hq[i];
    }
  }
}

/**
 * Places one feature holder's decrypted sums (slot-major, column-minor) into the nodes' histograms,
 * refusing any column whose bins do not add up to the node's totals: a tampered or made-up result.
 */
export function placeForeign(node: NodeHist, sums: BinSums, view: JointView, bins: BinLayout, party: number, column: number, who: string): void {
  const k = view.offsets[party] + column;
  const at = bins.offsets[k];
  const size = bins.sizes[k];
  if (sums.grad.length !== size)
    throw new FedmarkError('VERTICAL_SUMS_INCONSISTENT', `${who}, column ${column}: ${sums.grad.length} bins returned, ${size} expected`);
  let g = 0;
  let h = 0;
  for (let b = 0; b < size; b++) {
    g += sums.grad[b];
    h += sums.hess[b];
    node.G[at + b] = sums.grad[b];
    node.H[at + b] = sums.hess[b];
  }
  if (g !== node.totalG || h !== node.totalH) {
    throw new FedmarkError(
      'VERTICAL_SUMS_INCONSISTENT',
      `${who}, column ${column}: the returned bins sum to (${g}, ${h}), the node's rows to (${node.totalG}, ${node.totalH}) — the sums were altered or not computed over the node's rows`,
    );
  }
  for (let b = 0; b < size; b++) {
    if (sums.hess[b] < 0) throw new FedmarkError('VERTICAL_SUMS_INCONSISTENT', `${who}, column ${column}: bin ${b} has a negative hessian sum`);
  }
}

/** right = parent − left for every foreign column (exact in integers). */
export function subtractForeign(right: NodeHist, parent: NodeHist, left: NodeHist, view: JointView, bins: BinLayout): void {
  for (let k = view.offsets[1] ?? bins.groups.length; k < bins.groups.length; k++) {
    const at = bins.offsets[k];
    for (let b = 0; b < bins.sizes[k]; b++) {
      right.G[at + b] = parent.G[at + b] - left.G[at + b];
      right.H[at + b] = parent.H[at + b] - left.H[at + b];
    }
  }
}

/** Integer (G, H) of the rows a split sends left, from the node's histogram. */
export function leftSums(node: NodeHist, bins: BinLayout, group: number, cut: number, categorical: boolean): { G: number; H: number } {
  const at = bins.offsets[group];
  const size = bins.sizes[group];
  if (categorical) return { G: node.totalG - node.G[at + cut], H: node.totalH - node.H[at + cut] };
  let G = 0;
  let H = 0;
  for (let b = 0; b <= cut && b < size; b++) {
    G += node.G[at + b];
    H += node.H[at + b];
  }
  return { G, H };
}
