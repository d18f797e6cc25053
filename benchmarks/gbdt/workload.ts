/**
 * The GBDT workload through the federation engine: `simulate()` — the partner runtime (authorize,
 * charge, noise, encrypt), the round machine, CKKS aggregation of the histogram parts and every key
 * holder's server step — on the demo's 5-way split (benchmarks/gbdt/demo-split.ts, the same split as
 * `fedmark demo`), with the job defaults of `gbdtJobPreset` (the private defaults: cyclic terms).
 * Against: the in-project pooled GBDT and each partner alone, both non-private with the non-private
 * defaults (100 depth-4 trees), AUC on the pooled hold-out. Reports ε spent per partner, rounds,
 * wall time per job and per round (in-process, one core; not the 5-process figure), and the
 * bytes a partner uploads per round. Each (dataset, ε) runs once: DP noise comes from the CSPRNG.
 *
 * Run: npx tsx benchmarks/gbdt/workload.ts [--dataset bank|telco] [--epsilon 1,3,8] [--plaintext]
 * Writes benchmarks/results/gbdt-workload.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BundledDatasetName } from '../../src/data/bundled.ts';
import type { Dataset } from '../../src/data/encode.ts';
import { simulate } from '../../src/federation/simulate.ts';
import { planOf } from '../../src/federation/workload.ts';
import { gbdtJobPreset, gbdtModel, gbdtSettings, gbdtWorkload } from '../../src/federation/workloads/gbdt/index.ts';
import type { FederatedEvalMetrics } from '../../src/metrics/histogram.ts';
import { auc } from '../../src/metrics/classification.ts';
import { featureLayout, modelFromState, parseGbdtParams, predictProba, trainPooled, type GbdtState } from '../../src/trees/index.ts';
import { demoSplit, DEMO_SEED } from './demo-split.ts';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const DATASETS: BundledDatasetName[] =
  arg('--dataset') === 'bank' ? ['bank-marketing'] : arg('--dataset') === 'telco' ? ['telco-churn'] : ['bank-marketing', 'telco-churn'];
const EPSILONS = (arg('--epsilon') ?? '1,3,8').split(',').map(Number);
const PLAINTEXT = argv.includes('--plaintext');
const say = (m: string) => process.stderr.write(`${m}\n`);
const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

async function benchDataset(name: BundledDatasetName) {
  const split = await demoSplit(name);
  const test = split.pooledTest;
  const aucOf = (p: ArrayLike<number>) => auc(p, test.y);
  const layout = featureLayout(split.schema);
  const plain = parseGbdtParams({ seed: DEMO_SEED, dp: null });
  const treesAuc = (train: Dataset) => r4(aucOf(predictProba(modelFromState(trainPooled(plain, layout, train).state), test.X, test.n)));
  const pooled = treesAuc(split.pooledTrain);
  const alone = Object.fromEntries(split.partners.map((p) => [p.name, treesAuc(p.train)]));
  const bestAlone = Math.max(...Object.values(alone));
  say(`${name}: pooled (no DP) ${pooled}, best partner alone ${bestAlone}`);
  const runs = [];
  for (const epsilon of EPSILONS) {
    const job = gbdtJobPreset({
      jobId: `bench-${name}-${epsilon}`,
      schema: split.schema,
      partners: split.partners.length,
      epsilon,
      seed: DEMO_SEED,
      encryption: PLAINTEXT ? { scheme: 'plain-insecure' } : undefined,
    });
    const t0 = performance.now();
    const r = await simulate<GbdtState, FederatedEvalMetrics>({ job, partners: split.partners });
    const wall = (performance.now() - t0) / 1000;
    const s = gbdtSettings(r.manifest);
    // Values one partner uploads over the job (state parts), before encryption.
    let values = 0;
    for (let round = 1; round <= r.manifest.rounds; round++) values += planOf(gbdtWorkload, r.manifest, round).parts.reduce((a, p) => a + p.length, 0);
    const federated = r4(aucOf(predictProba(gbdtModel(r.state), test.X, test.n)));
    const run = {
      epsilon,
      delta: r.manifest.dp?.delta ?? null,
      splitMode: s.params.splitMode,
      rounds: r.manifest.rounds,
      trees: gbdtModel(r.state).trees.length,
      auc: {
        federated,
        fromEncryptedHistograms: r4(r.finalMetrics.auc),
        pooledNoDp: pooled,
        bestPartnerAloneNoDp: bestAlone,
        minusPooled: r4(federated - pooled),
        minusBestAlone: r4(federated - bestAlone),
      },
      epsilonSpent: Object.fromEntries(Object.entries(r.epsilon).map(([k, v]) => [k, r4(v)])),
      wallSeconds: r4(wall),
      wallSecondsPerRound: r4(wall / (r.manifest.rounds + 1)),
      valuesPerPartner: values,
      largestPartBytes: r.wireBytes.update,
      bytesPerValue: r4(r.wireBytes.perParameter),
    };
    say(`${name} ε=${epsilon}: federated ${federated} (pooled ${pooled}, best alone ${bestAlone}), ${run.rounds} rounds, ${run.wallSeconds} s`);
    runs.push(run);
  }
  return {
    dataset: name,
    partners: split.partners.map((p) => ({ name: p.name, trainRows: p.train.n, testRows: p.test.n })),
    pooledTestRows: test.n,
    pooledNoDp: pooled,
    aloneNoDp: alone,
    runs,
  };
}

const results = [];
for (const name of DATASETS) results.push(await benchDataset(name));
const out = join(here, '..', 'results', 'gbdt-workload.json');
await mkdir(dirname(out), { recursive: true });
await writeFile(
  out,
  JSON.stringify(
    {
      generatedAt: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: os.loadavg(),
      encryption: PLAINTEXT ? 'plain-insecure' : 'ckks',
      results,
    },
    null,
    2,
  ),
);
say(`wrote ${out}`);
