/**
 * GBDT benchmarks (see benchmarks/gbdt/README.md):
 *
 *   parity     the in-project pooled histogram GBDT against Python XGBoost `hist` with the same depth,
 *              trees, λ, min_child_weight and bins, on the demo's pooled bank-marketing training rows and
 *              hold-out: once on the encoded features (each side finds its own bins) and once on
 *              fedmark's bins (XGBoost given the bin indices), target |ΔAUC| ≤ 0.005.
 *   federated  an in-process simulation on the demo's 5-way Dirichlet split (the same split and pooled
 *              hold-out as the demo): per-partner statistics noised by each partner and summed in
 *              plaintext — what the federation computes under HE — at ε = 1, 3, 8 per partner (δ = 1e-5)
 *              and without DP, for the histogram, random and hybrid split modes; against pooled
 *              non-private XGBoost and each partner alone. Local CPU time and bytes per tree.
 *
 * Run: npx tsx benchmarks/gbdt/run.ts [--only parity|federated] [--dataset bank|telco] [--reps N] [--quick]
 * Writes benchmarks/results/gbdt-parity.json and benchmarks/results/gbdt-federated.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BundledDatasetName } from '../../src/data/bundled.ts';
import type { Dataset } from '../../src/data/encode.ts';
import { auc } from '../../src/metrics/classification.ts';
import {
  binMatrix,
  featureLayout,
  numericLayout,
  parseGbdtParams,
  predictProba,
  stepsPerTree,
  totalSteps,
  trainFederated,
  trainPooled,
  valuesPerTree,
  type FeatureLayout,
  type GbdtParams,
  type GbdtParamsInput,
} from '../../src/trees/index.ts';
import { createRng } from '../../src/util/rng.ts';
import { demoSplit, type DemoSplit } from './demo-split.ts';
import { findXgboostPython, runXgboost, xgbParams, type Matrix } from './python-xgboost.ts';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const QUICK = flag('--quick');
const REPS = Number(arg('--reps') ?? (QUICK ? 1 : 3));
const ONLY = arg('--only');
const DATASETS: BundledDatasetName[] =
  arg('--dataset') === 'bank' ? ['bank-marketing'] : arg('--dataset') === 'telco' ? ['telco-churn'] : ['bank-marketing', 'telco-churn'];
const EPSILONS = [1, 3, 8];
const say = (m: string) => process.stderr.write(`${m}\n`);

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
const sd = (a: number[]) => (a.length < 2 ? 0 : Math.sqrt(a.reduce((s, x) => s + (x - mean(a)) ** 2, 0) / (a.length - 1)));
const aucOf = (p: ArrayLike<number>, ds: Dataset) => auc(p, ds.y);

/** The encoded matrix with every numeric/binary feature replaced by its fedmark bin index: XGBoost then sees exactly fedmark's candidate splits. */
function binIndexMatrix(layout: FeatureLayout, p: GbdtParams, cuts: number[][], ds: Dataset): Matrix {
  const binned = binMatrix(layout, p, { cuts }, ds.X, ds.n);
  const X = Float32Array.from(ds.X);
  layout.groups.forEach((g, gi) => {
    if (g.kind === 'categorical') return;
    for (let i = 0; i < ds.n; i++) X[i * layout.d + g.feature] = binned.bins[i * binned.groups + gi];
  });
  return { n: ds.n, X, y: ds.y };
}

