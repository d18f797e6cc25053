/**
 * Convergence of federated logistic regression against a pooled, converged LR (issue 16).
 *
 * For each bundled dataset (bank marketing, telco churn) with the demo's split — partitionDirichlet
 * over 5 partners (α = 1, seed 42), each partner's own 80/20 train/hold-out (cli/partner-data.ts) —
 *   - reference: Newton/IRLS logistic regression on the pooled training rows, converged, the same
 *     encoded features (src/train/newton-lr.ts; scikit-learn is not installed here), scored on the
 *     pooled hold-out;
 *   - federated: simulate() with CKKS (default HE parameters), 20 rounds, at ε = 3 per partner
 *     (δ = 1e-5; each DP run repeated, the noise is a CSPRNG's) and without DP, for every recipe:
 *     the current job preset and the server optimizers / schedules of issue 16.
 * AUC of the final model on the pooled hold-out (computed here from the released parameters), and
 * the gap to the reference. `selection` names the dataset a preset may be chosen on; the other is
 * reported, not tuned on.
 *
 * Run: npx tsx benchmarks/convergence/run.ts [--reps N (default 1)] [--rounds R (default 20)] [--all | --recipes a,b]
 *        [--epsilon E (default 3)] [--datasets bank-marketing,telco-churn] [--skip-nonprivate] [--out file.json]
 *        [--local '{"samplingRate":0.05}' (merged into the training job's localTraining)]
 *        [--declared (the split's training rows as the partners' declared sizes: q = batch / mean)]
 * Writes benchmarks/results/convergence.json (or --out, in benchmarks/results/): the preset
 * experiments of docs/MODELS.md run subsets (one ε, one dataset) into their own files.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundledPartners } from '../../cli/partner-data.ts';
import { concatDatasets, type Dataset } from '../../src/data/encode.ts';
import type { BundledDatasetName } from '../../src/data/bundled.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { featureStatsPreset, standardizedTrainingPreset } from '../../src/federation/presets/standardized.ts';
import type { FeatureStats } from '../../src/federation/workloads/feature-stats/index.ts';
import { foldStandardization } from '../../src/federation/workloads/sgd/standardize.ts';
import { sgdModel } from '../../src/federation/workloads/sgd/index.ts';
import { simulate, type SimulationJob } from '../../src/federation/simulate.ts';
import { auc } from '../../src/metrics/classification.ts';
import { initBackend } from '../../src/model/backend.ts';
import { predictProba } from '../../src/model/params.ts';
import { fitLogisticNewton, predictLogisticNewton } from '../../src/train/newton-lr.ts';
import { RECIPES, type Recipe } from './recipes.ts';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
};
const REPS = Number(arg('--reps') ?? 1);
const ROUNDS = Number(arg('--rounds') ?? 20);
const PARTNERS = 5;
const ALPHA = 1;
const SEED = 42;
const EPSILON = Number(arg('--epsilon') ?? 3);
const DELTA = 1e-5;
const SELECTION: BundledDatasetName = 'bank-marketing';
const DATASETS = (arg('--datasets')?.split(',') ?? ['bank-marketing', 'telco-churn']) as BundledDatasetName[];
const SKIP_NON_PRIVATE = argv.includes('--skip-nonprivate');
const OUT = arg('--out') ?? 'convergence.json';
/** Pass the split's training rows as the partners' declared sizes (jobPreset declaredRows: q = batch / mean). */
const DECLARED = argv.includes('--declared');
const LOCAL = JSON.parse(arg('--local') ?? '{}') as Partial<SimulationJob['localTraining']>;
const wanted = arg('--recipes')?.split(',');
const recipes = RECIPES.filter((r) => (wanted ? wanted.includes(r.name) : argv.includes('--all') || r.default));
const log = (s: string) => process.stderr.write(`${s}\n`);
const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

function pooledReference(train: Dataset, test: Dataset) {
  const t0 = performance.now();
  const fit = fitLogisticNewton(train.X, train.y, train.n, train.d, { l2: 1e-4 });
  return {
    auc: auc(predictLogisticNewton(fit, test.X, test.n), test.y),
    iterations: fit.iterations,
    converged: fit.converged,
    l2: 1e-4,
    seconds: (performance.now() - t0) / 1000,
  };
}

