/**
 * Issue 18 item 4: one DP-SGD round of local training (the SGD workload's settings: one epoch,
 * Poisson rate q = 0.02, i.e. 50 steps of ≈ q·n rows, clip 1, σ = 1) at `--rows` rows (default 10⁶:
 * the bundled bank-marketing rows replicated), on 1 and on 2 worker threads, side by side in one
 * process: runs alternate 1, 2, 1, 2 … so machine noise hits both alike; the ratio of medians is the
 * figure. Each pair is also checked bit-identical (the noise is seeded through the same test hook the
 * unit test uses, so both runs draw the same batches — production draws them from the CSPRNG).
 * Then one GBDT histogram level (the partner's local step of level 1 of a DP tree) at the same rows,
 * on 1 and 2 threads alternating, `--level-reps` pairs, each pair checked bit-identical.
 *
 *   npx tsx benchmarks/scale/run.ts [--rows 1000000] [--reps 3] [--level-reps 9]
 *
 * Writes benchmarks/results/scale-dp-sgd.json.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { loadBundled } from '../../src/data/bundled.ts';
import { createRng } from '../../src/util/rng.ts';
import { subsetDataset } from '../../src/data/encode.ts';
import { initParameters } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { GRADIENT_CHUNK_ROWS } from '../../src/train/chunked-gradients.ts';
import { trainLocal } from '../../src/train/local.ts';
import { closeWorkers } from '../../src/util/worker-pool.ts';
import { featureLayout } from '../../src/trees/layout.ts';
import { GbdtLocalData, HISTOGRAM_CHUNK_ROWS, applyStep, initialState, localStepOnThreads, parseGbdtParams } from '../../src/trees/index.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const rows = arg('rows', 1_000_000);
const reps = arg('reps', 3);
// A level takes well under a second: more pairs for a steadier median on a shared machine.
const levelReps = arg('level-reps', 9);

function seededFill(seed: number) {
  const rng = createRng(seed);
  return (buf: Uint32Array) => {
    for (let i = 0; i < buf.length; i++) buf[i] = rng.int(2 ** 32);
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const hex = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

const loadAtStart = loadavg();
const { schema, dataset } = await loadBundled('bank-marketing');
const data = subsetDataset(
  dataset,
  Array.from({ length: rows }, (_, i) => i % dataset.n),
);
const models: { name: string; spec: ModelSpec }[] = [
  { name: 'logistic', spec: { kind: 'logistic' } },
  { name: 'mlp-32', spec: { kind: 'mlp', hidden: [32], activation: 'relu' } },
];
const results = [];
for (const { name, spec } of models) {
  const global = initParameters(spec, data.d, 1);
  const seconds: Record<1 | 2, number[]> = { 1: [], 2: [] };
  let identical = true;
  // Warm-up (not counted): the first 2-thread run starts the worker thread and shares the features with it.
  const w0 = performance.now();
  await trainLocal(spec, data.d, global, data, {
    epochs: 1,
    batchSize: 256,
    learningRate: 0.5,
    optimizer: 'sgd',
    seed: 1,
    threads: 2,
    dp: { noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.02 },
  });
  const warmupSeconds = (performance.now() - w0) / 1000;
  for (let r = 0; r < reps; r++) {
    const params: Record<number, Float64Array> = {};
    for (const threads of [1, 2] as const) {
      const t0 = performance.now();
      const res = await trainLocal(
        spec,
        data.d,
        global,
        data,
        { epochs: 1, batchSize: 256, learningRate: 0.5, optimizer: 'sgd', seed: 1, threads, dp: { noiseMultiplier: 1, clipNorm: 1, samplingRate: 0.02 } },
        { randomFill: seededFill(1000 + r) },
      );
      seconds[threads].push((performance.now() - t0) / 1000);
      params[threads] = res.params;
    }
    // The Gaussian noise comes from the CSPRNG in both runs; compare without it on the same batches.
    const a = await trainLocal(
      spec,
      data.d,
      global,
      data,
      { epochs: 1, batchSize: 256, learningRate: 0.5, optimizer: 'sgd', seed: 1, threads: 1, dp: { noiseMultiplier: 0, clipNorm: 1, samplingRate: 0.02 } },
      { randomFill: seededFill(7 + r) },
    );
    const b = await trainLocal(
      spec,
      data.d,
      global,
      data,
      { epochs: 1, batchSize: 256, learningRate: 0.5, optimizer: 'sgd', seed: 1, threads: 2, dp: { noiseMultiplier: 0, clipNorm: 1, samplingRate: 0.02 } },
      { randomFill: seededFill(7 + r) },
    );
    identical &&= hex(a.params) === hex(b.params);
  }
  const m1 = median(seconds[1]);
  const m2 = median(seconds[2]);
  const row = {
    model: name,
    rows,
    features: data.d,
    stepsPerRound: 50,
    rowsPerStep: Math.round(0.02 * rows),
    seconds1Thread: seconds[1],
    seconds2Threads: seconds[2],
    median1Thread: m1,
    median2Threads: m2,
    warmupSeconds2Threads: warmupSeconds,
    speedup: m1 / m2,
    bitIdentical: identical,
  };
  console.log(JSON.stringify(row));
  results.push(row);
}
// One GBDT histogram level (the partner's local step of a tree level: gradients at the current margins,
// then the G/H histograms of the level's nodes) on 1 and 2 threads, alternating; the bins and the
// first tree's margins are computed before timing (they are cached between rounds in a job).
const layout = featureLayout(schema);
const gbdtParams = parseGbdtParams({ splitMode: 'histogram', trees: 2, depth: 6, binEdges: 'schema', dp: { epsilon: 3 } });
const local = new GbdtLocalData(data);
let state = initialState(gbdtParams, layout);
state = applyStep(state, await localStepOnThreads(state, local, { threads: 1, minRows: 0 })); // level 0 → the root split
const levelSeconds: Record<1 | 2, number[]> = { 1: [], 2: [] };
let levelIdentical = true;
const hist = (x: Record<string, Float64Array>) => hex(x.grad) + hex(x.hess);
const warm0 = performance.now();
await localStepOnThreads(state, local, { threads: 2, minRows: 0 });
const levelWarmup = (performance.now() - warm0) / 1000;
for (let r = 0; r < levelReps; r++) {
  const sums: Record<number, string> = {};
  for (const threads of [1, 2] as const) {
    const t0 = performance.now();
    const parts = await localStepOnThreads(state, local, { threads, minRows: 0 });
    levelSeconds[threads].push((performance.now() - t0) / 1000);
    sums[threads] = hist(parts);
  }
  levelIdentical &&= sums[1] === sums[2];
}
const treeLevel = {
  workload: `gbdt level 1 of a depth-6 tree (DP tree mode: both children of the root queried; ${layout.groups.length} columns, ${gbdtParams.bins} bins)`,
  rows,
  histogramChunkRows: HISTOGRAM_CHUNK_ROWS,
  reps: levelReps,
  seconds1Thread: levelSeconds[1],
  seconds2Threads: levelSeconds[2],
  median1Thread: median(levelSeconds[1]),
  median2Threads: median(levelSeconds[2]),
  warmupSeconds2Threads: levelWarmup,
  speedup: median(levelSeconds[1]) / median(levelSeconds[2]),
  bitIdentical: levelIdentical,
};
console.log(JSON.stringify(treeLevel));

const out = join(import.meta.dirname, '..', 'results', 'scale-dp-sgd.json');
writeFileSync(
  out,
  `${JSON.stringify(
    {
      benchmark: 'one DP-SGD round and one GBDT histogram level, 1 vs 2 worker threads',
      cores: availableParallelism(),
      gradientChunkRows: GRADIENT_CHUNK_ROWS,
      reps,
      load: { loadavgAtStart: loadAtStart, loadavgAtEnd: loadavg() },
      note: 'ratios measured side by side in one process on a machine shared with other jobs (load: 1/5/15-minute load averages, as uptime prints them)',
      results,
      treeLevel,
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${out}`);
await closeWorkers();
