/**
 * A dense network (the logistic and MLP models) in float64, read from the flat parameter vector:
 * forward pass, and integrated-gradients attribution.
 *
 * Scoring runs here in plain float64 JavaScript rather than through tfjs: for the small models
 * fedmark trains (tens of inputs, a few dozen hidden units) a tight loop is faster than tensor
 * set-up per batch, and float64 makes "contributions + base value = logit" hold to ~1e-12 instead
 * of float32's ~1e-6. Probabilities agree with `predictProba` (tfjs, float32) to float32 rounding.
 *
 * Integrated gradients (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks",
 * ICML): φ_j(x) = (x_j − x0_j) ∫₀¹ ∂f/∂x_j (x0 + t(x − x0)) dt, with f the logit. It satisfies
 * completeness, Σ_j φ_j = f(x) − f(x0), so φ plus the base value f(x0) is the logit.
 * - ReLU networks are piecewise linear, so along the straight path the gradient is piecewise
 *   constant. `igExactRelu` walks the path from kink to kink (the points where a hidden unit's
 *   pre-activation changes sign, found layer by layer) and integrates each constant piece exactly:
 *   the result is the exact integral, up to floating-point rounding.
 * - tanh networks are smooth (analytic along the path), so m-point Gauss–Legendre quadrature
 *   converges exponentially in m; the completeness residual is measured and reported.
 */
import { FedmarkError } from '../errors.ts';
import { parameterLayout } from '../model/params.ts';
import type { ModelSpec } from '../model/spec.ts';

export interface DenseLayer {
  inDim: number;
  outDim: number;
  /** Row-major inDim × outDim. */
  W: Float64Array;
  b: Float64Array;
}

export interface DenseNet {
  d: number;
  layers: DenseLayer[];
  /** Hidden activation; null for logistic regression (one layer). */
  activation: 'relu' | 'tanh' | null;
}

export function denseNet(spec: ModelSpec, d: number, params: Float64Array): DenseNet {
  const layout = parameterLayout(spec, d);
  if (params.length !== layout.size) {
    throw new FedmarkError('PARAM_LENGTH_MISMATCH', `parameter vector has ${params.length} values, the ${spec.kind} model needs ${layout.size}`);
  }
  return {
    d,
    activation: layout.hiddenActivation,
    layers: layout.layers.map((l) => ({
      inDim: l.inDim,
      outDim: l.outDim,
      W: params.slice(l.kernelOffset, l.kernelOffset + l.inDim * l.outDim),
      b: params.slice(l.biasOffset, l.biasOffset + l.outDim),
    })),
  };
}

/** z = Wᵀh + b for one layer. */
function affine(layer: DenseLayer, h: ArrayLike<number>, z: Float64Array): void {
  const { inDim, outDim, W, b } = layer;
  for (let j = 0; j < outDim; j++) z[j] = b[j];
  for (let k = 0; k < inDim; k++) {
    const hk = h[k];
    if (hk === 0) continue;
    const row = k * outDim;
    for (let j = 0; j < outDim; j++) z[j] += hk * W[row + j];
  }
}

function activate(kind: 'relu' | 'tanh', z: Float64Array): void {
  if (kind === 'relu') for (let j = 0; j < z.length; j++) z[j] = z[j] > 0 ? z[j] : 0;
  else for (let j = 0; j < z.length; j++) z[j] = Math.tanh(z[j]);
}

/** Reusable scratch buffers for one network. */
export class NetWorkspace {
  readonly acts: Float64Array[];
  readonly grads: Float64Array[];
  readonly x: Float64Array;
  private readonly gz: Float64Array[];
  constructor(readonly net: DenseNet) {
    this.acts = net.layers.map((l) => new Float64Array(l.outDim));
    this.grads = net.layers.map((l) => new Float64Array(l.inDim));
    this.gz = net.layers.map((l) => new Float64Array(l.outDim));
    this.x = new Float64Array(net.d);
  }

  /** Logit of one input; hidden activations stay in `acts` for a backward pass. */
  forward(x: ArrayLike<number>): number {
    const { layers, activation } = this.net;
    let h: ArrayLike<number> = x;
    for (let l = 0; l < layers.length; l++) {
      const z = this.acts[l];
      affine(layers[l], h, z);
      if (l < layers.length - 1) activate(activation!, z);
      h = z;
    }
    return this.acts[layers.length - 1][0];
  }

