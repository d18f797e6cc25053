import type { ParameterLayout } from '../model/params.ts';

/**
 * Forward and backward passes for a stack of dense layers over plain Float64Array loops.
 *
 * Why not tfjs here: for these small models (≤ a few thousand parameters, batches of 64–512) a
 * tfjs step is dominated by per-op dispatch, not arithmetic; the measurement is in
 * docs/MODELS.md. Float64 loops in a fixed order are also bit-reproducible on every machine, which
 * the federation needs (partners recompute and compare model hashes). tfjs still represents,
 * scores and saves the model (src/model/).
 *
 * The backward pass keeps, per layer, the layer's input activations a (batch × in) and the
 * gradient of the per-example loss w.r.t. the layer's pre-activation output g (batch × out). For a
 * dense layer the per-example gradient is the outer product a_iᵀ g_i (bias: g_i), so its squared
 * norm is (‖a_i‖² + 1)·‖g_i‖² without ever materialising it (Goodfellow 2015, "Efficient
 * per-example gradient computations"), and a weighted sum over examples is one pass aᵀ(g ⊙ s).
 */
export interface Workspace {
  capacity: number;
  /** acts[l]: input to layer l (acts[0] = gathered feature rows), capacity × inDim_l. */
  acts: Float64Array[];
  /** deltas[l]: ∂loss_i/∂(pre-activation of layer l), capacity × outDim_l. */
  deltas: Float64Array[];
  /** actSq[l][i] = ‖acts[l] row i‖², filled by forward() when asked (needed for clipping). */
  actSq: Float64Array[];
  /** Pre-sigmoid output of the last layer. */
  logits: Float64Array;
  sqNorms: Float64Array;
  scales: Float64Array;
}

export function createWorkspace(layout: ParameterLayout, capacity: number): Workspace {
  const cap = Math.max(1, Math.ceil(capacity));
  return {
    capacity: cap,
    acts: layout.layers.map((l) => new Float64Array(cap * l.inDim)),
    deltas: layout.layers.map((l) => new Float64Array(cap * l.outDim)),
    actSq: layout.layers.map(() => new Float64Array(cap)),
    logits: new Float64Array(cap),
    sqNorms: new Float64Array(cap),
    scales: new Float64Array(cap),
  };
}

/** Returns a workspace that can hold `count` rows, reusing `ws` when it is big enough. */
export function ensureCapacity(layout: ParameterLayout, ws: Workspace, count: number): Workspace {
  if (count <= ws.capacity) return ws;
  return createWorkspace(layout, Math.max(count, Math.ceil(ws.capacity * 1.5)));
}

/**
 * Forward pass of rows[0..count) of X; fills ws.acts and ws.logits, and with withNorms also
 * ws.actSq (the squared norm of each layer input, fused here so clipping needs no extra pass).
 */
export function forward(
  layout: ParameterLayout,
  params: Float64Array,
  X: Float32Array,
  rows: ArrayLike<number>,
  count: number,
  ws: Workspace,
  withNorms = false,
): void {
  const d = layout.inputDim;
  const a0 = ws.acts[0];
  const sq0 = ws.actSq[0];
  for (let i = 0; i < count; i++) {
    const src = rows[i] * d;
    const dst = i * d;
    if (withNorms) {
      let sq = 0;
      for (let k = 0; k < d; k++) {
        const v = X[src + k];
        a0[dst + k] = v;
        sq += v * v;
      }
      sq0[i] = sq;
    } else {
      for (let k = 0; k < d; k++) a0[dst + k] = X[src + k];
    }
  }
  const L = layout.layers.length;
  const tanh = layout.hiddenActivation === 'tanh';
  for (let l = 0; l < L; l++) {
    const { inDim, outDim, kernelOffset: wo, biasOffset: bo } = layout.layers[l];
    const input = ws.acts[l];
    const hidden = l + 1 < L;
    const out = hidden ? ws.acts[l + 1] : ws.logits;
    const outSq = hidden ? ws.actSq[l + 1] : null;
    if (outDim === 1) {
      // Single-output layer (LR, MLP head): a dot product per row; a zero-skip branch costs more
      // than the multiply it saves.
      const b = params[bo];
      for (let i = 0; i < count; i++) {
        const ri = i * inDim;
        let z = b;
        for (let k = 0; k < inDim; k++) z += input[ri + k] * params[wo + k];
        out[i] = z;
      }
    } else {
      for (let i = 0; i < count; i++) {
        const ro = i * outDim;
        const ri = i * inDim;
        for (let j = 0; j < outDim; j++) out[ro + j] = params[bo + j];
        for (let k = 0; k < inDim; k++) {
          const a = input[ri + k];
          // One-hot features and ReLU outputs are mostly zero; skipping them is the main speed-up.
          if (a === 0) continue;
          const wk = wo + k * outDim;
          for (let j = 0; j < outDim; j++) out[ro + j] += a * params[wk + j];
        }
      }
    }
    if (hidden) {
      for (let i = 0; i < count; i++) {
        let sq = 0;
        for (let t = i * outDim, e = t + outDim; t < e; t++) {
          const v = tanh ? Math.tanh(out[t]) : out[t] < 0 ? 0 : out[t];
          out[t] = v;
          sq += v * v;
        }
        if (outSq) outSq[i] = sq;
      }
    }
  }
}

