/**
 * Joint prediction with a split model: a customer walks each tree and every split is answered by the
 * party that owns it, from its own columns and its own threshold (x < threshold goes left, as XGBoost;
 * a categorical split sends its slot right). A feature holder answers, for each of its splits, which of
 * the requested rows go left — for every requested row, whether or not the row reaches that split — so
 * it learns nothing about the paths (which would reveal the other parties' splits); the label holder,
 * who walks the trees, learns those directions and the scores.
 */
import { FedmarkError } from '../../errors.ts';
import type { FeatureLayout } from '../../trees/layout.ts';
import type { Sections } from './active.ts';
import { predictMargins, type FeatureModel, type LabelModel } from './model.ts';
import { bitmapBytes, getBit, i32Bytes, readBytes, readI32, setBit } from './rows.ts';

/** Whether aligned row `row` of X (this party's own columns) goes left at a split of its column `group`. */
export function goesLeft(layout: FeatureLayout, group: number, cut: number, threshold: number, X: Float32Array, row: number): boolean {
  const g = layout.groups[group];
  if (!g) throw new FedmarkError('VERTICAL_BAD_MODEL', `the model splits on column ${group}, the party has ${layout.groups.length}`);
  if (g.kind === 'categorical') return !(X[row * layout.d + g.offset + cut] >= 0.5);
  const x = X[row * layout.d + g.feature];
  return Number.isNaN(x) ? true : x < threshold;
}

/** A feature holder's answers: its split nodes (tree, node) in order, and per node a bit set of the rows that go left. */
export function featureAnswers(model: FeatureModel, layout: FeatureLayout, X: Float32Array, rows: Int32Array): Sections {
  const own = [...model.nodes].sort((a, b) => a.tree - b.tree || a.node - b.node);
  const stride = bitmapBytes(rows.length);
  const bits = new Uint8Array(own.length * stride);
  own.forEach((s, k) => {
    for (let j = 0; j < rows.length; j++) if (goesLeft(layout, s.group, s.cut, s.threshold, X, rows[j])) setBit(bits, k * stride, j);
  });
  return [
    { name: 'nodes', bytes: i32Bytes(Int32Array.from(own.flatMap((s) => [s.tree, s.node]))) },
    { name: 'left', bytes: bits },
  ];
}

export type Answers = Map<string, { bits: Uint8Array; at: number }>;

/** The splits a party owns in the label holder's model, in answer order. */
export function ownedSplits(model: LabelModel, party: number): [number, number][] {
  return model.trees.flatMap((t, k) => t.kind.map((_, i) => [k, i] as [number, number]).filter(([, i]) => t.kind[i] === 2 && t.owner[i] === party));
}

/** Reads one feature holder's answers, refusing any that are not for exactly the splits it owns. */
export function readAnswers(into: Answers, sections: Map<string, Uint8Array>, expected: [number, number][], rows: number, who: string): void {
  const nodes = readI32(sections, 'nodes', who, 2 * expected.length);
  expected.forEach(([k, i], j) => {
    if (nodes[2 * j] !== k || nodes[2 * j + 1] !== i)
      throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${who}: answers for node (${nodes[2 * j]}, ${nodes[2 * j + 1]}), expected (${k}, ${i})`);
  });
  const stride = bitmapBytes(rows);
  const bits = readBytes(sections, 'left', who, expected.length * stride);
  expected.forEach(([k, i], j) => into.set(`${k}:${i}`, { bits, at: j * stride }));
}

/** Margins of `rows` (aligned indices): the label holder's own splits from its columns, the others' from their answers. */
export function labelMargins(model: LabelModel, layout: FeatureLayout, X: Float32Array, rows: Int32Array, answers: Answers): Float64Array {
  return predictMargins(model, rows.length, (k, node, j) => {
    const t = model.trees[k];
    if (t.owner[node] === 0) return goesLeft(layout, t.group[node], t.cut[node], t.threshold[node], X, rows[j]);
    const a = answers.get(`${k}:${node}`);
    if (!a) throw new FedmarkError('VERTICAL_BAD_MODEL', `no answer for split (${k}, ${node}) of party ${t.owner[node]}`);
    return getBit(a.bits, a.at, j);
  });
}