async function parity(split: DemoSplit): Promise<Record<string, unknown>> {
  const layout = featureLayout(split.schema);
  const { pooledTrain: tr, pooledTest: te } = split;
  const configs: GbdtParamsInput[] = QUICK
    ? [{ trees: 100, depth: 4, learningRate: 0.1 }]
    : [
        { trees: 100, depth: 4, learningRate: 0.1 },
        { trees: 100, depth: 6, learningRate: 0.3 },
        { trees: 300, depth: 3, learningRate: 0.05 },
        { trees: 100, depth: 5, learningRate: 0.1, bins: 64, minChildWeight: 5, lambda: 3 },
      ];
  const rows = [];
  for (const input of configs) {
    const p = parseGbdtParams({ ...input, binEdges: 'dp-quantiles' });
    const t0 = process.cpuUsage();
    const ours = trainPooled(p, layout, tr);
    const cpu = process.cpuUsage(t0);
    const oursAuc = aucOf(predictProba(ours.model, te.X, te.n), te);
    const raw = runXgboost({ d: layout.d, sets: { tr, te }, train: 'tr', predict: ['te'], params: xgbParams(p), rounds: p.trees });
    const cuts = ours.state.edges!.cuts;
    const btr = binIndexMatrix(layout, p, cuts, tr);
    const bte = binIndexMatrix(layout, p, cuts, te);
    // Bin indices are integers 0 … bins−1: with max_bin ≥ 2·bins XGBoost cuts between every pair.
    const same = runXgboost({ d: layout.d, sets: { tr: btr, te: bte }, train: 'tr', predict: ['te'], params: xgbParams(p, 2 * p.bins), rounds: p.trees });
    const schemaP = parseGbdtParams({ ...input, binEdges: 'schema' });
    const schemaAuc = aucOf(predictProba(trainPooled(schemaP, layout, tr).model, te.X, te.n), te);
    const row = {
      params: { trees: p.trees, depth: p.depth, learningRate: p.learningRate, bins: p.bins, lambda: p.lambda, minChildWeight: p.minChildWeight },
      fedmarkAuc: r4(oursAuc),
      fedmarkSchemaEdgesAuc: r4(schemaAuc),
      xgboostAuc: r4(aucOf(raw.predictions.te, te)),
      xgboostOnFedmarkBinsAuc: r4(aucOf(same.predictions.te, te)),
      deltaVsXgboost: r4(oursAuc - aucOf(raw.predictions.te, te)),
      deltaVsXgboostSameBins: r4(oursAuc - aucOf(same.predictions.te, te)),
      fedmarkCpuSeconds: Math.round((cpu.user + cpu.system) / 1e4) / 100,
      xgboostFitSeconds: Math.round(raw.fitSeconds * 100) / 100,
    };
    say(`[parity] ${JSON.stringify(row)}`);
    rows.push(row);
  }
  return { dataset: split.schema.name, trainRows: tr.n, testRows: te.n, features: layout.d, columns: layout.groups.length, target: '|ΔAUC| ≤ 0.005', rows };
}

interface ModeConfig {
  name: string;
  input: GbdtParamsInput;
}

/** The DP modes measured: the private defaults (hybrid) and the same trees split on histograms only, or at random only. */
const MODES: ModeConfig[] = [
  { name: 'hybrid (private defaults: root on histograms, random below)', input: {} },
  { name: 'histogram (every level on histograms)', input: { splitMode: 'histogram' } },
  { name: 'random (Maddock et al.: random splits, leaves only)', input: { splitMode: 'random' } },
];

async function federated(split: DemoSplit): Promise<Record<string, unknown>> {
  const layout = featureLayout(split.schema);
  const te = split.pooledTest;
  const partners = split.partners.map((p) => p.train);
  const plain = parseGbdtParams({});
  const xgbRef = (p: GbdtParams, train: Dataset) =>
    aucOf(runXgboost({ d: layout.d, sets: { train, te }, train: 'train', predict: ['te'], params: xgbParams(p), rounds: p.trees }).predictions.te, te);
  const xgbDefault = { objective: 'binary:logistic', tree_method: 'hist', nthread: 1 };
  const plainRun = trainFederated(plain, layout, partners);
  const baselines = {
    pooledXgboost: r4(xgbRef(plain, split.pooledTrain)),
    pooledXgboostLibraryDefaults: r4(
      aucOf(
        runXgboost({ d: layout.d, sets: { train: split.pooledTrain, te }, train: 'train', predict: ['te'], params: xgbDefault, rounds: 100 }).predictions.te,
        te,
      ),
    ),
    pooledFedmark: r4(aucOf(predictProba(trainPooled(plain, layout, split.pooledTrain).model, te.X, te.n), te)),
    federatedNoDp: r4(aucOf(predictProba(plainRun.model, te.X, te.n), te)),
    federatedNoDpCost: {
      roundsPerJob: totalSteps(plain, layout),
      bytesPerTreePerPartner: valuesPerTree(plain, layout) * 8,
      localCpuMsPerTreePerPartner: Math.round((mean(plainRun.localCpuMs) / plain.trees) * 10) / 10,
    },
    partnersAlone: split.partners.map((p) => ({
      partner: p.name,
      trainRows: p.train.n,
      positiveRate: r4(p.train.y.reduce((a, b) => a + b, 0) / p.train.n),
      fedmark: r4(aucOf(predictProba(trainPooled(plain, layout, p.train).model, te.X, te.n), te)),
      xgboost: r4(xgbRef(plain, p.train)),
    })),
    params: plain,
  };
  const bestAlone = Math.max(...baselines.partnersAlone.map((p) => Math.max(p.fedmark, p.xgboost)));
  say(
    `[federated] ${split.schema.name}: pooled XGBoost ${baselines.pooledXgboost}, fedmark pooled ${baselines.pooledFedmark}, federated ${baselines.federatedNoDp}, best partner alone ${bestAlone}`,
  );
  const modes = [];
  for (const mode of MODES) {
    const perEps = [];
    for (const epsilon of [...EPSILONS, null]) {
      const p = parseGbdtParams({ ...mode.input, dp: { epsilon: epsilon ?? 3 } });
      // Without DP: the same trees (mode, depth, columns …) with no noise — the structure's ceiling.
      const params: GbdtParams = epsilon === null ? { ...p, dp: null } : p;
      const aucs: number[] = [];
      let cpuPerTree = 0;
      let calibratedEpsilon = 0;
      for (let r = 0; r < (epsilon === null ? 1 : REPS); r++) {
        const res = trainFederated(params, layout, partners);
        aucs.push(aucOf(predictProba(res.model, te.X, te.n), te));
        cpuPerTree = mean(res.localCpuMs) / params.trees;
        calibratedEpsilon = res.noise.epsilon;
      }
      const row = {
        epsilon,
        calibratedEpsilon: epsilon === null ? null : r4(calibratedEpsilon),
        auc: r4(mean(aucs)),
        sd: r4(sd(aucs)),
        runs: aucs.map(r4),
        aboveEveryPartnerAlone: mean(aucs) > bestAlone,
        localCpuMsPerTreePerPartner: Math.round(cpuPerTree * 10) / 10,
      };
      say(`[federated] ${split.schema.name} ${mode.name} ε=${epsilon ?? 'none'}: AUC ${row.auc} ± ${row.sd}`);
      perEps.push(row);
    }
    const p = parseGbdtParams({ ...mode.input, dp: { epsilon: 3 } });
    modes.push({
      mode: mode.name,
      params: { ...p, dp: { ...p.dp!, epsilon: 'per row' } },
      roundsPerJob: totalSteps(p, layout),
      roundsPerTree: stepsPerTree(p),
      bytesPerTreePerPartner: valuesPerTree(p, layout) * 8,
      results: perEps,
    });
  }
  return {
    dataset: split.schema.name,
    partners: split.partners.length,
    testRows: te.n,
    delta: 1e-5,
    reps: REPS,
    goal: 'ε = 3: AUC ≥ 0.78 and above every partner alone',
    baselines: { ...baselines, bestPartnerAlone: bestAlone },
    modes,
  };
}

