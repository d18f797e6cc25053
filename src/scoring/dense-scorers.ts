/**
 * Scorers for the dense models fedmark trains today (logistic regression and MLPs), and the
 * provider that reads their saved directories (src/model/tfjs-io.ts).
 *
 * - Logistic: logit = b + Σ_j w_j x_j. Contribution φ_j = w_j (x_j − x0_j) against the declared
 *   baseline x0, base value = b + Σ_j w_j x0_j. Exact. With the `zero` baseline this is the
 *   textbook "coefficient × value" split and the base value is the intercept.
 * - MLP: integrated gradients against the same baseline (dense-net.ts): exact for ReLU
 *   (piecewise-linear path walk), Gauss–Legendre quadrature for tanh with the residual measured.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel, MODEL_JSON } from '../model/tfjs-io.ts';
import type { ModelSpec } from '../model/spec.ts';
import { hashParameters } from '../util/hash.ts';
import { denseNet, gaussLegendre, igExactRelu, igQuadrature, netLogits, NetWorkspace, ReluPathWorkspace, type DenseNet } from './dense-net.ts';
import type { Baseline } from './baseline.ts';
import { checkBatch, registerScorerProvider, type AttributionInfo, type Scorer, type ScorerProvider } from './scorer.ts';

export class LinearScorer implements Scorer {
  readonly kind = 'logistic';
  readonly d: number;
  readonly baseValue: number;
  readonly attribution: AttributionInfo;
  private readonly w: Float64Array;
  private readonly x0: Float64Array;
  private readonly net: DenseNet;

  constructor(net: DenseNet, baseline: Baseline) {
    this.net = net;
    this.d = net.d;
    this.w = net.layers[0].W;
    this.x0 = baseline.x0;
    let base = net.layers[0].b[0];
    for (let j = 0; j < this.d; j++) base += this.w[j] * this.x0[j];
    this.baseValue = base;
    this.attribution = {
      method: 'linear',
      exact: true,
      description: 'coefficient × (encoded value − baseline value); contributions plus the base value equal the logit exactly',
      baseline: baseline.description,
    };
  }

  logits(X: Float32Array, n: number): Float64Array {
    checkBatch(this, X, n);
    return netLogits(this.net, X, n);
  }

  contributions(X: Float32Array, n: number): Float64Array {
    checkBatch(this, X, n);
    const { d, w, x0 } = this;
    const out = new Float64Array(n * d);
    for (let i = 0; i < n; i++) {
      const off = i * d;
      for (let j = 0; j < d; j++) out[off + j] = w[j] * (X[off + j] - x0[j]);
    }
    return out;
  }
}

/**
 * tanh networks: Gauss–Legendre quadrature, adaptive per row — 16 points, then 32, then 64 while
 * the completeness residual |Σφ − (f(x) − f(x0))| exceeds IG_TOLERANCE (logit units). The residual
 * that remains is measured and reported with every run (docs/SCORING.md).
 */
export const IG_POINTS = [16, 32, 64] as const;
export const IG_TOLERANCE = 1e-8;

export class MlpScorer implements Scorer {
  readonly kind = 'mlp';
  readonly d: number;
  readonly baseValue: number;
  readonly attribution: AttributionInfo;
  private readonly net: DenseNet;
  private readonly x0: Float64Array;
  private readonly ws: NetWorkspace;
  private readonly relu: ReluPathWorkspace | null;
  private readonly rules: { nodes: Float64Array; weights: Float64Array }[];
  /** Rows whose exact ReLU walk hit its bound and fell back to quadrature (diagnostic). */
  fallbacks = 0;

  constructor(net: DenseNet, baseline: Baseline, opts: { points?: number } = {}) {
    this.net = net;
    this.d = net.d;
    this.x0 = baseline.x0;
    this.ws = new NetWorkspace(net);
    this.baseValue = this.ws.forward(this.x0);
    this.relu = net.activation === 'relu' ? new ReluPathWorkspace(net, this.x0) : null;
    // A fixed number of points when asked for (to study convergence), else the adaptive ladder.
    this.rules = (opts.points !== undefined ? [opts.points] : [...IG_POINTS]).map(gaussLegendre);
    this.attribution = this.relu
      ? {
          method: 'integrated-gradients-exact',
          exact: true,
          description: 'integrated gradients along the straight path from the baseline, integrated exactly piece by piece (ReLU networks are piecewise linear)',
          baseline: baseline.description,
        }
      : {
          method: 'integrated-gradients-quadrature',
          exact: false,
          description: `integrated gradients along the straight path from the baseline, Gauss–Legendre quadrature (${opts.points !== undefined ? `${opts.points} points` : `${IG_POINTS.join('/')} points until the residual is ≤ ${IG_TOLERANCE}`}); the completeness residual is measured`,
          baseline: baseline.description,
        };
  }

  logits(X: Float32Array, n: number): Float64Array {
    checkBatch(this, X, n);
    return netLogits(this.net, X, n, this.ws);
  }

  contributions(X: Float32Array, n: number): Float64Array {
    checkBatch(this, X, n);
    const { d } = this;
    const out = new Float64Array(n * d);
    const grad = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      const x = X.subarray(i * d, (i + 1) * d);
      const phi = out.subarray(i * d, (i + 1) * d);
      if (this.relu && igExactRelu(this.relu, x, this.x0, phi, grad) >= 0) continue;
      if (this.relu) this.fallbacks++;
      const target = this.rules.length > 1 ? this.ws.forward(x) - this.baseValue : 0;
      for (let r = 0; r < this.rules.length; r++) {
        igQuadrature(this.ws, x, this.x0, this.rules[r], phi, grad);
        if (r === this.rules.length - 1) break;
        let sum = 0;
        for (let j = 0; j < d; j++) sum += phi[j];
        if (Math.abs(sum - target) <= IG_TOLERANCE) break;
      }
    }
    return out;
  }
}

export function denseScorer(spec: ModelSpec, d: number, params: Float64Array, baseline: Baseline, opts: { points?: number } = {}): Scorer {
  const net = denseNet(spec, d, params);
  return spec.kind === 'logistic' ? new LinearScorer(net, baseline) : new MlpScorer(net, baseline, opts);
}

/** Reads directories written by `saveModel` (or any Dense-stack tfjs model with a sigmoid output). */
export const denseModelProvider: ScorerProvider = {
  name: 'dense',
  async detect(dir) {
    // Only tfjs LayersModel directories: another provider's format may also use a model.json.
    try {
      const json = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8')) as { format?: unknown; modelTopology?: unknown };
      return json.format === 'layers-model' && typeof json.modelTopology === 'object';
    } catch {
      return false;
    }
  },
  async load(dir, ctx) {
    const m = await loadModel(dir);
    return {
      scorer: denseScorer(m.spec, m.d, m.params, ctx.baseline),
      modelHash: hashParameters(m.params),
      spec: m.spec as unknown as Record<string, unknown>,
      metadata: m.metadata,
    };
  },
};

registerScorerProvider(denseModelProvider);
