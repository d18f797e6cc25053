/**
 * The public training state of a GBDT job and the server steps every key holder runs on the decrypted
 * sums. Each function is pure — (state, sums) → state — so the simulation, the pooled reference trainer
 * and the real nodes run the same code, and the state hash is the model-hash agreement.
 *
 * The state holds what the key holders are entitled to: the parameters, the layout, the bin edges, the
 * trees (with the node sums the key holders decrypted, needed for subtraction and feature importance),
 * and, between levels, the summed histograms of the previous level. None of it is a partner's own data.
 */
import { FedmarkError } from '../errors.ts';
import { sha256Canonical } from '../privacy/ledger/canonical.ts';
import { candidatePool, randomSplit } from './candidates.ts';
import { checkEdges, edgesFromCounts, edgesHash, quantilePartLength, schemaEdges, type BinEdges } from './edges.ts';
import {
  LEAF,
  OPEN,
  PENDING,
  SPLIT,
  depthOf,
  emptyTree,
  finishTree,
  leafSlot,
  levelSlot,
  cloneTree,
  type HeapTree,
} from './heap-tree.ts';
import { checkLayout, type FeatureLayout } from './layout.ts';
import { hasLeafRound, usesSubtraction, type GbdtParams } from './params.ts';
import { leafPartLength, levelPartLength, stepAt, treeBinLayout, type GbdtStep } from './schedule.ts';
import { bestSplit, leafWeight } from './split.ts';
import { calibrateGbdtNoise, stepRelease, type GbdtNoisePlan } from './dp.ts';

export const STATE_FORMAT = 'fedmark-gbdt-state/1';

export interface GbdtState {
  format: typeof STATE_FORMAT;
  params: GbdtParams;
  layout: FeatureLayout;
  /** Index of the next step (round) to run. */
  step: number;
  edges: BinEdges | null;
  edgesHash: string | null;
  trees: HeapTree[];
  /** The tree being grown (null before the edges are known and after the last tree). */
  tree: HeapTree | null;
  /** Summed full histograms of the previous level's node slots, when levels use sibling subtraction. */
  parent: { grad: number[]; hess: number[] } | null;
  /** The job's noise (a function of params and layout, kept so every key holder demonstrably uses the same). */
  noise: GbdtNoisePlan;
}

export type GbdtSums = Record<string, Float64Array>;

/** The state before any round: public, the same at every key holder. */
export function initialState(params: GbdtParams, layout: FeatureLayout): GbdtState {
  checkLayout(layout);
  const edges = params.binEdges === 'schema' ? schemaEdges(layout, params) : null;
  const s: GbdtState = {
    format: STATE_FORMAT,
    params,
    layout,
    step: 0,
    edges,
    edgesHash: edges ? edgesHash(edges) : null,
    trees: [],
    tree: null,
    parent: null,
    noise: calibrateGbdtNoise(params, layout),
  };
  return startTreeIfDue(s);
}

/** Hash of the state (RFC 8785 canonical JSON, sha256): every key holder must agree on it after each round. */
export function stateHash(state: GbdtState): string {
  return sha256Canonical(state);
}

export function currentStep(state: GbdtState): GbdtStep {
  return stepAt(state.params, state.step);
}

function expectStep(state: GbdtState, kind: GbdtStep['kind']): GbdtStep {
  const step = currentStep(state);
  if (step.kind !== kind) {
    throw new FedmarkError('GBDT_WRONG_STEP', `step ${state.step} is a "${step.kind}" step, not "${kind}"`);
  }
  return step;
}

function part(sums: GbdtSums, name: string, length: number): Float64Array {
  const v = sums[name];
  if (!(v instanceof Float64Array)) throw new FedmarkError('GBDT_BAD_PART', `missing part "${name}"`);
  if (v.length !== length) throw new FedmarkError('GBDT_BAD_PART', `part "${name}" has ${v.length} values, expected ${length}`);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new FedmarkError('GBDT_BAD_PART', `part "${name}" value ${i} is not finite`);
  }
  return v;
}

function checkContributors(k: number): number {
  if (!(Number.isInteger(k) && k >= 1)) throw new FedmarkError('GBDT_BAD_PART', `contributors must be a positive integer, got ${k}`);
  return k;
}

