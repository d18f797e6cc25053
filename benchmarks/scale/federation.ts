/**
 * Issue 18 acceptance: a federation of one partner with 10⁶ rows (the bundled bank-marketing rows
 * replicated) and two small ones (4,000 bank rows each) runs the SGD workload with DP (ε = 3,
 * δ = 1e-5) under CKKS at the default hold-out 0.2, through simulate() — the partner runtime, the
 * round machine, CKKS aggregation and the server step the nodes run. Records which partners were
 * summed in every round, the final AUC on every hold-out and each partner's ε.
 *
 *   npx tsx benchmarks/scale/federation.ts [--rows 1000000] [--rounds 5]
 *
 * Writes benchmarks/results/scale-federation.json.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { PARTNER_HOLDOUT, splitPartnerData } from '../../cli/partner-data.ts';
import { loadBundled } from '../../src/data/bundled.ts';
import { subsetDataset } from '../../src/data/encode.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { simulate } from '../../src/federation/simulate.ts';
import { closeWorkers, workerThreads } from '../../src/util/worker-pool.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const rows = arg('rows', 1_000_000);
const rounds = arg('rounds', 5);

const { schema, dataset } = await loadBundled('bank-marketing');
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => (from + i) % dataset.n);
const partners = [
  { name: 'large', ...splitPartnerData(subsetDataset(dataset, range(0, rows)), PARTNER_HOLDOUT, 1) },
  { name: 'small-a', ...splitPartnerData(subsetDataset(dataset, range(20_000, 4_000)), PARTNER_HOLDOUT, 2) },
  { name: 'small-b', ...splitPartnerData(subsetDataset(dataset, range(30_000, 4_000)), PARTNER_HOLDOUT, 3) },
];
const job = jobPreset({ jobId: 'scale-federation', schema, partners: 3, rounds, epsilon: 3, seed: 42 });
const t0 = performance.now();
const r = await simulate({ job, partners, onRound: (x) => console.log(`round ${x.round} (${x.kind}): ${x.partners.join(', ')}`) });
const seconds = (performance.now() - t0) / 1000;
await closeWorkers();
const names = partners.map((p) => p.name).sort();
const same = (xs: string[]) => JSON.stringify([...xs].sort()) === JSON.stringify(names);
// Every round: all three summed, all three signed round records published (the coordinator ledger's
// round contents), and, in every training round, each partner's budget ledger charged (its ε grew).
const everyPartnerEveryRound = r.rounds.every((x) => same(x.partners) && same(x.recorded));
const chargedEveryTrainingRound = r.rounds
  .filter((x) => x.kind === 'train')
  .every((x, k, train) => names.every((p) => x.epsilon[p] > (k === 0 ? 0 : train[k - 1].epsilon[p])));
const out = {
  benchmark: 'federation: one partner of 10^6 rows and two small ones (DP, CKKS)',
  rows: Object.fromEntries(partners.map((p) => [p.name, { train: p.train.n, holdout: p.test.n }])),
  rounds: r.rounds.map((x) => ({ round: x.round, kind: x.kind, partners: x.partners, recorded: x.recorded, declined: x.declined, epsilon: x.epsilon })),
  everyPartnerEveryRound,
  chargedEveryTrainingRound,
  auc: r.finalMetrics.auc,
  holdoutRowsCounted: r.finalMetrics.n,
  epsilon: r.epsilon,
  targetEpsilon: 3,
  delta: 1e-5,
  noiseMultiplier: r.noiseMultiplier,
  threads: workerThreads(),
  seconds,
  loadavgAtEnd: loadavg(),
};
console.log(JSON.stringify(out, null, 2));
writeFileSync(join(import.meta.dirname, '..', 'results', 'scale-federation.json'), `${JSON.stringify(out, null, 2)}\n`);
