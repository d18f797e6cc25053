/**
 * Epoch time of DP-SGD vs non-private local training (same model, same data, same code path
 * except clipping/noise/Poisson sampling), for logistic regression and an MLP 51→32→16→1 on a
 * bank-marketing-sized synthetic matrix (36k × 51, ~12% positives, one-hot-heavy like the encoded
 * bank data). Several repetitions, median reported. Writes benchmarks/results/dp-epoch-time.json.
 *
 * `--tfjs` adds the measurement behind the choice of plain float64 loops over tfjs for the inner
 * training loop: the same epoch written with tfjs ops on the wasm backend, interleaved with the
 * float64 runs (without CSPRNG sampling/noise, so the tfjs figures are a lower bound).
 *
 * Run: npx tsx benchmarks/dp/epoch-time.ts [--reps 5] [--tfjs]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/model/backend.ts';
import { initParameters, parameterLayout } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { trainLocal, type LocalTrainConfig, type TrainingData } from '../../src/train/local.ts';
import { createRng } from '../../src/util/rng.ts';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const reps = Number(args[args.indexOf('--reps') + 1] ?? 5) || 5;
const withTfjs = args.includes('--tfjs');

/** 7 numeric columns in [0,1] plus 9 one-hot groups totalling 44 columns = 51 features. */
function syntheticBank(n: number, seed: number): TrainingData {
  const groups = [12, 3, 4, 8, 3, 3, 2, 3, 6];
  const numeric = 7;
  const d = numeric + groups.reduce((a, b) => a + b, 0);
  const rng = createRng(seed);
  const X = new Float32Array(n * d);
  const y = new Float32Array(n);
  const w = Array.from({ length: d }, () => rng.normal());
  for (let i = 0; i < n; i++) {
    const row = i * d;
    let z = -4.7; // intercept tuned for ≈ 12% positives
    for (let k = 0; k < numeric; k++) {
      const v = rng.next();
      X[row + k] = v;
      z += w[k] * v;
    }
    let off = numeric;
    for (const g of groups) {
      const k = off + rng.int(g);
      X[row + k] = 1;
      z += 0.5 * w[k];
      off += g;
    }
    y[i] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { n, d, X, y };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timeEpoch(spec: ModelSpec, data: TrainingData, config: LocalTrainConfig): Promise<number> {
  const global = initParameters(spec, data.d, 1);
  const t0 = performance.now();
  await trainLocal(spec, data.d, global, data, config);
  return performance.now() - t0;
}

/**
 * One epoch with tfjs ops doing the same manual forward/backward (and, with dp, the same
 * norm-based clipping) as the float64 loops. tfjs-core's CommonJS build registers no gradients
 * (only the umbrella @tensorflow/tfjs package does), so tf.grad/optimizer.minimize are not an option
 * here anyway.
 */
function tfjsEpoch(spec: ModelSpec, data: TrainingData, batchSize: number, dp: boolean): number {
  const layout = parameterLayout(spec, data.d);
  const init = initParameters(spec, data.d, 1);
  const lr = 0.05;
  const vars = layout.layers.map((l) => ({
    W: tf.variable(tf.tensor2d(Float32Array.from(init.subarray(l.kernelOffset, l.kernelOffset + l.inDim * l.outDim)), [l.inDim, l.outDim])),
    b: tf.variable(tf.zeros([l.outDim])),
  }));
  const t0 = performance.now();
  for (let start = 0; start < data.n; start += batchSize) {
    const count = Math.min(batchSize, data.n - start);
    tf.tidy(() => {
      // Batches are uploaded from JS: tf.slice of a 36k-row tensor is very slow on wasm.
      const acts: tf.Tensor2D[] = [tf.tensor2d(data.X.subarray(start * data.d, (start + count) * data.d), [count, data.d])];
      let z: tf.Tensor2D = acts[0];
      vars.forEach((v, l) => {
        z = tf.add(tf.matMul(acts[l], v.W), v.b);
        if (l < vars.length - 1) acts.push(tf.relu(z));
      });
      let g: tf.Tensor2D = tf.sub(tf.sigmoid(z), tf.tensor2d(data.y.subarray(start, start + count), [count, 1]));
      const deltas: tf.Tensor2D[] = new Array(vars.length);
      for (let l = vars.length - 1; l >= 0; l--) {
        deltas[l] = g;
        if (l > 0) g = tf.mul(tf.matMul(g, vars[l].W, false, true), tf.step(acts[l]));
      }
      let scale: tf.Tensor2D | null = null;
      if (dp) {
        let sq: tf.Tensor = tf.zeros([count]);
        for (let l = 0; l < vars.length; l++) {
          sq = tf.add(sq, tf.mul(tf.add(tf.sum(tf.square(acts[l]), 1), 1), tf.sum(tf.square(deltas[l]), 1)));
        }
        scale = tf.reshape(tf.minimum(1, tf.div(1, tf.sqrt(sq))), [count, 1]);
      }
      vars.forEach((v, l) => {
        const gs = scale ? tf.mul(deltas[l], scale) : deltas[l];
        const gW = tf.matMul(acts[l], gs, true, false);
        const gb = tf.sum(gs, 0);
        const step = lr / count;
        v.W.assign(tf.sub(v.W, tf.mul(gW, step)));
        v.b.assign(tf.sub(v.b, tf.mul(gb, step)));
      });
    });
  }
  // Forces completion of any pending work before stopping the clock.
  vars[0].W.dataSync();
  const ms = performance.now() - t0;
  for (const v of vars) {
    v.W.dispose();
    v.b.dispose();
  }
  return ms;
}

async function main(): Promise<void> {
  const data = syntheticBank(36_000, 7);
  const positives = data.y.reduce((a, b) => a + b, 0) / data.n;
  const models: { name: string; spec: ModelSpec }[] = [
    { name: 'logistic', spec: { kind: 'logistic' } },
    { name: 'mlp-32-16', spec: { kind: 'mlp', hidden: [32, 16], activation: 'relu' } },
  ];
  const batchSizes = [64, 256];
  if (withTfjs) await initBackend({ prefer: 'wasm', log: () => {} });
  const ms = (xs: number[]): number => +median(xs).toFixed(2);
  const rows: Record<string, unknown>[] = [];
  for (const { name, spec } of models) {
    for (const batchSize of batchSizes) {
      const base: LocalTrainConfig = { epochs: 1, batchSize, learningRate: 0.05, optimizer: 'sgd', seed: 3 };
      const dpCfg: LocalTrainConfig = { ...base, dp: { noiseMultiplier: 1.0, clipNorm: 1.0 } };
      await timeEpoch(spec, data, base); // warm-up (JIT)
      await timeEpoch(spec, data, dpCfg);
      if (withTfjs) tfjsEpoch(spec, data, batchSize, true);
      const plain: number[] = [];
      const priv: number[] = [];
      const tfPlain: number[] = [];
      const tfClip: number[] = [];
      // Interleaved so that load from other processes on the machine affects every variant alike.
      for (let r = 0; r < reps; r++) {
        plain.push(await timeEpoch(spec, data, base));
        priv.push(await timeEpoch(spec, data, dpCfg));
        if (withTfjs) {
          tfPlain.push(tfjsEpoch(spec, data, batchSize, false));
          tfClip.push(tfjsEpoch(spec, data, batchSize, true));
        }
      }
      const row = {
        model: name,
        parameters: parameterLayout(spec, data.d).size,
        batchSize,
        nonPrivateMs: ms(plain),
        dpSgdMs: ms(priv),
        ratio: +(median(priv) / median(plain)).toFixed(3),
        nonPrivateRunsMs: plain.map((x) => +x.toFixed(2)),
        dpSgdRunsMs: priv.map((x) => +x.toFixed(2)),
        ...(withTfjs ? { tfjsWasmNonPrivateMs: ms(tfPlain), tfjsWasmClippedMs: ms(tfClip) } : {}),
      };
      rows.push(row);
      console.log(
        `${name.padEnd(10)} batch ${String(batchSize).padStart(3)}: non-private ${row.nonPrivateMs} ms, DP-SGD ${row.dpSgdMs} ms, ratio ${row.ratio}×` +
          (withTfjs ? ` | tfjs-wasm non-private ${ms(tfPlain)} ms, clipped ${ms(tfClip)} ms` : ''),
      );
    }
  }

  const out = {
    benchmark: 'dp-epoch-time',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version },
    data: { n: data.n, d: data.d, positiveRate: +positives.toFixed(4) },
    dp: { noiseMultiplier: 1.0, clipNorm: 1.0, sampling: 'Poisson, q = batchSize/n, round(1/q) steps per epoch' },
    repetitions: reps,
    targetRatio: 1.5,
    results: rows,
    ...(withTfjs ? { tfjsBackend: tf.getBackend() } : {}),
  };
  const file = join(here, '..', 'results', 'dp-epoch-time.json');
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${file}`);
}

await main();
