/**
 * The fixed message schedule of a vertical SecureBoost job, from its parameters alone: every relay
 * round, who sends to whom, and what the label holder releases in it. The coordinator sizes and checks
 * the job with it, every party knows the whole plan (and its ε) before a row is read.
 *
 * Per tree t and level ℓ (0 … depth−1), four rounds:
 *   hist-req    label holder → each feature holder: node membership of the level's rows, which nodes to
 *               sum (the root and left children: right = parent − left), and at ℓ = 0 the tree's
 *               encrypted gradients (and, in the first tree, the public key)
 *   hist-resp   feature holder → label holder: masked, flooded per-bin sums per (node, column)
 *   split-req   label holder → each feature holder: the splits it won (node, opaque column id, bin)
 *   split-resp  feature holder → label holder: the left-instance set of every split it won
 * then, after the last tree:
 *   score-req   label holder → each feature holder: the hold-out rows to score
 *   score-resp  feature holder → label holder: for each of its split nodes, which of those rows go left
 *
 * Label DP releases (./dp.ts), each charged before the round's first byte leaves the label holder:
 * the noisy histograms of level ℓ at split-req (t, ℓ); the noisy leaves of tree t at hist-req (t+1, 0),
 * or at score-req for the last tree.
 */
import { FedmarkError } from '../../errors.ts';
import type { SecureBoostParams } from './params.ts';

export const STEP_KINDS = ['hist-req', 'hist-resp', 'split-req', 'split-resp', 'score-req', 'score-resp'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export interface Step {
  round: number;
  kind: StepKind;
  tree: number | null;
  level: number | null;
  /** The label holder sends (to every feature holder), or every feature holder sends to it. */
  sender: 'label' | 'features';
  /** The label DP release charged in this round, if any. */
  release: 'histogram' | 'leaf' | null;
}

type Shape = Pick<SecureBoostParams, 'trees' | 'depth' | 'labelDp'>;

export function totalRounds(p: Shape): number {
  return 4 * p.trees * p.depth + 2;
}

export function stepAt(p: Shape, round: number): Step {
  const total = totalRounds(p);
  if (!(Number.isInteger(round) && round >= 1 && round <= total)) throw new FedmarkError('VERTICAL_BAD_ROUND', `round ${round} is outside 1..${total}`);
  const dp = p.labelDp !== null;
  const k = round - 1;
  if (k >= 4 * p.trees * p.depth) {
    const kind = k === total - 2 ? 'score-req' : 'score-resp';
    return { round, kind, tree: null, level: null, sender: kind === 'score-req' ? 'label' : 'features', release: kind === 'score-req' && dp ? 'leaf' : null };
  }
  const phase = k % 4;
  const tree = Math.floor(k / (4 * p.depth));
  const level = Math.floor(k / 4) % p.depth;
  const kind = (['hist-req', 'hist-resp', 'split-req', 'split-resp'] as const)[phase];
  const release = !dp ? null : kind === 'split-req' ? 'histogram' : kind === 'hist-req' && level === 0 && tree > 0 ? 'leaf' : null;
  return { round, kind, tree, level, sender: phase % 2 === 0 ? 'label' : 'features', release };
}

export function schedule(p: Shape): Step[] {
  return Array.from({ length: totalRounds(p) }, (_, i) => stepAt(p, i + 1));
}
