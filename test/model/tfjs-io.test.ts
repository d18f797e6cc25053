import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readFile, rm, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/model/backend.ts';
import { initParameters, predictProba } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { fileIOHandler, loadModel, saveModel, toLayersModel } from '../../src/model/tfjs-io.ts';
import { hashParameters } from '../../src/util/hash.ts';

const d = 6;
const n = 300;
const X = new Float32Array(n * d).map((_, i) => ((i * 2654435761) % 997) / 997);
const specs: ModelSpec[] = [{ kind: 'logistic' }, { kind: 'mlp', hidden: [8, 4], activation: 'relu' }, { kind: 'mlp', hidden: [5], activation: 'tanh' }];

function paramsFor(spec: ModelSpec): Float64Array {
  const p = initParameters(spec, d, 11);
  // Values that are not float32-representable, to check the exact float64 side file.
  for (let i = 0; i < p.length; i++) p[i] += 0.3 * Math.sin(3 * i + 1) + 1e-12;
  return p;
}

function layersPredict(model: tfl.LayersModel): Float32Array {
  return tf.tidy(() => (model.predict(tf.tensor2d(X, [n, d])) as tf.Tensor).dataSync() as Float32Array);
}

let dir: string;
beforeAll(async () => {
  await initBackend({ log: () => {} });
  dir = await mkdtemp(join(tmpdir(), 'fedmark-io-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('toLayersModel', () => {
  it('builds a Sequential whose predictions equal predictProba', () => {
    for (const spec of specs) {
      const p = paramsFor(spec);
      const before = tf.memory().numTensors;
      const model = toLayersModel(spec, d, p);
      const got = layersPredict(model);
      const want = predictProba(spec, d, p, X, n);
      for (let i = 0; i < n; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-6);
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
  });
});

describe('saveModel / loadModel', () => {
  it('round-trips spec, d, exact float64 params and metadata; a standard tfjs loader reads the files', async () => {
    for (const [i, spec] of specs.entries()) {
      const p = paramsFor(spec);
      const sub = join(dir, `m${i}`);
      await saveModel(sub, spec, d, p, { round: 7, partners: ['a', 'b'] });
      const json = JSON.parse(await readFile(join(sub, 'model.json'), 'utf8'));
      expect(json.format).toBe('layers-model');
      expect(json.weightsManifest[0].paths).toEqual(['./weights.bin']);
      expect(json.modelTopology.class_name).toBe('Sequential');

      const loaded = await loadModel(sub);
      expect(loaded.spec).toEqual(spec);
      expect(loaded.d).toBe(d);
      expect(loaded.metadata).toEqual({ round: 7, partners: ['a', 'b'] });
      expect(hashParameters(loaded.params)).toBe(hashParameters(p));

      const model = await tfl.loadLayersModel(fileIOHandler(sub));
      const got = layersPredict(model);
      model.dispose();
      const want = predictProba(loaded.spec, loaded.d, loaded.params, X, n);
      for (let r = 0; r < n; r++) expect(Math.abs(got[r] - want[r])).toBeLessThan(1e-6);
    }
  });

  it('falls back to the float32 weights without the float64 file and infers the spec from plain tfjs models', async () => {
    const spec = specs[1];
    const p = paramsFor(spec);
    const sub = join(dir, 'plain');
    // A model saved by ordinary tfjs code: no fedmark metadata, no params.f64.bin.
    const model = toLayersModel(spec, d, p);
    await model.save(fileIOHandler(sub));
    model.dispose();
    const loaded = await loadModel(sub);
    expect(loaded.spec).toEqual(spec);
    expect(loaded.d).toBe(d);
    expect(Array.from(loaded.params)).toEqual(Array.from(p, (v) => Math.fround(v)));
    expect(loaded.metadata).toEqual({});

    const sub2 = join(dir, 'nof64');
    await saveModel(sub2, spec, d, p);
    await unlink(join(sub2, 'params.f64.bin'));
    expect(Array.from((await loadModel(sub2)).params)).toEqual(Array.from(p, (v) => Math.fround(v)));
  });

  it('detects tampering and missing models', async () => {
    const spec = specs[0];
    const p = paramsFor(spec);
    const sub = join(dir, 'tamper');
    await saveModel(sub, spec, d, p);
    const f64 = await readFile(join(sub, 'params.f64.bin'));
    f64[3] ^= 1;
    await writeFile(join(sub, 'params.f64.bin'), f64);
    await expect(loadModel(sub)).rejects.toMatchObject({ code: 'MODEL_CORRUPT' });

    const sub2 = join(dir, 'tamper2');
    await saveModel(sub2, spec, d, p);
    const w = await readFile(join(sub2, 'weights.bin'));
    w[2] ^= 0x40;
    await writeFile(join(sub2, 'weights.bin'), w);
    await expect(loadModel(sub2)).rejects.toThrow(/disagree at parameter 0/);

    await expect(loadModel(join(dir, 'nothing-here'))).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
  });
});