  /** ∂logit/∂x at the input of the last `forward`, written into `out` (length d). */
  backward(out: Float64Array): void {
    const { layers, activation } = this.net;
    const L = layers.length;
    // upstream: gradient with respect to the output of layer l (its post-activation).
    let upstream: Float64Array = new Float64Array([1]);
    for (let l = L - 1; l >= 0; l--) {
      const layer = layers[l];
      const gz = this.gz[l];
      for (let j = 0; j < layer.outDim; j++) gz[j] = l === L - 1 ? upstream[j] : upstream[j] * derivative(activation!, this.acts[l][j]);
      const gin = l === 0 ? out : this.grads[l];
      for (let k = 0; k < layer.inDim; k++) {
        let s = 0;
        const row = k * layer.outDim;
        for (let j = 0; j < layer.outDim; j++) s += layer.W[row + j] * gz[j];
        gin[k] = s;
      }
      upstream = gin;
    }
  }
}

/** Derivative of the activation, from its output value. */
function derivative(kind: 'relu' | 'tanh', a: number): number {
  return kind === 'relu' ? (a > 0 ? 1 : 0) : 1 - a * a;
}

export function netLogits(net: DenseNet, X: Float32Array, n: number, ws = new NetWorkspace(net)): Float64Array {
  const out = new Float64Array(n);
  const d = net.d;
  if (net.layers.length === 1) {
    // Logistic regression: a plain dot product.
    const { W, b } = net.layers[0];
    for (let i = 0; i < n; i++) {
      let s = b[0];
      const off = i * d;
      for (let j = 0; j < d; j++) s += W[j] * X[off + j];
      out[i] = s;
    }
    return out;
  }
  for (let i = 0; i < n; i++) out[i] = ws.forward(X.subarray(i * d, (i + 1) * d));
  return out;
}

/** Nodes and weights of m-point Gauss–Legendre quadrature on [0, 1] (weights sum to 1). */
export function gaussLegendre(m: number): { nodes: Float64Array; weights: Float64Array } {
  if (!Number.isInteger(m) || m < 1 || m > 512) throw new FedmarkError('IG_BAD_STEPS', `quadrature points must be an integer in 1..512, got ${m}`);
  const nodes = new Float64Array(m);
  const weights = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    // Newton's method on P_m from the Chebyshev-like initial guess (Golub–Welsch alternative).
    let x = Math.cos((Math.PI * (i + 0.75)) / (m + 0.5));
    let dp = 0;
    for (let it = 0; it < 100; it++) {
      let p0 = 1;
      let p1 = x;
      for (let k = 2; k <= m; k++) {
        const p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      const pm = m === 1 ? x : p1;
      const pm1 = m === 1 ? 1 : p0;
      dp = (m * (x * pm - pm1)) / (x * x - 1);
      const dx = pm / dp;
      x -= dx;
      if (Math.abs(dx) < 1e-16) break;
    }
    nodes[i] = (1 - x) / 2;
    weights[i] = 1 / ((1 - x * x) * dp * dp);
  }
  return { nodes, weights };
}

/**
 * Integrated gradients by Gauss–Legendre quadrature along the straight path from x0 to x.
 * Writes φ into `phi` (length d).
 */
export function igQuadrature(
  ws: NetWorkspace,
  x: ArrayLike<number>,
  x0: Float64Array,
  q: { nodes: Float64Array; weights: Float64Array },
  phi: Float64Array,
  grad: Float64Array,
): void {
  const d = ws.net.d;
  const pt = ws.x;
  phi.fill(0);
  for (let k = 0; k < q.nodes.length; k++) {
    const t = q.nodes[k];
    for (let j = 0; j < d; j++) pt[j] = x0[j] + t * (x[j] - x0[j]);
    ws.forward(pt);
    ws.backward(grad);
    const w = q.weights[k];
    for (let j = 0; j < d; j++) phi[j] += w * grad[j];
  }
  for (let j = 0; j < d; j++) phi[j] *= x[j] - x0[j];
}

/** Per-layer affine coefficients of the pre-activations along the path: z(t) = A + t·C. */
export class ReluPathWorkspace {
  readonly A: Float64Array[];
  readonly C: Float64Array[];
  readonly on: Uint8Array[];
  readonly delta: Float64Array;
  /** Pre-activation of layer 0 at the baseline: the same for every row. */
  readonly A0: Float64Array;
  private readonly gz: Float64Array[];
  constructor(
    readonly net: DenseNet,
    x0: Float64Array,
  ) {
    const hidden = net.layers.slice(0, -1);
    this.A = hidden.map((l) => new Float64Array(l.outDim));
    this.C = hidden.map((l) => new Float64Array(l.outDim));
    this.on = hidden.map((l) => new Uint8Array(l.outDim));
    this.gz = net.layers.map((l) => new Float64Array(l.inDim));
    this.delta = new Float64Array(net.d);
    this.A0 = new Float64Array(net.layers[0].outDim);
    affine(net.layers[0], x0, this.A0);
  }

