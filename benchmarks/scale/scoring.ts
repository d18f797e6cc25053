/**
 * Issue 18 item 4: `scoreFile` (CSV → scores with 3 reason codes each) on 1 and 2 threads, side by
 * side in one process (runs alternate 1, 2, 1, 2 …; the ratio of medians is the figure), for an MLP
 * (exact integrated-gradients reasons) and a gradient-boosted ensemble (tree-path reasons), on the
 * bundled telco rows repeated to `--rows` (unique ids). Every pair of outputs is checked byte-identical.
 *
 *   npx tsx benchmarks/scale/scoring.ts [--rows 200000] [--reps 3]
 *
 * Writes benchmarks/results/scale-scoring.json.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { loadDataset } from '../../src/data/encode.ts';
import { featureCount, featureNames, loadSchema } from '../../src/data/schema.ts';
import { schemaHash } from '../../src/federation/job-presets.ts';
import { initParameters } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { saveModel } from '../../src/model/tfjs-io.ts';
import { scoreFile } from '../../src/scoring/batch.ts';
import { loadScoringModel } from '../../src/scoring/model.ts';
import { saveGbdtModelDir } from '../../src/scoring/tree-scorer.ts';
import { featureLayout, parseGbdtParams, trainPooled } from '../../src/trees/index.ts';
import { closeWorkers } from '../../src/util/worker-pool.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const rows = arg('rows', 200_000);
const reps = arg('reps', 3);
const loadAtStart = loadavg();
const work = mkdtempSync(join(tmpdir(), 'fedmark-scale-scoring-'));
const telco = BUNDLED_DATASETS['telco-churn'];
const schema = await loadSchema(telco.schema);
const d = featureCount(schema);
const meta = { jobId: 'bench-job', purpose: 'churn-model', schemaHash: schemaHash(schema) };

const lines = readFileSync(telco.csv, 'utf8').split(/\r?\n/).filter(Boolean);
const body: string[] = [lines[0]];
for (let i = 0; i < rows; i++) {
  const src = lines[1 + (i % (lines.length - 1))];
  const comma = src.indexOf(',');
  body.push(`${src.slice(0, comma)}-${Math.floor(i / (lines.length - 1))}${src.slice(comma)}`);
}
const data = join(work, 'customers.csv');
writeFileSync(data, `${body.join('\n')}\n`);

const mlpDir = join(work, 'mlp');
const spec: ModelSpec = { kind: 'mlp', hidden: [32], activation: 'relu' };
await saveModel(mlpDir, spec, d, initParameters(spec, d, 5), { ...meta, featureNames: featureNames(schema) });
const gbdtDir = join(work, 'gbdt');
saveGbdtModelDir(gbdtDir, trainPooled(parseGbdtParams({}), featureLayout(schema), await loadDataset(telco.csv, schema)).model, meta);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const results = [];
for (const [name, dir] of [
  ['mlp-relu-32', mlpDir],
  ['gbdt-defaults', gbdtDir],
] as const) {
  const model = await loadScoringModel(dir, schema);
  const seconds: Record<1 | 2, number[]> = { 1: [], 2: [] };
  let identical = true;
  // Warm-up (not counted): starts the worker and loads the model in it.
  await scoreFile({ dataPath: data, outPath: join(work, 'warm.csv'), schema, model, threads: 2, threadMinRows: 0 });
  for (let r = 0; r < reps; r++) {
    const hashes: Record<number, string> = {};
    for (const threads of [1, 2] as const) {
      const out = join(work, `out-${threads}.csv`);
      const t0 = performance.now();
      await scoreFile({ dataPath: data, outPath: out, schema, model, threads, threadMinRows: 0 });
      seconds[threads].push((performance.now() - t0) / 1000);
      hashes[threads] = sha(out);
    }
    identical &&= hashes[1] === hashes[2];
  }
  const row = {
    model: name,
    rows,
    reasons: 3,
    seconds1Thread: seconds[1],
    seconds2Threads: seconds[2],
    median1Thread: median(seconds[1]),
    median2Threads: median(seconds[2]),
    speedup: median(seconds[1]) / median(seconds[2]),
    outputIdentical: identical,
  };
  console.log(JSON.stringify(row));
  results.push(row);
}
await closeWorkers();
rmSync(work, { recursive: true, force: true });
const out = join(import.meta.dirname, '..', 'results', 'scale-scoring.json');
writeFileSync(
  out,
  `${JSON.stringify(
    {
      benchmark: 'scoreFile (3 reason codes), 1 vs 2 worker threads',
      cores: availableParallelism(),
      reps,
      load: { loadavgAtStart: loadAtStart, loadavgAtEnd: loadavg() },
      note: 'ratios measured side by side in one process on a machine shared with other jobs; with 2 threads the calling thread reads, encodes and writes while one worker scores',
      results,
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${out}`);