async function federated(recipe: Recipe, epsilon: number | null, split: Awaited<ReturnType<typeof bundledPartners>>, pooledTest: Dataset) {
  const partners = split.splits.map((s, i) => ({ name: split.names[i], train: s.train, test: s.test }));
  const o = {
    jobId: `conv-${recipe.name}`,
    schema: split.schema,
    partners: PARTNERS,
    rounds: ROUNDS,
    epsilon,
    delta: DELTA,
    seed: SEED,
    ...(recipe.model ? { model: recipe.model } : {}),
    ...(recipe.earlyStopping ? { earlyStopping: recipe.earlyStopping } : {}),
    ...(DECLARED ? { declaredRows: split.splits.map((s) => s.train.n) } : {}),
  };
  const t0 = performance.now();
  let job: SimulationJob = jobPreset(o);
  let statsEpsilon = 0;
  if (recipe.standardize) {
    const stats = await simulate<FeatureStats, FeatureStats>({ job: featureStatsPreset(o), partners });
    statsEpsilon = Math.max(0, ...Object.values(stats.epsilon));
    job = standardizedTrainingPreset(o, stats.state);
  }
  if (recipe.strategy) job = { ...job, strategy: recipe.strategy };
  job = { ...job, localTraining: { ...job.localTraining, ...LOCAL } };
  const r = await simulate({ job, partners });
  const d = split.full.d;
  // The model on the encoded features (the standardisation folded in), scored on the pooled hold-out.
  const params = foldStandardization(r.manifest, r.params);
  const a = auc(predictProba(sgdModel(job), d, params, pooledTest.X, pooledTest.n), pooledTest.y);
  // Budgets of the two jobs add (basic composition across jobs).
  return {
    auc: a,
    maxEpsilon: statsEpsilon + Math.max(0, ...Object.values(r.epsilon)),
    seconds: (performance.now() - t0) / 1000,
    ...(r.selection ? { selection: r.selection } : {}),
  };
}

async function main(): Promise<void> {
  const backend = await initBackend();
  const out: Record<string, unknown> = {};
  for (const name of DATASETS) {
    const split = await bundledPartners(name, PARTNERS, ALPHA, SEED);
    const pooledTrain = concatDatasets(split.splits.map((s) => s.train));
    const pooledTest = concatDatasets(split.splits.map((s) => s.test));
    const ref = pooledReference(pooledTrain, pooledTest);
    log(`${name}: ${split.full.n} rows, d=${split.full.d}; pooled Newton LR AUC ${ref.auc.toFixed(4)} (${ref.iterations} iterations)`);
    const results = [];
    for (const recipe of recipes) {
      const nonDp = SKIP_NON_PRIVATE ? null : await federated(recipe, null, split, pooledTest);
      const dpRuns = [];
      for (let k = 0; k < REPS; k++) dpRuns.push(await federated(recipe, EPSILON, split, pooledTest));
      const mean = dpRuns.reduce((s, x) => s + x.auc, 0) / dpRuns.length;
      const row = {
        recipe: recipe.name,
        description: recipe.description,
        standardize: recipe.standardize,
        model: recipe.model?.kind ?? 'logistic',
        nonPrivate: nonDp && {
          auc: r4(nonDp.auc),
          gap: r4(ref.auc - nonDp.auc),
          seconds: r4(nonDp.seconds),
          ...(nonDp.selection ? { selection: nonDp.selection } : {}),
        },
        dp: {
          epsilon: EPSILON,
          delta: DELTA,
          runs: dpRuns.map((x) => r4(x.auc)),
          aucMean: r4(mean),
          gap: r4(ref.auc - mean),
          maxEpsilonSpent: r4(Math.max(...dpRuns.map((x) => x.maxEpsilon))),
          secondsPerRun: r4(dpRuns.reduce((s, x) => s + x.seconds, 0) / dpRuns.length),
          ...(recipe.earlyStopping ? { selections: dpRuns.map((x) => x.selection ?? null) } : {}),
        },
      };
      log(
        `  ${recipe.name.padEnd(22)} non-DP ${nonDp ? `${nonDp.auc.toFixed(4)} (gap ${(ref.auc - nonDp.auc).toFixed(4)})` : 'skipped'}  ε=${EPSILON} ${mean.toFixed(4)} (gap ${(ref.auc - mean).toFixed(4)}) [${dpRuns.map((x) => x.auc.toFixed(4)).join(', ')}]`,
      );
      results.push(row);
    }
    out[name] = {
      rows: split.full.n,
      features: split.full.d,
      partners: split.splits.map((s, i) => ({ name: split.names[i], trainRows: s.train.n, holdoutRows: s.test.n })),
      pooledHoldoutRows: pooledTest.n,
      reference: {
        solver: 'Newton/IRLS (src/train/newton-lr.ts), pooled training rows',
        auc: r4(ref.auc),
        iterations: ref.iterations,
        converged: ref.converged,
        l2: ref.l2,
      },
      results,
    };
  }
  const report = {
    benchmark: 'convergence',
    date: new Date().toISOString(),

    machine: { cpus: os.cpus().length, node: process.version, backend, note: 'shared cores; seconds are indicative only' },
    setup: {
      partners: PARTNERS,
      alpha: ALPHA,
      seed: SEED,
      rounds: ROUNDS,
      encryption: 'CKKS (DEFAULT_HE_PARAMS)',
      repetitionsPerDpRecipe: REPS,
      epsilon: EPSILON,
      localTrainingOverride: LOCAL,
      declaredRows: DECLARED,
      selection: SELECTION,
      goals: { dpGap: 0.01, nonPrivateGap: 0.005 },
    },
    ...out,
  };
  const file = join(here, '..', 'results', OUT);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote ${file}`);
}

await main();
