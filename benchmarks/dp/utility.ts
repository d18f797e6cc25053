/**
 * Utility cost of privacy on the bundled UCI bank-marketing data (`duration` is dropped by its
 * schema): AUC on the pooled hold-out of
 *   - federated HE+DP training: simulate() with CKKS (default HE params) and the job preset's DP-SGD
 *     at ε ∈ {0.5, 1, 3, 8} (δ = 1e-5), several repetitions each because DP noise comes from a CSPRNG;
 *   - federated without DP (jobPreset epsilon: null);
 *   - centralized without DP: trainLocal on the pooled training rows, the better of two configs,
 *     for as many epochs as the federated job has rounds.
 * The split is the demo's (cli/demo.ts): partitionDirichlet(y, 5, α = 1, seed) and each partner's
 * splitPartnerData(rows, 0.2, seed), so the pooled hold-out is the same rows the demo scores.
 *
 * A sweep at ε = 3 over the preset's DP hyper-parameters (sampling rate q, learning rate, clip norm)
 * checks whether the preset (q 0.02, lr 0.5, C 1) is a reasonable choice; the best sweep setting is
 * then re-run at every ε beside the preset.
 *
 * Run: npx tsx benchmarks/dp/utility.ts [--quick] [--reps N] [--rounds N] [--no-sweep]
 * Writes benchmarks/results/dp-utility.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitPartnerData } from '../../cli/partner-data.ts';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { concatDatasets, loadDataset, subsetDataset, type Dataset } from '../../src/data/encode.ts';
import { partitionDirichlet } from '../../src/data/partition.ts';
import { loadSchema } from '../../src/data/schema.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { simulate, type SimulationJob } from '../../src/federation/simulate.ts';
import { auc } from '../../src/metrics/classification.ts';
import { initBackend } from '../../src/model/backend.ts';
import { initParameters, predictProba } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { trainLocal, type LocalTrainConfig } from '../../src/train/local.ts';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const numArg = (name: string, fallback: number): number => {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v < 1) throw new Error(`${name} needs a positive number, got ${argv[i + 1]}`);
  return v;
};
const ROUNDS = numArg('--rounds', 20);
const REPS = numArg('--reps', quick ? 1 : 3);
const SWEEP = !argv.includes('--no-sweep');
const SEED = 42;
const PARTNERS = 5;
const ALPHA = 1;
const HOLDOUT = 0.2;
const EPSILONS = [0.5, 1, 3, 8];
const TARGET = { epsilon: 3, maxGap: 0.02 };
const MODEL: ModelSpec = { kind: 'logistic' };

/** DP hyper-parameters the sweep varies (everything else is the preset's). */
interface DpKnobs {
  samplingRate: number;
  learningRate: number;
  clipNorm: number;
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

function stats(xs: number[]): { mean: number; sd: number; min: number; max: number; runs: number[] } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: round4(mean), sd: round4(sd), min: round4(Math.min(...xs)), max: round4(Math.max(...xs)), runs: xs.map(round4) };
}