/** Numerically stable sigmoid. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/**
 * Binary cross-entropy with logits, max(z,0) − z·y + log(1 + e^{−|z|}) (stable for any z), summed
 * over the batch; sets the last layer's delta to σ(z) − y.
 */
export function lossAndOutputDelta(y: Float32Array, rows: ArrayLike<number>, count: number, ws: Workspace, lastLayer: number): number {
  const delta = ws.deltas[lastLayer];
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const z = ws.logits[i];
    const t = y[rows[i]];
    sum += (z > 0 ? z : 0) - z * t + Math.log1p(Math.exp(-Math.abs(z)));
    delta[i] = sigmoid(z) - t;
  }
  return sum;
}

/** Backpropagates the output delta to every layer's pre-activation (fills ws.deltas). */
export function backward(layout: ParameterLayout, params: Float64Array, count: number, ws: Workspace): void {
  const tanh = layout.hiddenActivation === 'tanh';
  for (let l = layout.layers.length - 1; l >= 1; l--) {
    const { inDim, outDim, kernelOffset: wo } = layout.layers[l];
    const gOut = ws.deltas[l];
    const gIn = ws.deltas[l - 1];
    const act = ws.acts[l];
    for (let i = 0; i < count; i++) {
      const ro = i * outDim;
      const ri = i * inDim;
      for (let k = 0; k < inDim; k++) {
        const a = act[ri + k];
        // ReLU: zero output ⇒ zero derivative (the sub-gradient at 0 is taken as 0, as tfjs does).
        if (!tanh && a === 0) {
          gIn[ri + k] = 0;
          continue;
        }
        let s: number;
        if (outDim === 1) {
          s = gOut[i] * params[wo + k];
        } else {
          const wk = wo + k * outDim;
          s = 0;
          for (let j = 0; j < outDim; j++) s += gOut[ro + j] * params[wk + j];
        }
        gIn[ri + k] = tanh ? s * (1 - a * a) : s;
      }
    }
  }
}

/**
 * ws.sqNorms[i] = ‖∇θ loss_i‖² over all layers, from activations and deltas only. Needs a forward
 * pass run with withNorms = true (ws.actSq).
 */
export function perExampleSquaredNorms(layout: ParameterLayout, count: number, ws: Workspace): Float64Array {
  const out = ws.sqNorms;
  out.fill(0, 0, count);
  for (let l = 0; l < layout.layers.length; l++) {
    const { outDim } = layout.layers[l];
    const aSq = ws.actSq[l];
    const g = ws.deltas[l];
    for (let i = 0; i < count; i++) {
      let gn = 0;
      for (let j = i * outDim, e = j + outDim; j < e; j++) gn += g[j] * g[j];
      // The bias acts as a constant input of 1.
      out[i] += (aSq[i] + 1) * gn;
    }
  }
  return out;
}

/**
 * grad = Σ_i s_i ∇θ loss_i (s_i = 1 when scales is null): per layer aᵀ(g ⊙ s), computed in one
 * pass over the batch. Overwrites grad.
 */
export function accumulateGradient(layout: ParameterLayout, count: number, ws: Workspace, scales: Float64Array | null, grad: Float64Array): void {
  grad.fill(0);
  for (let l = 0; l < layout.layers.length; l++) {
    const { inDim, outDim, kernelOffset: wo, biasOffset: bo } = layout.layers[l];
    const a = ws.acts[l];
    const g = ws.deltas[l];
    for (let i = 0; i < count; i++) {
      const s = scales ? scales[i] : 1;
      if (s === 0) continue;
      const ro = i * outDim;
      const ri = i * inDim;
      if (outDim === 1) {
        const sg = s * g[i];
        grad[bo] += sg;
        for (let k = 0; k < inDim; k++) grad[wo + k] += sg * a[ri + k];
        continue;
      }
      for (let j = 0; j < outDim; j++) grad[bo + j] += s * g[ro + j];
      for (let k = 0; k < inDim; k++) {
        const ak = a[ri + k];
        if (ak === 0) continue;
        const c = s * ak;
        const wk = wo + k * outDim;
        for (let j = 0; j < outDim; j++) grad[wk + j] += c * g[ro + j];
      }
    }
  }
}
