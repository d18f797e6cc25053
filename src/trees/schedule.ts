/**
 * The job's steps (one federated round each) and their parts, from the parameters and the feature
 * layout alone — so the coordinator can check every upload's length and every partner can show the
 * release plan before a row is read.
 *
 *   [quantiles]                        once, when binEdges = 'dp-quantiles'
 *   per tree: level 0 … level h−1      histogram levels (h = depth, 0 or the hybrid's count)
 *             [leaves]                 when the tree has random levels or the job is private
 */
import { FedmarkError } from '../errors.ts';
import { quantilePartLength } from './edges.ts';
import { createRng, deriveSeed, permutation } from '../util/rng.ts';
import { binLayout, groupBins, packGroups, type BinLayout, type FeatureLayout } from './layout.ts';
import { hasLeafRound, usesSubtraction, type GbdtParams } from './params.ts';

export type GbdtStep =
  | { kind: 'quantiles'; step: number }
  | { kind: 'level'; step: number; tree: number; level: number }
  | { kind: 'leaves'; step: number; tree: number }
  | { kind: 'done'; step: number };

export function stepsPerTree(params: GbdtParams): number {
  return params.histogramLevels + (hasLeafRound(params) ? 1 : 0);
}

export function totalSteps(params: GbdtParams): number {
  return (params.binEdges === 'dp-quantiles' ? 1 : 0) + params.trees * stepsPerTree(params);
}

export function stepAt(params: GbdtParams, step: number): GbdtStep {
  if (!Number.isInteger(step) || step < 0) throw new FedmarkError('GBDT_BAD_STEP', `step must be a non-negative integer, got ${step}`);
  const q = params.binEdges === 'dp-quantiles' ? 1 : 0;
  if (step >= totalSteps(params)) return { kind: 'done', step };
  if (step < q) return { kind: 'quantiles', step };
  const per = stepsPerTree(params);
  const tree = Math.floor((step - q) / per);
  const within = (step - q) % per;
  return within < params.histogramLevels ? { kind: 'level', step, tree, level: within } : { kind: 'leaves', step, tree };
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
    case 'level': {
      const length = levelPartLength(params, layout, step.level);
      return [
        { name: 'grad', length, perRowBound: GRAD_BOUND },
        { name: 'hess', length, perRowBound: HESS_BOUND },
      ];
    }
    case 'leaves': {
      const length = leafPartLength(params);
      return [
        { name: 'grad', length, perRowBound: GRAD_BOUND },
        { name: 'hess', length, perRowBound: HESS_BOUND },
      ];
    }
    case 'done':
      return [];
  }
}

/** Values a partner uploads per tree (both parts, all steps of one tree), ×8 for float64 bytes. */
export function valuesPerTree(params: GbdtParams, layout: FeatureLayout): number {
  let v = 0;
  for (let l = 0; l < params.histogramLevels; l++) v += 2 * levelPartLength(params, layout, l);
  if (hasLeafRound(params)) v += 2 * leafPartLength(params);
  return v;
}