async function main(): Promise<void> {
  const started = new Date();
  const backend = await initBackend({ log: () => {} });
  const bundled = BUNDLED_DATASETS['bank-marketing'];
  const schema = await loadSchema(bundled.schema);
  const full = await loadDataset(bundled.csv, schema);
  const d = full.d;
  const parts = partitionDirichlet(full.y, PARTNERS, ALPHA, SEED);
  const splits = parts.map((idx) => splitPartnerData(subsetDataset(full, idx), HOLDOUT, SEED));
  const partners = splits.map((s, i) => ({ name: `partner-${String.fromCharCode(97 + i)}`, train: s.train, test: s.test }));
  const pooledTrain = concatDatasets(splits.map((s) => s.train));
  const pooledTest = concatDatasets(splits.map((s) => s.test));
  const aucOf = (params: Float64Array, data: Dataset = pooledTest) => auc(predictProba(MODEL, d, params, data.X, data.n), data.y);
  const positives = (ds: Dataset) => ds.y.reduce((a, b) => a + b, 0);
  log(`bank-marketing: ${full.n} rows, d=${d}; partners ${splits.map((s) => `${s.train.n}+${s.test.n}`).join(', ')} (train+hold-out); backend ${backend}`);

  // Centralized, no DP: the better of two standard configs for as many epochs as the job has rounds.
  const centralConfigs: (Omit<LocalTrainConfig, 'seed' | 'epochs'> & { label: string })[] = [
    { label: 'sgd lr 0.1 batch 64', batchSize: 64, learningRate: 0.1, optimizer: 'sgd' },
    { label: 'adam lr 0.01 batch 64', batchSize: 64, learningRate: 0.01, optimizer: 'adam' },
  ];
  const init = initParameters(MODEL, d, SEED);
  const centralized: { config: string; epochs: number; auc: number }[] = [];
  for (const { label, ...cfg } of centralConfigs) {
    const res = await trainLocal(MODEL, d, init, pooledTrain, { ...cfg, epochs: ROUNDS, seed: SEED });
    centralized.push({ config: label, epochs: ROUNDS, auc: round4(aucOf(res.params)) });
    log(`centralized ${label}: AUC ${aucOf(res.params).toFixed(4)}`);
  }
  const bestCentral = centralized.reduce((a, b) => (b.auc > a.auc ? b : a));

  let runCount = 0;
  async function federated(
    epsilon: number | null,
    knobs?: DpKnobs,
  ): Promise<{ auc: number; aucFromHistograms: number; noiseMultiplier: number | null; maxEpsilonSpent: number; seconds: number }> {
    const preset = jobPreset({ jobId: `utility-${++runCount}`, schema, partners: PARTNERS, rounds: ROUNDS, model: MODEL, epsilon, seed: SEED });
    const job: SimulationJob =
      knobs && preset.dp
        ? {
            ...preset,
            localTraining: { ...preset.localTraining, samplingRate: knobs.samplingRate, learningRate: knobs.learningRate },
            dp: { ...preset.dp, clipNorm: knobs.clipNorm },
          }
        : preset;
    const res = await simulate({ job, partners });
    const spent = Object.values(res.epsilon);
    return {
      auc: aucOf(res.params),
      aucFromHistograms: res.finalMetrics.auc,
      noiseMultiplier: res.noiseMultiplier,
      maxEpsilonSpent: spent.length ? Math.max(...spent) : 0,
      seconds: res.wallSeconds,
    };
  }

  const nonPrivate = await federated(null);
  log(`federated, no DP: AUC ${nonPrivate.auc.toFixed(4)} (${nonPrivate.seconds.toFixed(1)} s)`);

  async function atEpsilon(epsilon: number, knobs?: DpKnobs) {
    const runs = [];
    for (let r = 0; r < REPS; r++) runs.push(await federated(epsilon, knobs));
    const a = stats(runs.map((x) => x.auc));
    const out = {
      epsilon,
      noiseMultiplier: round4(runs[0].noiseMultiplier ?? NaN),
      maxEpsilonSpent: round4(Math.max(...runs.map((x) => x.maxEpsilonSpent))),
      auc: a,
      aucFromHistogramsMean: round4(runs.reduce((s, x) => s + x.aucFromHistograms, 0) / runs.length),
      gapToCentralized: round4(bestCentral.auc - a.mean),
      gapToFederatedNonPrivate: round4(nonPrivate.auc - a.mean),
      secondsPerRun: round4(runs.reduce((s, x) => s + x.seconds, 0) / runs.length),
    };
    log(
      `  ε=${epsilon}${knobs ? ` q=${knobs.samplingRate} lr=${knobs.learningRate} C=${knobs.clipNorm}` : ' (preset)'}: σ=${out.noiseMultiplier}, AUC ${a.mean.toFixed(4)} ± ${a.sd.toFixed(4)}, gap ${out.gapToCentralized.toFixed(4)}`,
    );
    return out;
  }

  const presetKnobs: DpKnobs = (() => {
    const p = jobPreset({ jobId: 'probe', schema, partners: PARTNERS, epsilon: 3 });
    return { samplingRate: p.localTraining.samplingRate!, learningRate: p.localTraining.learningRate, clipNorm: p.dp!.clipNorm };
  })();
  log(`federated HE+DP with the preset (q=${presetKnobs.samplingRate}, lr=${presetKnobs.learningRate}, C=${presetKnobs.clipNorm}), ${REPS} run(s) per ε:`);
  const presetResults = [];
  for (const eps of EPSILONS) presetResults.push(await atEpsilon(eps));

  // Sweep at ε = 3: one run per grid point, then the best few (and the preset) re-run REPS times
  // so a lucky draw of the DP noise does not pick the winner.
  let sweep: null | {
    epsilon: number;
    grid: { samplingRate: number[]; learningRate: number[]; clipNorm: number[] };
    screening: (DpKnobs & { auc: number; noiseMultiplier: number })[];
    confirmed: (DpKnobs & { auc: ReturnType<typeof stats> })[];
    best: DpKnobs & { auc: ReturnType<typeof stats> };
  } = null;
  let tunedResults: Awaited<ReturnType<typeof atEpsilon>>[] = [];
  if (SWEEP) {
    const grid = quick
      ? { samplingRate: [0.02, 0.05], learningRate: [0.5, 2], clipNorm: [1] }
      : { samplingRate: [0.01, 0.02, 0.05, 0.1], learningRate: [0.25, 0.5, 1, 2], clipNorm: [0.5, 1, 2] };
    log(`sweep at ε=${TARGET.epsilon}: ${grid.samplingRate.length * grid.learningRate.length * grid.clipNorm.length} settings`);
    const screening: (DpKnobs & { auc: number; noiseMultiplier: number })[] = [];
    for (const samplingRate of grid.samplingRate)
      for (const learningRate of grid.learningRate)
        for (const clipNorm of grid.clipNorm) {
          const r = await federated(TARGET.epsilon, { samplingRate, learningRate, clipNorm });
          screening.push({ samplingRate, learningRate, clipNorm, auc: round4(r.auc), noiseMultiplier: round4(r.noiseMultiplier ?? NaN) });
          log(`  q=${samplingRate} lr=${learningRate} C=${clipNorm}: σ=${r.noiseMultiplier?.toFixed(3)} AUC ${r.auc.toFixed(4)}`);
        }
    const same = (a: DpKnobs, b: DpKnobs) => a.samplingRate === b.samplingRate && a.learningRate === b.learningRate && a.clipNorm === b.clipNorm;
    const top = [...screening].sort((a, b) => b.auc - a.auc).slice(0, quick ? 1 : 3);
    const candidates: DpKnobs[] = top.map(({ samplingRate, learningRate, clipNorm }) => ({ samplingRate, learningRate, clipNorm }));
    if (!candidates.some((c) => same(c, presetKnobs))) candidates.push(presetKnobs);
    log(`confirming ${candidates.length} settings with ${Math.max(REPS, 3)} runs each:`);
    const confirmed: (DpKnobs & { auc: ReturnType<typeof stats> })[] = [];
    for (const k of candidates) {
      const runs: number[] = [];
      for (let r = 0; r < Math.max(REPS, 3); r++) runs.push((await federated(TARGET.epsilon, k)).auc);
      confirmed.push({ ...k, auc: stats(runs) });
      log(`  q=${k.samplingRate} lr=${k.learningRate} C=${k.clipNorm}: AUC ${stats(runs).mean.toFixed(4)} ± ${stats(runs).sd.toFixed(4)}`);
    }
    const best = confirmed.reduce((a, b) => (b.auc.mean > a.auc.mean ? b : a));
    sweep = { epsilon: TARGET.epsilon, grid, screening, confirmed, best };
    if (!same(best, presetKnobs)) {
      log(`best setting at every ε (q=${best.samplingRate}, lr=${best.learningRate}, C=${best.clipNorm}):`);
      for (const eps of EPSILONS) tunedResults.push(await atEpsilon(eps, best));
    } else {
      tunedResults = presetResults;
    }
  }

  const presetAt = presetResults.find((r) => r.epsilon === TARGET.epsilon)!;
  const result = {
    benchmark: 'dp-utility',
    date: started.toISOString(),
    quick,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, note: '2 shared cores; timings are noisy' },
    data: {
      dataset: 'bank-marketing (UCI, without duration)',
      rows: full.n,
      features: d,
      split: `partitionDirichlet(y, ${PARTNERS}, α=${ALPHA}, seed ${SEED}); each partner splitPartnerData(rows, ${HOLDOUT}, seed ${SEED}) (as cli/demo.ts)`,
      partners: splits.map((s, i) => ({
        name: partners[i].name,
        trainRows: s.train.n,
        holdoutRows: s.test.n,
        positiveRate: round4(positives(s.train) / s.train.n),
      })),
      pooledHoldout: { rows: pooledTest.n, positiveRate: round4(positives(pooledTest) / pooledTest.n) },
    },
    job: { model: MODEL, rounds: ROUNDS, encryption: 'CKKS (DEFAULT_HE_PARAMS)', delta: 1e-5, repetitionsPerEpsilon: REPS, presetDp: presetKnobs },
    centralized: { configs: centralized, best: bestCentral },
    federatedNonPrivate: {
      auc: round4(nonPrivate.auc),
      aucFromHistograms: round4(nonPrivate.aucFromHistograms),
      gapToCentralized: round4(bestCentral.auc - nonPrivate.auc),
    },
    federatedDpPreset: presetResults,
    sweep,
    federatedDpTuned: sweep
      ? { knobs: { samplingRate: sweep.best.samplingRate, learningRate: sweep.best.learningRate, clipNorm: sweep.best.clipNorm }, results: tunedResults }
      : null,
    sklearnReference: {
      auc: 0.769,
      source: 'data/SOURCES.md: LR, pooled, 80/20 stratified split, mean of 3 seeds',
      ourCentralized: bestCentral.auc,
      difference: round4(bestCentral.auc - 0.769),
    },
    target: {
      statement: `at ε = ${TARGET.epsilon}, federated HE+DP AUC within ${TARGET.maxGap} of centralized non-private`,
      presetGap: presetAt.gapToCentralized,
      presetMet: presetAt.gapToCentralized <= TARGET.maxGap,
    },
  };
  await mkdir(join(here, '..', 'results'), { recursive: true });
  const file = join(here, '..', 'results', 'dp-utility.json');
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);

  log('');
  log(`centralized (no DP, ${bestCentral.config}, ${ROUNDS} epochs): ${bestCentral.auc.toFixed(4)}   [sklearn reference 0.769]`);
  log(`federated CKKS, no DP:                                 ${nonPrivate.auc.toFixed(4)}`);
  log('ε     | σ (preset) | AUC preset (mean ± sd)  | gap   ' + (tunedResults.length ? '| AUC tuned        | gap' : ''));
  presetResults.forEach((p, i) => {
    const t = tunedResults[i];
    log(
      `${String(p.epsilon).padEnd(5)} | ${p.noiseMultiplier.toFixed(3).padEnd(10)} | ${p.auc.mean.toFixed(4)} ± ${p.auc.sd.toFixed(4)}         | ${p.gapToCentralized.toFixed(4)} ` +
        (t ? `| ${t.auc.mean.toFixed(4)} ± ${t.auc.sd.toFixed(4)} | ${t.gapToCentralized.toFixed(4)}` : ''),
    );
  });
  log(`target (${result.target.statement}): ${result.target.presetMet ? 'met' : 'NOT met'} with the preset (gap ${presetAt.gapToCentralized.toFixed(4)})`);
  log(`wrote ${file}`);
}

main().then(
  // The SEAL wasm module keeps handles open; the benchmark is done.
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