/** Random splits (./candidates.ts) for every open node at or below `fromDepth`; nodes at full depth become pending leaves. */
function growRandom(state: GbdtState, tree: HeapTree, treeIndex: number, fromDepth: number): void {
  const { depth, seed } = state.params;
  const pool = candidatePool(state.layout, state.edges!);
  for (let i = 0; i < tree.kind.length; i++) {
    if (tree.kind[i] !== OPEN || depthOf(i) < fromDepth) continue;
    const split = depthOf(i) < depth ? randomSplit(pool, seed, treeIndex, i) : null;
    if (!split) {
      tree.kind[i] = PENDING;
      continue;
    }
    tree.kind[i] = SPLIT;
    tree.group[i] = split.group;
    tree.cut[i] = split.cut;
    tree.kind[2 * i + 1] = OPEN;
    tree.kind[2 * i + 2] = OPEN;
  }
}

/** When the state's step is the first of a tree (and the edges are known), plants that tree's root. */
function startTreeIfDue(s: GbdtState): GbdtState {
  const step = currentStep(s);
  if (step.kind === 'done' || step.kind === 'quantiles' || s.tree !== null) return s;
  const t = emptyTree(s.params.depth);
  t.kind[0] = OPEN;
  if (s.params.histogramLevels === 0) growRandom(s, t, step.tree, 0);
  return { ...s, tree: t, parent: null };
}

/** Moves to the next step; a tree finished at this step joins the ensemble and the next one is planted. */
function advance(s: GbdtState, tree: HeapTree, finished: boolean): GbdtState {
  const next: GbdtState = finished
    ? { ...s, step: s.step + 1, trees: [...s.trees, finishTree(tree, s.params.lambda)], tree: null, parent: null }
    : { ...s, step: s.step + 1, tree };
  return startTreeIfDue(next);
}

/** Server step of the quantile round: the summed counts → the shared bin edges (and their hash). */
export function applyQuantiles(state: GbdtState, sums: GbdtSums): GbdtState {
  expectStep(state, 'quantiles');
  const counts = part(sums, 'counts', quantilePartLength(state.params, state.layout));
  const edges = checkEdges(state.layout, state.params, edgesFromCounts(state.params, state.layout, counts));
  return startTreeIfDue({ ...state, step: state.step + 1, edges, edgesHash: edgesHash(edges) });
}

/** Full histograms of the level's open node slots: the released ones, or parent − left with subtraction. */
function fullHistograms(state: GbdtState, level: number, grad: Float64Array, hess: Float64Array, B: number, fullG: Float64Array, fullH: Float64Array): void {
  const subtract = usesSubtraction(state.params);
  const tree = state.tree!;
  const first = 2 ** level - 1;
  for (let i = first; i < first + 2 ** level; i++) {
    if (tree.kind[i] !== OPEN) continue;
    const slot = i - first;
    if (!subtract || level === 0) {
      const q = subtract ? 0 : slot;
      fullG.set(grad.subarray(q * B, (q + 1) * B), slot * B);
      fullH.set(hess.subarray(q * B, (q + 1) * B), slot * B);
      continue;
    }
    const p = (i - 1) >> 1;
    const ps = levelSlot(p);
    const isLeft = i === 2 * p + 1;
    for (let b = 0; b < B; b++) {
      const lg = grad[ps * B + b];
      const lh = hess[ps * B + b];
      fullG[slot * B + b] = isLeft ? lg : state.parent!.grad[ps * B + b] - lg;
      fullH[slot * B + b] = isLeft ? lh : state.parent!.hess[ps * B + b] - lh;
    }
  }
}

/**
 * Server step of a histogram level: every open node of the level takes the best split of its summed
 * histograms, or becomes a leaf. With subtraction the right child's histogram is parent − left.
 */
