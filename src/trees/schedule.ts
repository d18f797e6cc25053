/**
 * The job's steps (one federated round each) and their parts, from the parameters and the feature
 * layout alone — so the coordinator can check every upload's length and every partner can show the
 * release plan before a row is read.
 *
 *   [quantiles]                        once, when binEdges = 'dp-quantiles'
 *   tree modes, per tree:
 *             level 0 … level h−1      histogram levels (h = depth, 0 or the hybrid's count)
 *             [leaves]                 when the tree has random levels or the job is private
 *   cyclic mode:
 *             main (epoch, column)     every column once per epoch (main-effect terms)
 *             [screen]                 scores the candidate pairs (when interactions > 0)
 *             pair (epoch, slot)       every kept interaction term once per epoch
 */
import { FedmarkError } from '../errors.ts';
import { quantilePartLength } from './edges.ts';
import { createRng, deriveSeed, permutation } from '../util/rng.ts';
import { binLayout, groupBins, packGroups, type BinLayout, type FeatureLayout } from './layout.ts';
import { hasLeafRound, usesSubtraction, type GbdtParams } from './params.ts';
import { maxPairCells, pairCounts, termAxis } from './terms.ts';

export type GbdtStep =
  | { kind: 'quantiles'; step: number }
  | { kind: 'level'; step: number; tree: number; level: number }
  | { kind: 'leaves'; step: number; tree: number }
  | { kind: 'main'; step: number; epoch: number; group: number }
  | { kind: 'screen'; step: number }
  | { kind: 'pair'; step: number; epoch: number; slot: number }
  | { kind: 'done'; step: number };

export function stepsPerTree(params: GbdtParams): number {
  return params.histogramLevels + (hasLeafRound(params) ? 1 : 0);
}

/** Cyclic mode: main-effect rounds, screening rounds (0 or 1) and pair rounds. */
export function cyclicSteps(params: GbdtParams, layout: FeatureLayout): { main: number; screen: number; pair: number } {
  const c = params.cyclic;
  if (!c) return { main: 0, screen: 0, pair: 0 };
  const { kept } = pairCounts(c, layout.groups.length);
  return { main: c.epochs * layout.groups.length, screen: kept > 0 ? 1 : 0, pair: kept * c.interactionEpochs };
}

function quantileSteps(params: GbdtParams): number {
  return params.binEdges === 'dp-quantiles' ? 1 : 0;
}

export function totalSteps(params: GbdtParams, layout: FeatureLayout): number {
  const c = cyclicSteps(params, layout);
  return quantileSteps(params) + c.main + c.screen + c.pair + params.trees * stepsPerTree(params);
}

export function stepAt(params: GbdtParams, layout: FeatureLayout, step: number): GbdtStep {
  if (!Number.isInteger(step) || step < 0) throw new FedmarkError('GBDT_BAD_STEP', `step must be a non-negative integer, got ${step}`);
  const q = quantileSteps(params);
  if (step >= totalSteps(params, layout)) return { kind: 'done', step };
  if (step < q) return { kind: 'quantiles', step };
  if (params.cyclic) {
    const c = cyclicSteps(params, layout);
    const G = layout.groups.length;
    let s = step - q;
    if (s < c.main) return { kind: 'main', step, epoch: Math.floor(s / G), group: s % G };
    s -= c.main;
    if (s < c.screen) return { kind: 'screen', step };
    s -= c.screen;
    const kept = c.pair / params.cyclic.interactionEpochs;
    return { kind: 'pair', step, epoch: Math.floor(s / kept), slot: s % kept };
  }
  const per = stepsPerTree(params);
  const tree = Math.floor((step - q) / per);
  const within = (step - q) % per;
  return within < params.histogramLevels ? { kind: 'level', step, tree, level: within } : { kind: 'leaves', step, tree };
}

/** Length of each of a main-effect round's parts: the column's bins. */
export function mainPartLength(params: GbdtParams, layout: FeatureLayout, group: number): number {
  return termAxis(layout, params, group, null).size;
}

/** Cells of one candidate pair in the screening round (padded to the largest pair). */
export function screenSlotLength(params: GbdtParams, layout: FeatureLayout): number {
  return maxPairCells(layout, params, params.cyclic!.screenBins);
}

/** Length of each of the screening round's parts: every candidate pair's cells. */
export function screenPartLength(params: GbdtParams, layout: FeatureLayout): number {
  return pairCounts(params.cyclic!, layout.groups.length).candidates * screenSlotLength(params, layout);
}

