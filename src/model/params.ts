import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { FedmarkError } from '../errors.ts';
import { createRng } from '../util/rng.ts';
import type { ModelSpec } from './spec.ts';

/**
 * One dense layer inside the flat parameter vector. The kernel is stored row-major (inDim × outDim,
 * element [k][j] at kernelOffset + k·outDim + j) followed by the bias (outDim values), the same
 * order and shape tfjs-layers uses for Dense weights, so export is a plain copy.
 */
export interface DenseLayerLayout {
  readonly inDim: number;
  readonly outDim: number;
  readonly kernelOffset: number;
  readonly biasOffset: number;
}

export type HiddenActivation = 'relu' | 'tanh';

export interface ParameterLayout {
  readonly inputDim: number;
  readonly layers: readonly DenseLayerLayout[];
  /** Activation of every hidden layer; the last layer always emits a logit (sigmoid applied on top). */
  readonly hiddenActivation: HiddenActivation | null;
  readonly size: number;
}

function checkDim(d: number): void {
  if (!Number.isInteger(d) || d < 1) {
    throw new FedmarkError('INVALID_INPUT_DIM', `input dimension d must be a positive integer, got ${d}`);
  }
}

export function parameterLayout(spec: ModelSpec, d: number): ParameterLayout {
  checkDim(d);
  const widths = spec.kind === 'logistic' ? [d, 1] : [d, ...spec.hidden, 1];
  const layers: DenseLayerLayout[] = [];
  let offset = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    const inDim = widths[l];
    const outDim = widths[l + 1];
    layers.push({ inDim, outDim, kernelOffset: offset, biasOffset: offset + inDim * outDim });
    offset += inDim * outDim + outDim;
  }
  return {
    inputDim: d,
    layers,
    hiddenActivation: spec.kind === 'mlp' ? spec.activation : null,
    size: offset,
  };
}

export function parameterCount(spec: ModelSpec, d: number): number {
  return parameterLayout(spec, d).size;
}

/** Throws unless `params` has exactly the length the spec needs for input dimension d. */
export function assertParameterLength(spec: ModelSpec, d: number, params: ArrayLike<number>): ParameterLayout {
  const layout = parameterLayout(spec, d);
  if (params.length !== layout.size) {
    throw new FedmarkError('PARAM_LENGTH_MISMATCH', `parameter vector has ${params.length} values but a ${spec.kind} model with d=${d} needs ${layout.size}`);
  }
  return layout;
}

/**
 * Deterministic initial parameters. Logistic regression starts at zero (the loss is convex, and a
 * zero start makes every partner's first round independent of the seed). MLP kernels are
 * Glorot-uniform (Glorot & Bengio 2010) from the seeded PRNG, biases zero — the tfjs-layers default.
 */
export function initParameters(spec: ModelSpec, d: number, seed: number): Float64Array {
  const layout = parameterLayout(spec, d);
  const params = new Float64Array(layout.size);
  if (spec.kind === 'logistic') return params;
  const rng = createRng(seed);
  for (const layer of layout.layers) {
    const limit = Math.sqrt(6 / (layer.inDim + layer.outDim));
    const count = layer.inDim * layer.outDim;
    for (let i = 0; i < count; i++) params[layer.kernelOffset + i] = (2 * rng.next() - 1) * limit;
  }
  return params;
}

/** Rows scored per tfjs call: bounds peak tensor memory for big inputs. */
const PREDICT_BATCH = 8192;

/**
 * P(y = 1 | x) for n rows of X (row-major n × d), computed with tfjs in float32 on the active
 * backend. Every tensor is created inside tf.tidy, so the call leaves no tensors behind.
 */
export function predictProba(spec: ModelSpec, d: number, params: Float64Array, X: Float32Array, n: number): Float32Array {
  const layout = assertParameterLength(spec, d, params);
  if (!Number.isInteger(n) || n < 0 || X.length !== n * d) {
    throw new FedmarkError('INVALID_FEATURES', `feature matrix has ${X.length} values, expected n×d = ${n}×${d}`);
  }
  const out = new Float32Array(n);
  if (n === 0) return out;
  const p32 = Float32Array.from(params);
  tf.tidy(() => {
    const weights = layout.layers.map((layer) => ({
      kernel: tf.tensor2d(p32.subarray(layer.kernelOffset, layer.kernelOffset + layer.inDim * layer.outDim), [layer.inDim, layer.outDim]),
      bias: tf.tensor1d(p32.subarray(layer.biasOffset, layer.biasOffset + layer.outDim)),
    }));
    for (let start = 0; start < n; start += PREDICT_BATCH) {
      const rows = Math.min(PREDICT_BATCH, n - start);
      tf.tidy(() => {
        let h: tf.Tensor2D = tf.tensor2d(X.subarray(start * d, (start + rows) * d), [rows, d]);
        weights.forEach((w, l) => {
          const z = tf.add(tf.matMul(h, w.kernel), w.bias) as tf.Tensor2D;
          if (l === weights.length - 1) h = tf.sigmoid(z);
          else h = layout.hiddenActivation === 'tanh' ? tf.tanh(z) : tf.relu(z);
        });
        out.set(h.dataSync() as Float32Array, start);
      });
    }
  });
  return out;
}
