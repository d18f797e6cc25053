/**
 * A scorer for models explained by per-row path contributions — the gradient-boosted trees
 * (tree-scorer.ts plugs src/trees/ in: `predictMargin` is `margin`, a `PathExplainer` is
 * `explainer`). Written against this small interface so any model with an additive per-row
 * explanation (contributions per feature plus a bias, summing to the margin) scores through it.
 */
import { FedmarkError } from '../errors.ts';
import { checkBatch, type AttributionInfo, type Scorer } from './scorer.ts';

export interface PathExplainerLike {
  /** Contributions of the row at `offset` in `x`: d entries, then the bias; they sum to the row's margin. */
  explain(x: ArrayLike<number>, offset?: number): Float64Array;
}

export class PathScorer implements Scorer {
  readonly baseValue: number;
  readonly attribution: AttributionInfo;

  constructor(
    readonly kind: string,
    readonly d: number,
    private readonly margin: (X: Float32Array, n: number) => Float64Array,
    private readonly explainer: PathExplainerLike,
    /** How the explainer weights a node's children: by cover (the model's own) or equally. */
    covers: 'model' | 'uniform' = 'uniform',
  ) {
    this.attribution = {
      method: 'tree-path',
      exact: true,
      description: `path contributions (Saabas): each split on a row's path adds the change in expected node value (${covers === 'model' ? "children weighted by the model's covers" : 'children weighted equally'}) to its feature; they sum with the bias to the margin`,
      baseline: null,
    };
    const probe = explainer.explain(new Float64Array(d));
    if (probe.length !== d + 1)
      throw new FedmarkError('SCORER_BAD_EXPLAINER', `explainer returns ${probe.length} values for ${d} features; expected ${d} + 1 (the bias)`);
    // The bias is the same for every row (the base margin plus the trees' root values).
    this.baseValue = probe[d];
  }

  logits(X: Float32Array, n: number): Float64Array {
    checkBatch(this, X, n);
    return this.margin(X, n);
  }

  contributions(X: Float32Array, n: number): Float64Array {
    checkBatch(this, X, n);
    const { d } = this;
    const out = new Float64Array(n * d);
    for (let i = 0; i < n; i++) out.set(this.explainer.explain(X, i * d).subarray(0, d), i * d);
    return out;
  }
}