/** Length of each of a pair round's parts: the cells of the largest possible interaction term. */
export function pairPartLength(params: GbdtParams, layout: FeatureLayout): number {
  return maxPairCells(layout, params, params.cyclic!.interactionBins);
}

/** Node slots a histogram level queries: every node of the level, or only left children with subtraction. */
export function levelQuerySlots(params: GbdtParams, level: number): number {
  if (level === 0) return 1;
  return usesSubtraction(params) ? 2 ** (level - 1) : 2 ** level;
}

/** Columns a tree's histogram levels cover (columnsPerTree, at most all of them). */
export function histogramColumns(params: GbdtParams, layout: FeatureLayout): number {
  return Math.min(params.columnsPerTree ?? layout.groups.length, layout.groups.length);
}

/**
 * Values per node in a tree's histograms: all bins, or with columnsPerTree the bins of the widest
 * possible choice of columns, so the length does not depend on which columns a tree drew.
 */
export function nodeStride(params: GbdtParams, layout: FeatureLayout): number {
  const k = histogramColumns(params, layout);
  const sizes = layout.groups.map((g) => groupBins(g, params.bins)).sort((a, b) => b - a);
  return sizes.slice(0, k).reduce((a, b) => a + b, 0);
}

/** The columns tree `tree` histograms (drawn from the job seed) and where their bins sit. */
export function treeBinLayout(params: GbdtParams, layout: FeatureLayout, tree: number): BinLayout {
  const G = layout.groups.length;
  const k = histogramColumns(params, layout);
  if (k === G) return binLayout(layout, params.bins);
  const chosen = Array.from(permutation(G, createRng(deriveSeed(params.seed, 'gbdt-columns', tree))).subarray(0, k)).sort((a, b) => a - b);
  return packGroups(layout, params.bins, chosen, nodeStride(params, layout));
}

/** Length of each of a level's two parts (`grad`, `hess`): query slots × values per node. */
export function levelPartLength(params: GbdtParams, layout: FeatureLayout, level: number): number {
  if (!(Number.isInteger(level) && level >= 0 && level < params.histogramLevels)) {
    throw new FedmarkError('GBDT_BAD_STEP', `level ${level} is not a histogram level (0 … ${params.histogramLevels - 1})`);
  }
  return levelQuerySlots(params, level) * nodeStride(params, layout);
}

/** Length of each of the leaf round's two parts: one slot per node of the deepest level. */
export function leafPartLength(params: GbdtParams): number {
  return 2 ** params.depth;
}

export interface GbdtPartSpec {
  name: 'grad' | 'hess' | 'counts';
  length: number;
  /** Largest |contribution| of one row to one value of the part (before noise): the HE encoder's per-row bound. */
  perRowBound: number;
}

/** Per-row bounds of the clipped statistics: g = p − y ∈ [−1, 1], h = p(1 − p) ∈ [0, ¼]. */
export const GRAD_BOUND = 1;
export const HESS_BOUND = 0.25;

/** The parts of a step (lengths from the parameters and the layout alone). */
export function stepParts(params: GbdtParams, layout: FeatureLayout, step: GbdtStep): GbdtPartSpec[] {
  switch (step.kind) {
    case 'quantiles':
      return [{ name: 'counts', length: quantilePartLength(params, layout), perRowBound: 1 }];
    case 'level':
      return pair(levelPartLength(params, layout, step.level));
    case 'leaves':
      return pair(leafPartLength(params));
    case 'main':
      return pair(mainPartLength(params, layout, step.group));
    case 'screen':
      return pair(screenPartLength(params, layout));
    case 'pair':
      return pair(pairPartLength(params, layout));
    case 'done':
      return [];
  }
}

function pair(length: number): GbdtPartSpec[] {
  return [
    { name: 'grad', length, perRowBound: GRAD_BOUND },
    { name: 'hess', length, perRowBound: HESS_BOUND },
  ];
}

/** The parts of every step of a cyclic job, summed: what a partner uploads over the whole job (values). */
export function valuesPerJob(params: GbdtParams, layout: FeatureLayout): number {
  let v = 0;
  for (let s = 0; s < totalSteps(params, layout); s++) for (const p of stepParts(params, layout, stepAt(params, layout, s))) v += p.length;
  return v;
}

/** Values a partner uploads per tree (both parts, all steps of one tree), ×8 for float64 bytes. */
export function valuesPerTree(params: GbdtParams, layout: FeatureLayout): number {
  let v = 0;
  for (let l = 0; l < params.histogramLevels; l++) v += 2 * levelPartLength(params, layout, l);
  if (hasLeafRound(params)) v += 2 * leafPartLength(params);
  return v;
}
