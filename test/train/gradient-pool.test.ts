import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBundled } from '../../src/data/bundled.ts';
import { createRng } from '../../src/util/rng.ts';
import { subsetDataset, type Dataset } from '../../src/data/encode.ts';
import { initParameters, parameterLayout } from '../../src/model/params.ts';
import { chunkedClippedGradientSum, GRADIENT_CHUNK_ROWS } from '../../src/train/chunked-gradients.ts';
import { createWorkspace } from '../../src/train/backprop.ts';
import { GradientPool } from '../../src/train/gradient-pool.ts';
import { closeWorkers } from '../../src/util/worker-pool.ts';
import { trainLocal } from '../../src/train/local.ts';
import type { ModelSpec } from '../../src/model/spec.ts';

/** Issue 18 item 4: DP-SGD's per-example gradients on worker threads give the single-thread bits. */

let data: Dataset;
beforeAll(async () => {
  const { dataset } = await loadBundled('bank-marketing');
  data = subsetDataset(
    dataset,
    Array.from({ length: 120_000 }, (_, i) => (i * 7919) % dataset.n),
  );
});

/** A seeded stand-in for the CSPRNG behind Poisson sampling, so both runs draw the same batches. */
function seededFill(seed: number) {
  const rng = createRng(seed);
  return (buf: Uint32Array) => {
    for (let i = 0; i < buf.length; i++) buf[i] = rng.int(2 ** 32);
  };
}

const bits = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

afterAll(() => closeWorkers());

describe('DP-SGD gradients on worker threads', () => {
  const mlp: ModelSpec = { kind: 'mlp', hidden: [8], activation: 'relu' };

  it('sums a many-chunk batch to the same bits on 2 workers as on one thread, for logistic regression and an MLP', async () => {
    for (const spec of [{ kind: 'logistic' } as ModelSpec, mlp]) {
      const layout = parameterLayout(spec, data.d);
      const params = initParameters(spec, data.d, 17);
      const rows = Int32Array.from({ length: 5 * GRADIENT_CHUNK_ROWS + 123 }, (_, i) => (i * 13) % data.n);
      const one = new Float64Array(layout.size);
      const single = chunkedClippedGradientSum(layout, params, data.X, data.y, rows, 0.5, one, createWorkspace(layout, 16));
      for (const threads of [2, 3]) {
        const two = new Float64Array(layout.size);
        const parallel = await new GradientPool(threads, data).sum(layout, params, rows, 0.5, two);
        expect(bits(two)).toBe(bits(one));
        expect(parallel).toEqual({ lossSum: single.lossSum, clipped: single.clipped });
      }
      expect(one.some((v) => v !== 0)).toBe(true);
    }
  }, 60_000);

  it('trains to bit-identical parameters with 1 and 2 threads for the same batches', async () => {
    const spec: ModelSpec = { kind: 'logistic' };
    const global = initParameters(spec, data.d, 3);
    const cfg = (threads: number) => ({
      epochs: 1,
      batchSize: 256,
      learningRate: 0.5,
      optimizer: 'sgd' as const,
      seed: 1,
      threads,
      dp: { noiseMultiplier: 0, clipNorm: 1, samplingRate: 0.1 },
    });
    // q·n = 12,000 rows per step: about six chunks, so the 2-thread run does use the pool.
    expect(0.1 * data.n).toBeGreaterThanOrEqual(2 * GRADIENT_CHUNK_ROWS);
    const a = await trainLocal(spec, data.d, global, data, cfg(1), { randomFill: seededFill(99) });
    const b = await trainLocal(spec, data.d, global, data, cfg(2), { randomFill: seededFill(99) });
    expect(a.steps).toBe(10);
    expect(bits(b.params)).toBe(bits(a.params));
    expect(b.meanLoss).toBe(a.meanLoss);
    expect(bits(a.params)).not.toBe(bits(global));
  }, 120_000);
});