  /** Gradient of the logit with respect to the input for the current activation pattern. */
  gradient(out: Float64Array): void {
    const { layers } = this.net;
    const L = layers.length;
    let upstream: Float64Array = layers[L - 1].W; // the output layer has one unit: column = W itself
    for (let l = L - 2; l >= 0; l--) {
      const layer = layers[l];
      const on = this.on[l];
      const gin = l === 0 ? out : this.gz[l];
      for (let k = 0; k < layer.inDim; k++) {
        let s = 0;
        const row = k * layer.outDim;
        for (let j = 0; j < layer.outDim; j++) if (on[j]) s += layer.W[row + j] * upstream[j];
        gin[k] = s;
      }
      upstream = gin;
    }
  }
}

/**
 * Exact integrated gradients for a ReLU network (see the file comment). Returns the number of
 * linear pieces, or -1 if the walk did not finish within its bound (the caller then falls back to
 * quadrature); writes φ into `phi`.
 */
export function igExactRelu(w: ReluPathWorkspace, x: ArrayLike<number>, x0: Float64Array, phi: Float64Array, grad: Float64Array): number {
  const { net } = w;
  const d = net.d;
  const hiddenCount = net.layers.length - 1;
  for (let j = 0; j < d; j++) w.delta[j] = x[j] - x0[j];
  // Layer 0 is affine in t for the whole path: A = W₀ᵀx0 + b₀ (shared), C = W₀ᵀΔ.
  w.A[0].set(w.A0);
  const C0 = w.C[0];
  {
    const l0 = net.layers[0];
    C0.fill(0);
    for (let k = 0; k < d; k++) {
      const dk = w.delta[k];
      if (dk === 0) continue;
      const row = k * l0.outDim;
      for (let j = 0; j < l0.outDim; j++) C0[j] += dk * l0.W[row + j];
    }
  }
  phi.fill(0);
  let alpha = 0;
  const maxPieces = 4 * net.layers.reduce((a, l) => a + l.outDim, 0) + 16;
  for (let piece = 1; piece <= maxPieces; piece++) {
    let beta = 1;
    for (let l = 0; l < hiddenCount; l++) {
      const A = w.A[l];
      const C = w.C[l];
      const on = w.on[l];
      if (l > 0) {
        // z_l(t) = W_lᵀ(on_{l-1} ⊙ (A_{l-1} + tC_{l-1})) + b_l, affine in t while the pattern holds.
        const layer = net.layers[l];
        const pA = w.A[l - 1];
        const pC = w.C[l - 1];
        const pOn = w.on[l - 1];
        for (let j = 0; j < layer.outDim; j++) {
          A[j] = layer.b[j];
          C[j] = 0;
        }
        for (let k = 0; k < layer.inDim; k++) {
          if (!pOn[k]) continue;
          const ak = pA[k];
          const ck = pC[k];
          const row = k * layer.outDim;
          for (let j = 0; j < layer.outDim; j++) {
            A[j] += ak * layer.W[row + j];
            C[j] += ck * layer.W[row + j];
          }
        }
      }
      for (let j = 0; j < A.length; j++) {
        const z = A[j] + alpha * C[j];
        const tol = 1e-12 * (Math.abs(A[j]) + Math.abs(C[j]));
        // The pattern just after alpha: a unit exactly at its kink follows its slope.
        const active = z > tol || (z >= -tol && C[j] > 0);
        on[j] = active ? 1 : 0;
        if (C[j] !== 0 && (active ? C[j] < 0 : C[j] > 0)) {
          const cross = -A[j] / C[j];
          if (cross > alpha && cross < beta) beta = cross;
        }
      }
    }
    w.gradient(grad);
    const span = beta - alpha;
    for (let j = 0; j < d; j++) phi[j] += grad[j] * span;
    if (beta >= 1) {
      for (let j = 0; j < d; j++) phi[j] *= w.delta[j];
      return piece;
    }
    // Step just past the kink so it is not found again (its unit flips on the next pass).
    alpha = beta;
  }
  return -1;
}
