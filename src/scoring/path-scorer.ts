/**
 * A scorer for models explained by per-row path contributions — gradient-boosted trees (issue 14).
 * Written against this small interface, not against src/trees, so the trees' provider is a few
 * lines once both are on main: `predictMargin(model, X, n)` is `margin`, and a `PathExplainer`
 * (Saabas contributions: one entry per feature plus the bias, summing to the margin) is `explainer`.
 *
 *   registerScorerProvider({
 *     name: 'gbdt',
 *     detect: async (dir) => isGbdtModelDir(dir),
 *     load: async (dir) => {
 *       const model = await loadGbdtModel(dir);
 *       const scorer = new PathScorer('gbdt', model.numFeature, (X, n) => predictMargin(model, X, n), new PathExplainer(model));
 *       return { scorer, modelHash, spec: { kind: 'gbdt' }, metadata };
 *     },
 *   });
 */
import { FedmarkError } from '../errors.ts';
import { checkBatch, type AttributionInfo, type Scorer } from './scorer.ts';

export interface PathExplainerLike {
  /** Contributions of the row at `offset` in `x`: d entries, then the bias; they sum to the row's margin. */
  explain(x: ArrayLike<number>, offset?: number): Float64Array;
}

export class PathScorer implements Scorer {
  readonly baseValue: number;
  readonly attribution: AttributionInfo = {
    method: 'tree-path',
    exact: true,
    description: 'path contributions (Saabas): each split on a row\'s path adds the change in expected value to its feature; they sum with the bias to the margin',
    baseline: null,
  };

  constructor(
    readonly kind: string,
    readonly d: number,
    private readonly margin: (X: Float32Array, n: number) => Float64Array,
    private readonly explainer: PathExplainerLike,
  ) {
    const probe = explainer.explain(new Float64Array(d));
    if (probe.length !== d + 1) throw new FedmarkError('SCORER_BAD_EXPLAINER', `explainer returns ${probe.length} values for ${d} features; expected ${d} + 1 (the bias)`);
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
