import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { assertParameterLength, initParameters, parameterCount, parameterLayout, predictProba } from '../../src/model/params.ts';
import { modelSpecSchema, parseModelSpec, type ModelSpec } from '../../src/model/spec.ts';
import { FedmarkError } from '../../src/errors.ts';

const mlp: ModelSpec = { kind: 'mlp', hidden: [5, 3], activation: 'tanh' };

/** Independent float64 scorer: explicit sums over the documented layout. */
function naiveProba(spec: ModelSpec, d: number, p: Float64Array, x: ArrayLike<number>): number {
  const widths = spec.kind === 'logistic' ? [d, 1] : [d, ...spec.hidden, 1];
  let h = Array.from(x);
  let off = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    const [ni, no] = [widths[l], widths[l + 1]];
    const out: number[] = [];
    for (let j = 0; j < no; j++) {
      let s = p[off + ni * no + j];
      for (let k = 0; k < ni; k++) s += h[k] * p[off + k * no + j];
      out.push(s);
    }
    off += ni * no + no;
    const last = l + 2 === widths.length;
    h = out.map((z) => (last ? 1 / (1 + Math.exp(-z)) : spec.kind === 'mlp' && spec.activation === 'tanh' ? Math.tanh(z) : Math.max(0, z)));
  }
  return h[0];
}

describe('model spec', () => {
  it('applies the relu default and rejects an MLP without hidden layers', () => {
    expect(modelSpecSchema.parse({ kind: 'mlp', hidden: [4] })).toEqual({ kind: 'mlp', hidden: [4], activation: 'relu' });
    expect(() => parseModelSpec({ kind: 'mlp', hidden: [] })).toThrow(/hidden/);
    expect(() => parseModelSpec({ kind: 'mlp', hidden: [4], activation: 'sigmoid' })).toThrow(FedmarkError);
    expect(() => parseModelSpec({ kind: 'svm' })).toThrow(/invalid model spec/);
  });
});

describe('parameter layout', () => {
  it('counts kernel + bias per dense layer', () => {
    expect(parameterCount({ kind: 'logistic' }, 51)).toBe(52);
    expect(parameterCount({ kind: 'mlp', hidden: [32, 16], activation: 'relu' }, 50)).toBe(50 * 32 + 32 + 32 * 16 + 16 + 16 + 1);
    const layout = parameterLayout(mlp, 4);
    expect(layout.layers.map((l) => [l.inDim, l.outDim, l.kernelOffset, l.biasOffset])).toEqual([
      [4, 5, 0, 20],
      [5, 3, 25, 40],
      [3, 1, 43, 46],
    ]);
    expect(layout.size).toBe(47);
    expect(() => assertParameterLength(mlp, 4, new Float64Array(46))).toThrow(/needs 47/);
    expect(() => parameterLayout({ kind: 'logistic' }, 0)).toThrow(FedmarkError);
  });

  it('initialises deterministically: zeros for LR, Glorot-uniform kernels and zero biases for MLP', () => {
    expect(Array.from(initParameters({ kind: 'logistic' }, 6, 9))).toEqual(new Array(7).fill(0));
    const a = initParameters(mlp, 40, 7);
    const b = initParameters(mlp, 40, 7);
    const c = initParameters(mlp, 40, 8);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
    for (const layer of parameterLayout(mlp, 40).layers) {
      const limit = Math.sqrt(6 / (layer.inDim + layer.outDim));
      const kernel = a.subarray(layer.kernelOffset, layer.biasOffset);
      expect(Math.max(...kernel.map(Math.abs))).toBeLessThanOrEqual(limit);
      // Uniform on [-limit, limit] has variance limit²/3; with ≥ 15 draws the spread is far from 0.
      expect(Math.max(...kernel.map(Math.abs))).toBeGreaterThan(limit / 3);
      expect(Array.from(a.subarray(layer.biasOffset, layer.biasOffset + layer.outDim))).toEqual(new Array(layer.outDim).fill(0));
    }
  });
});

describe('predictProba', () => {
  const d = 4;
  const n = 9000; // > one internal batch of 8192 rows
  const X = new Float32Array(n * d).map((_, i) => ((i * 7919) % 1000) / 1000);

  it('matches an independent float64 scorer for LR and MLP (relu and tanh), across internal batches', () => {
    for (const spec of [{ kind: 'logistic' } as ModelSpec, mlp, { ...mlp, activation: 'relu' } as ModelSpec]) {
      const p = initParameters(spec, d, 3);
      for (let i = 0; i < p.length; i++) p[i] += 0.1 * Math.sin(i + 1); // non-zero biases and LR weights
      const probs = predictProba(spec, d, p, X, n);
      expect(probs).toHaveLength(n);
      for (const row of [0, 1, 4321, 8191, 8192, 8999]) {
        expect(probs[row]).toBeCloseTo(naiveProba(spec, d, p, X.subarray(row * d, row * d + d)), 5);
      }
    }
  });

  it('leaves no tensors behind and rejects a mis-shaped matrix', () => {
    const p = initParameters(mlp, d, 1);
    predictProba(mlp, d, p, X, n); // warm-up may allocate backend-internal state
    const before = tf.memory().numTensors;
    predictProba(mlp, d, p, X, n);
    predictProba({ kind: 'logistic' }, d, new Float64Array(d + 1), X, n);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => predictProba(mlp, d, p, X, n + 1)).toThrow(/expected n×d/);
    expect(predictProba(mlp, d, p, new Float32Array(0), 0)).toHaveLength(0);
  });
});
