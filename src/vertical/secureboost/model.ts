/**
 * The vertical model is split: the label holder keeps the tree structure, which party owns each split,
 * its own splits and every leaf value; each feature holder keeps, for the splits it won, its column and
 * cut (the threshold value never leaves it). Scoring a customer walks each tree with the owner of each
 * split answering only for that split.
 */
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';
import { SPLIT, type HeapTree } from '../../trees/heap-tree.ts';
import { logit } from '../../trees/local.ts';

/** A training tree with the party (0 = label holder) owning each split. */
export interface VerticalTree extends HeapTree {
  owner: number[];
}

export const labelModelSchema = z.strictObject({
  format: z.literal('fedmark-vertical-label/1'),
  baseScore: z.number().gt(0).lt(1),
  trees: z.array(
    z.strictObject({
      kind: z.array(z.number().int()),
      owner: z.array(z.number().int().min(0)),
      /** The owner's own column index (opaque to everyone else). */
      group: z.array(z.number().int().min(0)),
      cut: z.array(z.number().int().min(0)),
      /** The label holder's own cut values (0 at other parties' splits: their thresholds stay with them). */
      threshold: z.array(z.number()),
      value: z.array(z.number()),
    }),
  ),
});
export type LabelModel = z.infer<typeof labelModelSchema>;

export const featureModelSchema = z.strictObject({
  format: z.literal('fedmark-vertical-features/1'),
  /** The splits this party won: tree, heap node, its column, bin cut and the cut's value (local only). */
  nodes: z.array(
    z.strictObject({
      tree: z.number().int().min(0),
      node: z.number().int().min(0),
      group: z.number().int().min(0),
      cut: z.number().int().min(0),
      threshold: z.number(),
    }),
  ),
});
export type FeatureModel = z.infer<typeof featureModelSchema>;

/**
 * Margins of `rows` rows: `goesLeft(tree, node, row)` is asked for every split on each row's path and
 * answered by whoever owns the split. The margin starts from logit(float32 base score), as XGBoost stores it.
 */
export function predictMargins(model: LabelModel, rows: number, goesLeft: (tree: number, node: number, row: number) => boolean): Float64Array {
  const out = new Float64Array(rows).fill(logit(Math.fround(model.baseScore)));
  model.trees.forEach((t, k) => {
    for (let j = 0; j < rows; j++) {
      let node = 0;
      let guard = 0;
      while (t.kind[node] === SPLIT) {
        node = goesLeft(k, node, j) ? 2 * node + 1 : 2 * node + 2;
        if (++guard > 64 || node >= t.kind.length) throw new FedmarkError('VERTICAL_BAD_MODEL', `tree ${k} has a split without children at node ${node}`);
      }
      out[j] += t.value[node];
    }
  });
  return out;
}

export function sigmoid(m: Float64Array): Float64Array {
  return Float64Array.from(m, (v) => 1 / (1 + Math.exp(-v)));
}
