/**
 * The references a vertical model is judged against, on the same aligned rows and the same hold-out:
 * a plain (non-private) histogram GBDT on one party's columns (the bank alone) or on all parties'
 * columns pooled (what no one may build). Used by the vertical demo and benchmark.
 */
import { auc } from '../metrics/classification.ts';
import type { FeatureLayout } from '../trees/layout.ts';
import { predictProba } from '../trees/model.ts';
import { parseGbdtParams } from '../trees/params.ts';
import { trainPooled } from '../trees/simulate.ts';
import type { DataSplit } from './secureboost/rows.ts';

export function plainGbdtAuc(o: {
  layout: FeatureLayout;
  X: Float32Array;
  y: Float32Array;
  split: DataSplit;
  trees: number;
  depth: number;
  learningRate: number;
  bins: number;
}): number {
  const d = o.layout.d;
  const sub = (r: Int32Array) => {
    const out = new Float32Array(r.length * d);
    r.forEach((i, k) => out.set(o.X.subarray(i * d, (i + 1) * d), k * d));
    return out;
  };
  const gp = parseGbdtParams({ trees: o.trees, depth: o.depth, learningRate: o.learningRate, bins: o.bins, splitMode: 'histogram', binEdges: 'dp-quantiles' });
  const { train, test } = o.split;
  const r = trainPooled(gp, o.layout, { n: train.length, d, X: sub(train), y: Float32Array.from(train, (i) => o.y[i]) });
  return auc(
    predictProba(r.model, sub(test), test.length),
    Float32Array.from(test, (i) => o.y[i]),
  );
}