/**
 * Local cost at the size of the design note's anchor (NEXT-CAPABILITIES §3: 50k rows × 20 features ×
 * 32 bins, depth 6, ≈ 75 ms of local CPU per tree): synthetic rows, one partner, histogram levels.
 */
function scaling(): Record<string, unknown> {
  const n = 50_000;
  const d = 20;
  const layout = numericLayout(Array.from({ length: d }, (_, j) => ({ name: `x${j}`, lo: 0, hi: 1 })));
  const rng = createRng(1);
  const X = new Float32Array(n * d);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let z = -2;
    for (let j = 0; j < d; j++) {
      const v = rng.next();
      X[i * d + j] = v;
      if (j < 4) z += (j % 2 ? -1.5 : 1.5) * v;
    }
    y[i] = rng.next() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  const rows = [];
  for (const input of [{ depth: 6 }, { depth: 6, dp: { epsilon: 3 }, splitMode: 'histogram' as const, columnsPerTree: 20 }, { dp: { epsilon: 3 } }]) {
    const p = parseGbdtParams({ trees: QUICK ? 3 : 10, bins: 32, ...input });
    const res = trainFederated(p, layout, [{ n, d, X, y }]);
    rows.push({
      params: { depth: p.depth, splitMode: p.splitMode, columnsPerTree: p.columnsPerTree, dp: p.dp ? p.dp.epsilon : null },
      localCpuMsPerTree: Math.round((res.localCpuMs[0] / p.trees) * 10) / 10,
      bytesPerTree: valuesPerTree(p, layout) * 8,
    });
    say(`[scaling] ${JSON.stringify(rows[rows.length - 1])}`);
  }
  return { rows: n, features: d, bins: 32, results: rows };
}

async function main(): Promise<void> {
  const py = findXgboostPython();
  if (py.python === null) throw new Error(`the GBDT benchmarks compare with Python XGBoost: ${py.reason}`);
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    xgboost: py.version,
    reps: REPS,
    quick: QUICK,
  };
  const out = join(here, '..', 'results');
  await mkdir(out, { recursive: true });
  const splits = new Map<BundledDatasetName, DemoSplit>();
  const get = async (d: BundledDatasetName) => splits.get(d) ?? (splits.set(d, await demoSplit(d)), splits.get(d)!);
  if (ONLY !== 'federated') {
    const res = await parity(await get('bank-marketing'));
    await writeFile(join(out, 'gbdt-parity.json'), `${JSON.stringify({ ...meta, ...res }, null, 2)}\n`);
    say(`wrote ${join(out, 'gbdt-parity.json')}`);
  }
  if (ONLY !== 'parity') {
    const all = [];
    for (const d of DATASETS) all.push(await federated(await get(d)));
    await writeFile(join(out, 'gbdt-federated.json'), `${JSON.stringify({ ...meta, datasets: all, scaling: scaling() }, null, 2)}\n`);
    say(`wrote ${join(out, 'gbdt-federated.json')}`);
  }
}

await main();
