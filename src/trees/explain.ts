/**
 * Explanations for scoring: per-row path contributions in the form of Saabas ("Interpreting random
 * forests", 2014; XGBoost's `approx_contribs`). Each node gets an expected value; along a row's path
 * every split adds value(child) − value(parent) to its feature, the roots' values go to the bias, and
 * the contributions plus the bias equal the row's margin (logit) exactly, because the sums telescope to
 * the leaf values whatever the node values are.
 *
 * Which expected values: XGBoost weights children by cover, but a released fedmark model has no covers
 * (./model.ts). So the default gives each child equal weight — a function of the released model alone,
 * reproducible by anyone holding the file. A partner can instead weight by covers of its own rows
 * (`localCovers`), which stay local; a model imported from XGBoost with covers uses those.
 *
 * Feature importance by total gain is computed by the key holders at training time (./model.ts).
 */
import { FedmarkError } from '../errors.ts';
import { baseMargin, childOf, type CompactTree, type GbdtModel } from './model.ts';

/** Expected value of every node of a tree: leaves their value, splits the (cover-)weighted mean of their children. */
export function nodeValues(tree: CompactTree, cover?: ArrayLike<number>): Float64Array {
  const n = tree.left.length;
  const v = new Float64Array(n);
  // Children come after parents, so one backward pass sees every child before its parent.
  for (let i = n - 1; i >= 0; i--) {
    const l = tree.left[i];
    if (l < 0) {
      v[i] = tree.value[i];
      continue;
    }
    const r = tree.right[i];
    const wl = cover ? cover[l] : 1;
    const wr = cover ? cover[r] : 1;
    v[i] = wl + wr > 0 ? (wl * v[l] + wr * v[r]) / (wl + wr) : (v[l] + v[r]) / 2;
  }
  return v;
}

export type CoverSource = 'uniform' | 'model' | readonly ArrayLike<number>[];

/**
 * Rows of a local data set reaching each node of each tree — covers for explanations computed at a
 * partner from its own rows (never released).
 */
export function localCovers(model: GbdtModel, X: ArrayLike<number>, n: number): Float64Array[] {
  const d = model.numFeature;
  if (X.length < n * d) throw new FedmarkError('GBDT_BAD_DATA', `expected ${n} rows × ${d} features, got ${X.length} values`);
  return model.trees.map((tree) => {
    const c = new Float64Array(tree.left.length);
    for (let i = 0; i < n; i++) {
      let node = 0;
      c[0]++;
      while (tree.left[node] >= 0) {
        node = childOf(tree, node, X, i * d);
        c[node]++;
      }
    }
    return c;
  });
}

/** A reusable explainer: node values are computed once per tree. */
export class PathExplainer {
  private readonly values: Float64Array[];
  private readonly bias: number;

  /**
   * covers: 'uniform' (default; the released model alone), 'model' (the model's own covers, only in
   * models imported from XGBoost), or per-tree covers such as `localCovers`.
   */
  constructor(
    readonly model: GbdtModel,
    covers: CoverSource = 'uniform',
  ) {
    this.values = model.trees.map((t, k) => {
      if (covers === 'uniform') return nodeValues(t);
      if (covers === 'model') {
        if (!t.cover) throw new FedmarkError('GBDT_NO_COVERS', `tree ${k} carries no covers (fedmark models never do); use 'uniform' or local covers`);
        return nodeValues(t, t.cover);
      }
      const c = covers[k];
      if (!c || c.length !== t.left.length) throw new FedmarkError('GBDT_NO_COVERS', `covers for tree ${k} must have ${t.left.length} entries`);
      return nodeValues(t, c);
    });
    this.bias = baseMargin(model) + this.values.reduce((a, v) => a + v[0], 0);
  }

  /** Contributions of a row (length numFeature + 1; the last entry is the bias), summing to its margin. */
  explain(x: ArrayLike<number>, offset = 0): Float64Array {
    const { model } = this;
    const out = new Float64Array(model.numFeature + 1);
    model.trees.forEach((tree, k) => {
      const v = this.values[k];
      let node = 0;
      while (tree.left[node] >= 0) {
        const next = childOf(tree, node, x, offset);
        out[tree.feature[node]] += v[next] - v[node];
        node = next;
      }
    });
    out[model.numFeature] = this.bias;
    return out;
  }

  /** The top-k features pushing the row's score up (largest positive contributions), for reason codes. */
  topReasons(x: ArrayLike<number>, k: number, offset = 0): { feature: string; contribution: number }[] {
    const c = this.explain(x, offset);
    const idx = Array.from({ length: this.model.numFeature }, (_, j) => j).filter((j) => c[j] > 0);
    idx.sort((a, b) => c[b] - c[a] || a - b);
    return idx.slice(0, k).map((j) => ({ feature: this.model.featureNames[j], contribution: c[j] }));
  }
}

/** Path contributions of one row (see PathExplainer). */
export function pathContributions(model: GbdtModel, x: ArrayLike<number>, covers: CoverSource = 'uniform'): Float64Array {
  return new PathExplainer(model, covers).explain(x);
}