export function applyLevel(state: GbdtState, sums: GbdtSums, contributors = 1): GbdtState {
  const step = expectStep(state, 'level');
  if (step.kind !== 'level') throw new Error('unreachable');
  const { params, layout } = state;
  const { level } = step;
  const len = levelPartLength(params, layout, level);
  const grad = part(sums, 'grad', len);
  const hess = part(sums, 'hess', len);
  const bins = treeBinLayout(params, layout, step.tree);
  const B = bins.total;
  const subtract = usesSubtraction(params);
  const tree = cloneTree(state.tree!);
  const first = 2 ** level - 1;
  const width = 2 ** level;
  const release = stepRelease(params, layout, state.noise, state.step);
  const k = checkContributors(contributors);
  const gradVar = k * (release?.parts[0].std ?? 0) ** 2;
  const hessVar = k * (release?.parts[1].std ?? 0) ** 2;
  const fullG = new Float64Array(width * B);
  const fullH = new Float64Array(width * B);
  fullHistograms(state, level, grad, hess, B, fullG, fullH);
  const leafRound = hasLeafRound(params);
  const lastLevel = level + 1 === params.depth;
  const settle = (i: number, G: number, H: number) => {
    tree.G[i] = G;
    tree.H[i] = H;
    if (leafRound) tree.kind[i] = PENDING;
    else {
      tree.kind[i] = LEAF;
      tree.value[i] = leafWeight(G, H, params);
    }
  };
  for (let i = first; i < first + width; i++) {
    if (tree.kind[i] !== OPEN) continue;
    const base = (i - first) * B;
    const choice = bestSplit(layout, bins, state.edges!, params, fullG, fullH, base, gradVar, hessVar);
    if (choice === null) {
      // The node's totals from its first histogrammed column (every column's bins hold the same rows).
      let G = 0;
      let H = 0;
      for (let b = 0; b < bins.sizes[0]; b++) {
        G += fullG[base + b];
        H += fullH[base + b];
      }
      settle(i, G, H);
      continue;
    }
    tree.kind[i] = SPLIT;
    tree.group[i] = choice.group;
    tree.cut[i] = choice.cut;
    tree.gain[i] = choice.gain;
    const l = 2 * i + 1;
    if (lastLevel) {
      settle(l, choice.GL, choice.HL);
      settle(l + 1, choice.GR, choice.HR);
    } else {
      tree.kind[l] = OPEN;
      tree.kind[l + 1] = OPEN;
    }
  }
  if (level + 1 === params.histogramLevels && params.histogramLevels < params.depth) growRandom(state, tree, step.tree, level + 1);
  const finished = !leafRound && level + 1 === params.histogramLevels;
  const next = advance(state, tree, finished);
  // The next level subtracts from these full histograms.
  if (!subtract || level + 1 >= params.histogramLevels) return next;
  return { ...next, parent: { grad: Array.from(fullG), hess: Array.from(fullH) } };
}

/** Server step of the leaf round: every pending leaf's weight from its summed (noisy) G and H. */
export function applyLeaves(state: GbdtState, sums: GbdtSums): GbdtState {
  expectStep(state, 'leaves');
  const { params } = state;
  const len = leafPartLength(params);
  const grad = part(sums, 'grad', len);
  const hess = part(sums, 'hess', len);
  const tree = cloneTree(state.tree!);
  for (let i = 0; i < tree.kind.length; i++) {
    if (tree.kind[i] !== PENDING) continue;
    const s = leafSlot(i, params.depth);
    const G = grad[s];
    const H = hess[s];
    tree.G[i] = G;
    tree.H[i] = H;
    tree.kind[i] = LEAF;
    // A leaf with less released hessian than a split would need carries no weight: under DP its sums are mostly noise.
    tree.value[i] = H >= params.minChildWeight ? leafWeight(G, H, params) : 0;
  }
  return advance(state, tree, true);
}

/**
 * Dispatches a round's summed parts to the server step of the state's current step. `contributors` is
 * the number of partners whose uploads were summed (public in the round), which fixes the noise variance
 * of the sums.
 */
export function applyStep(state: GbdtState, sums: GbdtSums, contributors = 1): GbdtState {
  const kind = currentStep(state).kind;
  if (kind === 'quantiles') return applyQuantiles(state, sums);
  if (kind === 'level') return applyLevel(state, sums, contributors);
  if (kind === 'leaves') return applyLeaves(state, sums);
  throw new FedmarkError('GBDT_WRONG_STEP', `the job is complete after ${state.step} steps`);
}

export function isComplete(state: GbdtState): boolean {
  return currentStep(state).kind === 'done';
}
