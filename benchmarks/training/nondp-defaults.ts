/**
 * Local-training defaults of jobs without differential privacy, measured: the federated AUC of a
 * non-private job under the old defaults (1 epoch, batch 64, lr 0.1) and under candidates, side by
 * side with the DP job at ε = 3 and with centralized training, on the bundled datasets, through
 * `simulate()` (the partner runtime, round machine and aggregation the nodes run; plaintext sums —
 * the CKKS arithmetic adds only its ~1e-7 decryption noise). Writes JSON.
 *
 *   npx tsx benchmarks/training/nondp-defaults.ts [--seeds 3] [--rounds 20] [--out benchmarks/results/nondp-defaults.json]
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { bundledPartners } from '../../cli/partner-data.ts';
import { jobPreset, NON_PRIVATE_TRAINING } from '../../src/federation/job-presets.ts';
import type { LocalTraining } from '../../src/federation/manifest.ts';
import { simulate } from '../../src/federation/simulate.ts';
import { sgdModel } from '../../src/federation/workloads/sgd/index.ts';
import { concatDatasets } from '../../src/data/encode.ts';
import { auc } from '../../src/metrics/classification.ts';
import { initBackend } from '../../src/model/backend.ts';
import { initParameters, predictProba } from '../../src/model/params.ts';
import { trainLocal } from '../../src/train/local.ts';
import type { BundledDatasetName } from '../../src/data/bundled.ts';
import type { ModelSpec } from '../../src/model/spec.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '20' },
    partners: { type: 'string', default: '5' },
    out: { type: 'string', default: 'benchmarks/results/nondp-defaults.json' },
    only: { type: 'string' },
    model: { type: 'string', default: 'logistic' },
  },
});
const MODEL: ModelSpec = values.model === 'mlp' ? { kind: 'mlp', hidden: [16], activation: 'relu' } : { kind: 'logistic' };
const SEEDS = Number(values.seeds);
const ROUNDS = Number(values.rounds);
const PARTNERS = Number(values.partners);

const CONFIGS: Record<string, Partial<LocalTraining> | 'dp'> = {
  'DP-SGD ε=3 (preset)': 'dp',
  'no DP, preset (1 epoch, batch 32, lr 0.5)': { ...NON_PRIVATE_TRAINING },
  'no DP, earlier preset (1 epoch, batch 64, lr 0.1)': { epochs: 1, batchSize: 64, learningRate: 0.1, optimizer: 'sgd' },
  'no DP, 2 epochs, batch 64, lr 1': { epochs: 2, batchSize: 64, learningRate: 1, optimizer: 'sgd' },
};

async function main() {
  const backend = await initBackend();
  const results: Record<string, Record<string, number[]>> = {};
  for (const dataset of ['bank-marketing', 'telco-churn'] as BundledDatasetName[]) {
    results[dataset] = {};
    for (let s = 0; s < SEEDS; s++) {
      const seed = 42 + s;
      const { schema, names, splits } = await bundledPartners(dataset, PARTNERS, 1, seed);
      const partners = splits.map((sp, i) => ({ name: names[i], ...sp }));
      const pooledTest = concatDatasets(splits.map((x) => x.test));
      for (const [label, cfg] of Object.entries(CONFIGS)) {
        if (values.only && !label.includes(values.only)) continue;
        const job = jobPreset({
          jobId: `bench-${s}`,
          schema,
          partners: PARTNERS,
          rounds: ROUNDS,
          epsilon: cfg === 'dp' ? 3 : null,
          encryption: { scheme: 'plain-insecure' },
          seed,
          model: MODEL,
        });
        if (cfg !== 'dp') job.localTraining = { ...job.localTraining, ...cfg };
        const t0 = performance.now();
        const r = await simulate({ job, partners });
        const d = job.dataset.featureNames.length;
        const pooled = auc(predictProba(sgdModel(job), d, r.params, pooledTest.X, pooledTest.n), pooledTest.y);
        (results[dataset][label] ??= []).push(pooled);
        process.stderr.write(
          `${dataset} seed ${seed} ${label}: AUC ${pooled.toFixed(4)} (federated eval ${r.finalMetrics.auc.toFixed(4)}, ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`,
        );
      }
      if (!values.only || 'centralized'.includes(values.only)) {
        const job = jobPreset({ jobId: 'c', schema, partners: PARTNERS, rounds: ROUNDS, epsilon: null, seed, model: MODEL });
        const d = job.dataset.featureNames.length;
        const central = await trainLocal(sgdModel(job), d, initParameters(sgdModel(job), d, seed), concatDatasets(splits.map((x) => x.train)), {
          epochs: ROUNDS,
          batchSize: 64,
          learningRate: 0.1,
          optimizer: 'sgd',
          seed,
        });
        const a = auc(predictProba(sgdModel(job), d, central.params, pooledTest.X, pooledTest.n), pooledTest.y);
        (results[dataset]['centralized (all rows pooled, 20 epochs, batch 64, lr 0.1)'] ??= []).push(a);
        process.stderr.write(`${dataset} seed ${seed} centralized: AUC ${a.toFixed(4)}\n`);
      }
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const summary = Object.fromEntries(
    Object.entries(results).map(([ds, byCfg]) => [
      ds,
      Object.fromEntries(Object.entries(byCfg).map(([k, xs]) => [k, { mean: mean(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs }])),
    ]),
  );
  const out = {
    benchmark: 'nondp-defaults',
    backend,
    model: MODEL,
    partners: PARTNERS,
    rounds: ROUNDS,
    seeds: SEEDS,
    alpha: 1,
    holdout: 'each partner 20%, AUC on the pooled hold-out',
    results: summary,
  };
  mkdirSync(dirname(values.out!), { recursive: true });
  writeFileSync(values.out!, `${JSON.stringify(out, null, 2)}\n`);
  for (const [ds, byCfg] of Object.entries(summary)) {
    process.stdout.write(`\n${ds}\n`);
    for (const [k, v] of Object.entries(byCfg)) process.stdout.write(`  ${k.padEnd(60)} ${v.mean.toFixed(4)}  [${v.min.toFixed(4)}, ${v.max.toFixed(4)}]\n`);
  }
}
await main();
