/**
 * The GBDT table over real nodes: `fedmark demo --model gbdt` (runDemo: a coordinator and 5 partner
 * PROCESSES on 127.0.0.1 talking HTTP, the owner in this process, CKKS aggregation) on the demo's
 * split, at ε = 1, 3, 8 per partner (δ = 1e-5) and without DP, on bank marketing and telco churn.
 *
 * Per run: the federated trees' AUC on the pooled hold-out (and the owner's estimate from the noised
 * evaluation histograms), the demo's baselines (the in-project pooled GBDT and each partner alone,
 * non-private defaults), pooled Python XGBoost `hist` with the same parameters, each partner alone
 * with the job's own private parameters at the same ε (in process: the same steps on its rows only,
 * its own noise), ε spent per partner, and from the coordinator's log: job wall time (first round
 * opened → last round closed), per round and per released tree, and bytes each partner uploaded per
 * tree (HTTP bodies, CKKS ciphertexts). A cyclic (additive) model's trees are its terms plus the
 * intercept: each is exported as one XGBoost tree.
 *
 * Run: npx tsx benchmarks/gbdt/processes.ts [--dataset bank|telco] [--epsilon 1,3,8,none]
 * Writes benchmarks/results/gbdt-processes.json (≈ 2 min per run on the shared 2-core machine).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDemo } from '../../cli/demo.ts';
import type { BundledDatasetName } from '../../src/data/bundled.ts';
import { gbdtJobPreset, gbdtSettings } from '../../src/federation/workloads/gbdt/index.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { auc } from '../../src/metrics/classification.ts';
import { featureLayout, parseGbdtParams, predictProba, trainPooled } from '../../src/trees/index.ts';
import { DEMO_ALPHA, DEMO_PARTNERS, DEMO_SEED, demoSplit } from './demo-split.ts';
import { findXgboostPython, runXgboost, xgbParams } from './python-xgboost.ts';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const DATASETS: ('bank' | 'telco')[] = arg('--dataset') === 'bank' ? ['bank'] : arg('--dataset') === 'telco' ? ['telco'] : ['bank', 'telco'];
const EPSILONS = (arg('--epsilon') ?? '1,3,8,none').split(',').map((e) => (e === 'none' ? null : Number(e)));
const say = (m: string) => process.stderr.write(`${m}\n`);
const r4 = (x: number) => Math.round(x * 1e4) / 1e4;
const FULL: Record<'bank' | 'telco', BundledDatasetName> = { bank: 'bank-marketing', telco: 'telco-churn' };

interface LogLine {
  msg?: string;
  time?: number;
  round?: number;
  keyId?: string;
  bytes?: number;
}

/** Round timing and upload bytes from the coordinator's pino log. */
function coordinatorCosts(out: string, trainingRounds: number) {
  const lines = readFileSync(join(out, 'logs', 'coordinator.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
  const opened = lines.filter((l) => l.msg === 'round opened');
  const closed = lines.filter((l) => l.msg === 'round closed');
  const lastTraining = closed.filter((l) => (l.round ?? 0) <= trainingRounds).at(-1);
  const start = opened[0]?.time ?? NaN;
  const bytes = new Map<string, number>();
  for (const l of lines)
    if (l.msg === 'submission accepted' && (l.round ?? 0) <= trainingRounds && l.keyId) bytes.set(l.keyId, (bytes.get(l.keyId) ?? 0) + (l.bytes ?? 0));
  return {
    jobSeconds: ((closed.at(-1)?.time ?? NaN) - start) / 1000,
    trainingSeconds: ((lastTraining?.time ?? NaN) - start) / 1000,
    uploadBytesPerPartner: [...bytes.values()],
  };
}

async function one(dataset: 'bank' | 'telco', epsilon: number | null) {
  const out = mkdtempSync(join(os.tmpdir(), `fedmark-gbdt-bench-${dataset}-`));
  const load = os.loadavg().map((l) => Math.round(l * 100) / 100);
  try {
    const s = await runDemo({
      dataset,
      partners: DEMO_PARTNERS,
      rounds: 1,
      out,
      json: false,
      seed: DEMO_SEED,
      epsilon,
      insecurePlaintext: false,
      model: 'gbdt',
      alpha: DEMO_ALPHA,
    });
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as JobManifest;
    const trees = (JSON.parse(readFileSync(join(out, 'model.xgb.json'), 'utf8')) as { learner: { gradient_booster: { model: { trees: unknown[] } } } }).learner
      .gradient_booster.model.trees.length;
    const c = coordinatorCosts(out, s.rounds);
    const meanBytes = c.uploadBytesPerPartner.reduce((a, b) => a + b, 0) / c.uploadBytesPerPartner.length;
    return {
      epsilon,
      splitMode: gbdtSettings(manifest).params.splitMode,
      auc: {
        federated: r4(s.auc.federated),
        ownerEstimateFromNoisedHistograms: r4(s.auc.federatedFromHistograms),
        pooledFedmarkNoDp: r4(s.auc.centralized),
        partnersAloneNoDp: s.auc.local,
      },
      epsilonSpent: s.privacy ? Object.fromEntries(Object.entries(s.privacy.epsilon).map(([k, v]) => [k, r4(v)])) : null,
      auditOk: s.audit.ok,
      rounds: s.rounds + 1,
      releasedTrees: trees,
      jobSeconds: r4(c.jobSeconds),
      trainingSeconds: r4(c.trainingSeconds),
      secondsPerRound: r4(c.jobSeconds / (s.rounds + 1)),
      secondsPerTree: r4(c.trainingSeconds / trees),
      bytesPerPartnerPerTree: Math.round(meanBytes / trees),
      bytesPerPartnerPerJob: Math.round(meanBytes),
      demoWallSeconds: r4(s.wallSeconds),
      loadAverageAtStart: load,
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** In process, no nodes: pooled XGBoost, and each partner alone with the job's private parameters at the same ε. */
async function references(dataset: 'bank' | 'telco') {
  const split = await demoSplit(FULL[dataset]);
  const layout = featureLayout(split.schema);
  const te = split.pooledTest;
  const plain = parseGbdtParams({ seed: DEMO_SEED });
  const xgb = runXgboost({ d: layout.d, sets: { tr: split.pooledTrain, te }, train: 'tr', predict: ['te'], params: xgbParams(plain), rounds: plain.trees });
  const aloneAt = (epsilon: number) => {
    const job = gbdtJobPreset({ jobId: 'alone', schema: split.schema, partners: DEMO_PARTNERS, epsilon, seed: DEMO_SEED });
    // The job's trees at the trees' share of ε, as the federation resolves them (settings read no party fields).
    const p = gbdtSettings(job as JobManifest).params;
    return Object.fromEntries(split.partners.map((x) => [x.name, r4(auc(predictProba(trainPooled(p, layout, x.train).model, te.X, te.n), te.y))]));
  };
  return {
    pooledXgboostNoDp: r4(auc(xgb.predictions.te, te.y)),
    xgboostParams: xgbParams(plain),
    partnersAloneAtEpsilon: Object.fromEntries(EPSILONS.filter((e): e is number => e !== null).map((e) => [String(e), aloneAt(e)])),
  };
}

const py = findXgboostPython();
if (py.python === null) throw new Error(`the GBDT table compares with Python XGBoost: ${py.reason}`);
const outPath = join(here, '..', 'results', 'gbdt-processes.json');
await mkdir(dirname(outPath), { recursive: true });
type Doc = { results: { dataset: string; runs: { epsilon: number | null }[] }[] } & Record<string, unknown>;
// A run takes minutes: the file is rewritten after each one, and runs of earlier invocations (other ε) are kept.
let doc: Doc = { results: [] };
try {
  doc = JSON.parse(readFileSync(outPath, 'utf8')) as Doc;
} catch {
  // no earlier results
}
for (const dataset of DATASETS) {
  const ref = await references(dataset);
  const kept = doc.results.find((x) => x.dataset === FULL[dataset])?.runs.filter((r) => !EPSILONS.includes(r.epsilon)) ?? [];
  const entry = { dataset: FULL[dataset], ...ref, runs: kept };
  doc.results = [...doc.results.filter((x) => x.dataset !== FULL[dataset]), entry];
  for (const epsilon of EPSILONS) {
    const r = await one(dataset, epsilon);
    say(`[processes] ${dataset} ε=${epsilon ?? 'none'}: ${JSON.stringify(r)}`);
    entry.runs = [...entry.runs, r].sort((a, b) => (a.epsilon ?? Infinity) - (b.epsilon ?? Infinity));
    doc = {
      ...doc,
      generatedAt: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      xgboost: py.version,
      partners: DEMO_PARTNERS,
      delta: 1e-5,
    };
    await writeFile(outPath, `${JSON.stringify(doc, null, 2)}\n`);
  }
}
say(`wrote ${outPath}`);
process.exit(0);
