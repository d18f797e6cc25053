/**
 * The scoring seam: one `Scorer` per model kind, and one registry of providers that turn a saved
 * model directory into a scorer. The CLI (`fedmark score`, `fedmark serve`) and the library only
 * talk to this interface, so a new model kind (gradient-boosted trees, issue 14) plugs in by
 * registering a provider — the batch pipeline, reason codes, ledger and service do not change.
 *
 * Every scorer works in logit space: `logits(X)` are the model's log-odds and
 * `contributions(X)` split each row's logit into per-feature parts that sum, with `baseValue`, to
 * the logit (completeness). For linear models that split is exact; for other models the scorer's
 * `attribution` says how it is computed and whether it is exact; `completenessGap` measures the
 * residual where it is not.
 */
import { FedmarkError } from '../errors.ts';
import type { DatasetSchema } from '../data/schema.ts';
import type { Baseline } from './baseline.ts';

export interface AttributionInfo {
  /** Stable name of the method, e.g. "linear", "integrated-gradients-exact", "tree-path". */
  method: string;
  /** True when contributions + base value equal the logit up to floating-point rounding. */
  exact: boolean;
  /** One sentence for summaries and model documentation. */
  description: string;
  /** What the contributions are measured against (the declared baseline), if the method has one. */
  baseline: string | null;
}

export interface Scorer {
  /** Model family ("logistic", "mlp", "gbdt", …). */
  readonly kind: string;
  /** Number of encoded model inputs (the schema's feature count). */
  readonly d: number;
  /** Logit the contributions start from: Σ_j contributions[i][j] + baseValue = logit[i]. */
  readonly baseValue: number;
  readonly attribution: AttributionInfo;
  /** Log-odds of n rows of X (row-major n × d). */
  logits(X: Float32Array, n: number): Float64Array;
  /** Per-feature contributions in logit space, row-major n × d. */
  contributions(X: Float32Array, n: number): Float64Array;
}

/** A scorer plus what the model directory says about where the model came from. */
export interface ScoringModel {
  scorer: Scorer;
  /** SHA-256 of the model's exact parameters (the hash partners agreed on in the job). */
  modelHash: string;
  /** Model spec or description as stored with the model. */
  spec: Record<string, unknown>;
  /** The `metadata` object saved with the model (job id, purpose, schema hash, feature names…). */
  metadata: Record<string, unknown>;
}

export interface ScorerContext {
  schema: DatasetSchema;
  /** The declared reference input for attribution methods that need one. */
  baseline: Baseline;
}

/**
 * Turns a model directory into a scorer. `detect` must be cheap and must not throw for
 * directories of other providers; `load` throws FedmarkError for a directory it detected but cannot read.
 */
export interface ScorerProvider {
  name: string;
  detect(dir: string): Promise<boolean>;
  load(dir: string, ctx: ScorerContext): Promise<ScoringModel>;
}

const providers: ScorerProvider[] = [];

/**
 * Registers a provider. Providers are tried in registration order; registering a provider with a
 * name already present replaces it (so tests and plugins can override the built-in ones).
 */
export function registerScorerProvider(provider: ScorerProvider): void {
  const at = providers.findIndex((p) => p.name === provider.name);
  if (at >= 0) providers[at] = provider;
  else providers.push(provider);
}

export function scorerProviders(): readonly ScorerProvider[] {
  return providers;
}

/** Loads `dir` with the first provider that recognises it. */
export async function loadWithProviders(dir: string, ctx: ScorerContext): Promise<ScoringModel> {
  for (const p of providers) {
    if (await p.detect(dir)) return p.load(dir, ctx);
  }
  throw new FedmarkError('MODEL_NOT_FOUND', `${dir}: no scorer recognises this model directory (known: ${providers.map((p) => p.name).join(', ') || 'none'})`);
}

export function sigmoid(z: number): number {
  // Two branches keep exp() from overflowing for large |z|.
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** P(y = 1) for n rows. */
export function predictProbabilities(scorer: Scorer, X: Float32Array, n: number): Float64Array {
  const z = scorer.logits(X, n);
  for (let i = 0; i < n; i++) z[i] = sigmoid(z[i]);
  return z;
}

/**
 * |Σ_j φ_ij + baseValue − logit_i| per row: how far an attribution is from completeness (0 up to
 * rounding for exact methods).
 */
export function completenessGap(scorer: Scorer, X: Float32Array, n: number, phi?: Float64Array): Float64Array {
  const contributions = phi ?? scorer.contributions(X, n);
  const z = scorer.logits(X, n);
  const out = new Float64Array(n);
  const d = scorer.d;
  for (let i = 0; i < n; i++) {
    let s = scorer.baseValue;
    for (let j = 0; j < d; j++) s += contributions[i * d + j];
    out[i] = Math.abs(s - z[i]);
  }
  return out;
}

export function checkBatch(scorer: Scorer, X: Float32Array, n: number): void {
  if (!Number.isInteger(n) || n < 0 || X.length !== n * scorer.d) {
    throw new FedmarkError('INVALID_FEATURES', `feature matrix has ${X.length} values, expected n×d = ${n}×${scorer.d}`);
  }
}
