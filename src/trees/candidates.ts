/**
 * Random splits (Maddock et al., "Federated Boosted Decision Trees with Differential Privacy", CCS 2022:
 * totally random trees), drawn from the job seed and the public state only, so every key holder and every
 * partner draws the same ones and no row is looked at.
 */
import { createRng, deriveSeed, type Rng } from '../util/rng.ts';
import type { BinEdges } from './edges.ts';
import type { FeatureLayout } from './layout.ts';

/** Distinct cut indices of a numeric/binary group, or the slots of a categorical one (≥ 2 slots). */
export function groupCuts(layout: FeatureLayout, edges: BinEdges, gi: number): number[] {
  const g = layout.groups[gi];
  if (g.kind === 'categorical') return g.slots >= 2 ? Array.from({ length: g.slots }, (_, v) => v) : [];
  const cuts = edges.cuts[gi];
  const out: number[] = [];
  for (let k = 0; k < cuts.length; k++) if (k === 0 || cuts[k] !== cuts[k - 1]) out.push(k);
  return out;
}

export interface CandidatePool {
  usable: { gi: number; cuts: number[] }[];
}

export function candidatePool(layout: FeatureLayout, edges: BinEdges): CandidatePool {
  return {
    usable: layout.groups.map((_, gi) => ({ gi, cuts: groupCuts(layout, edges, gi) })).filter((x) => x.cuts.length > 0),
  };
}

/** A group uniformly among those with a candidate, then one of its candidates uniformly. */
export function drawSplit(pool: CandidatePool, rng: Rng): { group: number; cut: number } | null {
  if (pool.usable.length === 0) return null;
  const pick = pool.usable[rng.int(pool.usable.length)];
  return { group: pick.gi, cut: pick.cuts[rng.int(pick.cuts.length)] };
}

export function randomSplit(pool: CandidatePool, seed: number, tree: number, node: number): { group: number; cut: number } | null {
  return drawSplit(pool, createRng(deriveSeed(seed, 'gbdt-random-split', tree, node)));
}
