import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/model/backend.ts';

describe('initBackend', () => {
  it('falls back past the missing tfjs-node to wasm, logs once, and is idempotent', async () => {
    let tfjsNode = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      tfjsNode = false;
    }
    const logs: string[] = [];
    const first = await initBackend({ log: (m) => logs.push(m) });
    expect(first).toBe(tfjsNode ? 'tensorflow' : 'wasm');
    expect(tf.getBackend()).toBe(first);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatch(new RegExp(`^tfjs backend: ${first}\\b`));
    expect(logs[0]).not.toMatch(/fedmark:/);
    if (!tfjsNode) expect(logs[0]).toContain('the native TensorFlow backend is not installed (optional package @tensorflow/tfjs-node)');

    const again = await initBackend({ prefer: 'cpu', log: (m) => logs.push(m) });
    expect(again).toBe(first);
    expect(logs).toHaveLength(1);
    // The chosen backend computes.
    expect(Array.from(tf.tidy(() => tf.add(tf.tensor1d([1, 2]), 1).dataSync()))).toEqual([2, 3]);
  });
});
