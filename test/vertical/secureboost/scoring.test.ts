import { describe, expect, it } from 'vitest';
import { SPLIT, LEAF } from '../../../src/trees/heap-tree.ts';
import type { FeatureLayout } from '../../../src/trees/layout.ts';
import type { FeatureModel, LabelModel } from '../../../src/vertical/secureboost/model.ts';
import { featureAnswers, labelMargins, ownedSplits, readAnswers, type Answers } from '../../../src/vertical/secureboost/scoring.ts';
import { logit } from '../../../src/trees/local.ts';
import { thrown } from '../../helpers/errors.ts';

// One tree of depth 2: the root splits on the label holder's column 0 (x < 0.5), both children on the
// feature holder's columns (its column 1 at 0.3 on the left, its column 0 at 0.7 on the right).
const labelLayout: FeatureLayout = { d: 1, featureNames: ['a'], groups: [{ kind: 'numeric', name: 'a', feature: 0, lo: 0, hi: 1 }] };
const featureLayout: FeatureLayout = {
  d: 2,
  featureNames: ['b', 'c'],
  groups: [
    { kind: 'numeric', name: 'b', feature: 0, lo: 0, hi: 1 },
    { kind: 'numeric', name: 'c', feature: 1, lo: 0, hi: 1 },
  ],
};
const model: LabelModel = {
  format: 'fedmark-vertical-label/1',
  baseScore: 0.5,
  trees: [
    {
      kind: [SPLIT, SPLIT, SPLIT, LEAF, LEAF, LEAF, LEAF],
      owner: [0, 1, 1, 0, 0, 0, 0],
      group: [0, 1, 0, 0, 0, 0, 0],
      cut: [3, 2, 5, 0, 0, 0, 0],
      threshold: [0.5, 0, 0, 0, 0, 0, 0],
      value: [0, 0, 0, 1, 2, 3, 4],
    },
  ],
};
const features: FeatureModel = {
  format: 'fedmark-vertical-features/1',
  nodes: [
    { tree: 0, node: 2, group: 0, cut: 5, threshold: 0.7 },
    { tree: 0, node: 1, group: 1, cut: 2, threshold: 0.3 },
  ],
};

describe('joint prediction of a split model', () => {
  const labelX = Float32Array.from([0.1, 0.1, 0.9, 0.9, NaN]);
  const featX = Float32Array.from([0, 0.2, 0, 0.8, 0.6, 0, 0.9, 0, 0.1, 0.1]);
  const rows = Int32Array.from([0, 1, 2, 3, 4]);

  it('each party evaluates only its own splits; the label holder walks to the leaf', () => {
    const sections = featureAnswers(features, featureLayout, featX, rows);
    // The feature holder's message: its split nodes (sorted) and one bit per requested row and split — no value, no threshold.
    expect(sections.map((s) => s.name)).toEqual(['nodes', 'left']);
    expect([...new Int32Array(sections[0].bytes.slice().buffer)]).toEqual([0, 1, 0, 2]);
    expect(sections[1].bytes.length).toBe(2 * Math.ceil(rows.length / 8));
    const answers: Answers = new Map();
    readAnswers(answers, new Map(sections.map((s) => [s.name, s.bytes])), ownedSplits(model, 1), rows.length, 'fh');
    const m = labelMargins(model, labelLayout, labelX, rows, answers);
    // row 0: a<0.5 → node 1, c=0.2<0.3 → leaf 3 (1); row 1: node 1, c=0.8 → leaf 4 (2);
    // row 2: a≥0.5 → node 2, b=0.6<0.7 → leaf 5 (3); row 3: node 2, b=0.9 → leaf 6 (4);
    // row 4: a missing goes left → node 1, c=0.1 → leaf 3 (1).
    expect([...m].map((v) => v - logit(Math.fround(0.5)))).toEqual([1, 2, 3, 4, 1]);
  });

  it('refuses answers for splits the sender does not own, or too few bits', () => {
    const answer = (nodes: FeatureModel['nodes']) => new Map(featureAnswers({ ...features, nodes }, featureLayout, featX, rows).map((s) => [s.name, s.bytes]));
    const extra = answer([...features.nodes, { tree: 0, node: 0, group: 0, cut: 0, threshold: 0.5 }]);
    expect(thrown(() => readAnswers(new Map(), extra, ownedSplits(model, 1), rows.length, 'fh'))).toMatch(
      /VERTICAL_BAD_MESSAGE: fh: section "nodes" has 24 bytes, expected 16/,
    );
    // The label holder's own root split, answered in place of one the feature holder owns.
    const swapped = answer([features.nodes[1], { tree: 0, node: 0, group: 0, cut: 0, threshold: 0.5 }]);
    expect(thrown(() => readAnswers(new Map(), swapped, ownedSplits(model, 1), rows.length, 'fh'))).toMatch(
      /VERTICAL_BAD_MESSAGE: fh: answers for node \(0, 0\), expected \(0, 1\)/,
    );
    const short = new Map(featureAnswers(features, featureLayout, featX, rows.subarray(0, 3)).map((s) => [s.name, s.bytes]));
    short.set('left', short.get('left')!.subarray(0, 1));
    expect(thrown(() => readAnswers(new Map(), short, ownedSplits(model, 1), rows.length, 'fh'))).toMatch(
      /VERTICAL_BAD_MESSAGE: fh: section "left" has 1 bytes, expected 2/,
    );
  });

  it("cannot walk a tree without every owner's answer", () => {
    expect(thrown(() => labelMargins(model, labelLayout, labelX, rows, new Map()))).toMatch(/VERTICAL_BAD_MODEL: no answer for split \(0, 1\) of party 1/);
  });
});
