/**
 * Empirical privacy audit of DP-SGD (Jagielski, Ullman & Oprea 2020, "Auditing Differentially
 * Private Machine Learning: How Private is Private SGD?"; Nasr et al. 2021): a distinguishing game
 * that yields a statistically valid LOWER bound on ε, which must not exceed the ε the RDP accountant
 * claims. A bound above the claim would mean a bug in clipping, noise, sampling or accounting.
 *
 * The game, repeated T times per setting:
 *   1. Data: the training rows of the smallest partner of the demo's split of bank-marketing
 *      (partitionDirichlet(y, 5, α=1, seed 42); splitPartnerData(…, 0.2, 42)).
 *   2. A fair coin (seeded, balanced) decides whether the canary joins the data (IN) or not (OUT).
 *      The canary is a row the real encoder can produce but no real row does: every categorical
 *      column in its "<other>" bucket (a value the schema never declared), every numeric and boolean
 *      feature 0, label 1 (the rare class). No other row has weight on the "<other>" features, so
 *      the canary's influence is not masked by the data.
 *   3. Train with the partner's mechanism exactly as the job runs it: trainLocal with DP-SGD at the
 *      preset's q = 0.02, lr 0.5, C = 1, for 20 epochs (= 20 rounds × 1 local epoch = 1000 steps),
 *      σ calibrated by calibrateNoiseMultiplier to the claimed ε at δ = 1e-5 — the same call
 *      planDp makes. (In a federated job the global model replaces the local one between rounds;
 *      that is post-processing of released updates and cannot make the mechanism less private.)
 *   4. Score: the canary's logit without the intercept, w·x_canary, from the final model only.
 * The first half of the trials picks the threshold (the one maximising the bound on that half);
 * the second half, unseen by that choice, gives FPR/FNR. With one-sided Clopper–Pearson upper bounds
 * FPR⁺, FNR⁺ at 97.5% each (95% jointly), any (ε, δ)-DP mechanism satisfies
 *   ε ≥ max( ln((1 − δ − FNR⁺)/FPR⁺), ln((1 − δ − FPR⁺)/FNR⁺) ).
 *
 * Controls, so the audit is not vacuous: the same pipeline with σ = 0 (clipping and Poisson
 * sampling only, ε = ∞) and plain non-private minibatch SGD (the preset's non-DP local training);
 * there the attack should reach the largest bound the trial count can certify (`ceiling`).
 *
 * Run: npx tsx benchmarks/dp/membership-inference.ts [--quick] [--trials N]
 * Writes benchmarks/results/dp-membership.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitPartnerData } from '../../cli/partner-data.ts';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { loadDataset, subsetDataset } from '../../src/data/encode.ts';
import { partitionDirichlet } from '../../src/data/partition.ts';
import { loadSchema, OTHER_BUCKET } from '../../src/data/schema.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { initParameters, parameterLayout } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { epsilonFor } from '../../src/privacy/accountant.ts';
import { calibrateNoiseMultiplier } from '../../src/privacy/calibrate.ts';
import { trainLocal, type LocalTrainConfig, type TrainingData } from '../../src/train/local.ts';
import { createRng, shuffleInPlace } from '../../src/util/rng.ts';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const trialsArg = argv.indexOf('--trials');
const TRIALS = trialsArg >= 0 ? Number(argv[trialsArg + 1]) : quick ? 400 : 1000;
if (!(Number.isInteger(TRIALS) && TRIALS >= 40 && TRIALS % 4 === 0))
  throw new Error(`--trials must be a multiple of 4, at least 40; got ${argv[trialsArg + 1]}`);
const SEED = 42;
const ROUNDS = 20;
const DELTA = 1e-5;
const ALPHA = 0.05; // the bound holds with probability ≥ 1 − ALPHA
const CLAIMED = quick ? [1, 8] : [1, 3, 8, 100];
const MODEL: ModelSpec = { kind: 'logistic' };
const log = (line: string) => process.stderr.write(`${line}\n`);
const r4 = (x: number) => (Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : x);

/** P(Binomial(n, p) ≤ k), summed in log space (n is at most a few thousand here). */
function binomialCdf(k: number, n: number, p: number): number {
  if (k >= n || p <= 0) return 1;
  if (p >= 1) return 0;
  const lp = Math.log(p);
  const lq = Math.log1p(-p);
  let logC = 0;
  let sum = 0;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
    sum += Math.exp(logC + i * lp + (n - i) * lq);
  }
  return Math.min(1, sum);
}

/** One-sided Clopper–Pearson upper bound on a rate after k events in n trials, at confidence 1 − a. */
export function clopperPearsonUpper(k: number, n: number, a: number): number {
  if (k >= n) return 1;
  let lo = k / n;
  let hi = 1;
  for (let it = 0; it < 200; it++) {
    const mid = (lo + hi) / 2;
    if (binomialCdf(k, n, mid) > a) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The (ε, δ)-DP lower bound certified by a threshold attack's error counts. */
function epsilonLowerBound(fp: number, nOut: number, fn: number, nIn: number): { eps: number; fprUpper: number; fnrUpper: number } {
  const fprUpper = clopperPearsonUpper(fp, nOut, ALPHA / 2);
  const fnrUpper = clopperPearsonUpper(fn, nIn, ALPHA / 2);
  const a = Math.log((1 - DELTA - fnrUpper) / fprUpper);
  const b = Math.log((1 - DELTA - fprUpper) / fnrUpper);
  const eps = Math.max(0, Number.isFinite(a) ? a : 0, Number.isFinite(b) ? b : 0);
  return { eps, fprUpper, fnrUpper };
}

interface Trial {
  member: boolean;
  score: number;
}

function countsAt(trials: Trial[], t: number): { fp: number; nOut: number; fn: number; nIn: number } {
  let fp = 0,
    fn = 0,
    nIn = 0,
    nOut = 0;
  for (const tr of trials) {
    const guessIn = tr.score >= t;
    if (tr.member) {
      nIn++;
      if (!guessIn) fn++;
    } else {
      nOut++;
      if (guessIn) fp++;
    }
  }
  return { fp, nOut, fn, nIn };
}

/** The threshold maximising the certified bound on `trials` (candidates: midpoints of sorted scores). */
function bestThreshold(trials: Trial[]): { threshold: number; eps: number } {
  const s = [...new Set(trials.map((t) => t.score))].sort((a, b) => a - b);
  const cands = [s[0] - 1, ...s.slice(1).map((v, i) => (v + s[i]) / 2), s[s.length - 1] + 1];
  let best = { threshold: cands[0], eps: -1 };
  for (const t of cands) {
    const c = countsAt(trials, t);
    const { eps } = epsilonLowerBound(c.fp, c.nOut, c.fn, c.nIn);
    if (eps > best.eps) best = { threshold: t, eps };
  }
  return best;
}

/** Probability a random IN score beats a random OUT score (ties ½): how separable the two worlds are. */
function attackAuc(trials: Trial[]): number {
  const ins = trials.filter((t) => t.member).map((t) => t.score);
  const outs = trials.filter((t) => !t.member).map((t) => t.score);
  let wins = 0;
  for (const a of ins) for (const b of outs) wins += a > b ? 1 : a === b ? 0.5 : 0;
  return wins / (ins.length * outs.length);
}

async function main(): Promise<void> {
  const started = new Date();
  const bundled = BUNDLED_DATASETS['bank-marketing'];
  const schema = await loadSchema(bundled.schema);
  const full = await loadDataset(bundled.csv, schema);
  const d = full.d;
  const parts = partitionDirichlet(full.y, 5, 1, SEED);
  const trains = parts.map((idx) => splitPartnerData(subsetDataset(full, idx), 0.2, SEED).train);
  const smallest = trains.reduce((a, b) => (b.n < a.n ? b : a));
  const partnerIndex = trains.indexOf(smallest);

  const canary = new Float32Array(d);
  const otherFeatures = full.featureNames.map((f, j) => [f, j] as const).filter(([f]) => f.endsWith(`=${OTHER_BUCKET}`));
  for (const [, j] of otherFeatures) canary[j] = 1;
  const realUses = otherFeatures.reduce((acc, [, j]) => {
    for (let i = 0; i < full.n; i++) acc += full.X[i * d + j];
    return acc;
  }, 0);
  if (otherFeatures.length === 0 || realUses !== 0)
    throw new Error(`canary design needs unused "<other>" features; found ${otherFeatures.length}, used ${realUses} times`);
  const without: TrainingData = { n: smallest.n, d, X: smallest.X, y: smallest.y };
  const withX = new Float32Array((smallest.n + 1) * d);
  withX.set(smallest.X);
  withX.set(canary, smallest.n * d);
  const withY = new Float32Array(smallest.n + 1);
  withY.set(smallest.y);
  withY[smallest.n] = 1;
  const withCanary: TrainingData = { n: smallest.n + 1, d, X: withX, y: withY };
  const layout = parameterLayout(MODEL, d);
  const kernel = layout.layers[0].kernelOffset;
  const score = (params: Float64Array) => {
    let z = 0;
    for (let j = 0; j < d; j++) z += params[kernel + j] * canary[j];
    return z;
  };

  const dpPreset = jobPreset({ jobId: 'audit', schema, partners: 5, rounds: ROUNDS, epsilon: 3, seed: SEED });
  const plainPreset = jobPreset({ jobId: 'audit', schema, partners: 5, rounds: ROUNDS, epsilon: null, seed: SEED });
  const q = dpPreset.localTraining.samplingRate!;
  const steps = ROUNDS * dpPreset.localTraining.epochs * Math.max(1, Math.round(1 / q));
  const clipNorm = dpPreset.dp!.clipNorm;
  const init = initParameters(MODEL, d, SEED);

  type Setting = { name: string; claimedEpsilon: number | null; noiseMultiplier: number | null; config: (seed: number) => LocalTrainConfig };
  const dpConfig =
    (sigma: number) =>
    (seed: number): LocalTrainConfig => ({
      epochs: ROUNDS * dpPreset.localTraining.epochs,
      batchSize: dpPreset.localTraining.batchSize,
      learningRate: dpPreset.localTraining.learningRate,
      optimizer: dpPreset.localTraining.optimizer,
      seed,
      dp: { noiseMultiplier: sigma, clipNorm, samplingRate: q },
    });
  const settings: Setting[] = [
    ...CLAIMED.map((eps) => {
      const sigma = calibrateNoiseMultiplier({ targetEpsilon: eps, delta: DELTA, samplingRate: q, steps });
      return { name: `dp-sgd ε=${eps}`, claimedEpsilon: eps, noiseMultiplier: sigma, config: dpConfig(sigma) };
    }),
    { name: 'control: dp-sgd σ=0 (clip + Poisson only)', claimedEpsilon: null, noiseMultiplier: 0, config: dpConfig(0) },
    {
      name: 'control: no DP (plain minibatch SGD)',
      claimedEpsilon: null,
      noiseMultiplier: null,
      config: (seed) => ({
        epochs: ROUNDS * plainPreset.localTraining.epochs,
        batchSize: plainPreset.localTraining.batchSize,
        learningRate: plainPreset.localTraining.learningRate,
        optimizer: plainPreset.localTraining.optimizer,
        seed,
      }),
    },
  ];

  // Balanced, seeded membership coins; the same assignment for every setting.
  const coins = Array.from({ length: TRIALS }, (_, i) => i % 2 === 0);
  shuffleInPlace(coins, createRng(SEED));
  const calib = TRIALS / 2;

  log(
    `audit: partner ${partnerIndex} (${smallest.n} training rows), q=${q}, ${steps} steps, C=${clipNorm}, δ=${DELTA}, ${TRIALS} trials per setting (${calib} choose the threshold, ${TRIALS - calib} certify)`,
  );
  log(`canary: ${otherFeatures.map(([f]) => f).join(', ')} = 1, all else 0, label 1`);
  const heldIn = coins.slice(calib).filter(Boolean).length;
  const ceiling = epsilonLowerBound(0, TRIALS - calib - heldIn, 0, heldIn).eps;
  const results = [];
  for (const s of settings) {
    const t0 = performance.now();
    const trials: Trial[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const member = coins[i];
      const res = await trainLocal(MODEL, d, init, member ? withCanary : without, s.config(SEED * 100_000 + i));
      trials.push({ member, score: score(res.params) });
    }
    const seconds = (performance.now() - t0) / 1000;
    const chosen = bestThreshold(trials.slice(0, calib));
    const held = trials.slice(calib);
    const c = countsAt(held, chosen.threshold);
    const bound = epsilonLowerBound(c.fp, c.nOut, c.fn, c.nIn);
    const optimistic = bestThreshold(trials);
    const meanOf = (m: boolean) => {
      const xs = trials.filter((t) => t.member === m).map((t) => t.score);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      return { mean: r4(mean), sd: r4(Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1))) };
    };
    const claimedCheck = s.claimedEpsilon === null ? null : epsilonFor({ samplingRate: q, noiseMultiplier: s.noiseMultiplier!, steps, delta: DELTA });
    const row = {
      setting: s.name,
      claimedEpsilon: s.claimedEpsilon,
      accountantEpsilon: claimedCheck === null ? null : r4(claimedCheck),
      noiseMultiplier: s.noiseMultiplier === null ? null : r4(s.noiseMultiplier),
      trials: TRIALS,
      scoreIn: meanOf(true),
      scoreOut: meanOf(false),
      attackAuc: r4(attackAuc(trials)),
      threshold: r4(chosen.threshold),
      heldOut: { ...c, fprUpper: r4(bound.fprUpper), fnrUpper: r4(bound.fnrUpper) },
      epsilonLowerBound: r4(bound.eps),
      epsilonLowerBoundBestThresholdAllTrials: r4(optimistic.eps),
      belowClaim: s.claimedEpsilon === null ? null : bound.eps <= s.claimedEpsilon,
      seconds: r4(seconds),
    };
    results.push(row);
    log(
      `${s.name.padEnd(44)} σ=${row.noiseMultiplier ?? '—'}  attack AUC ${row.attackAuc.toFixed(3)}  FP ${c.fp}/${c.nOut} FN ${c.fn}/${c.nIn}  ε_lb ${row.epsilonLowerBound.toFixed(3)}` +
        `${s.claimedEpsilon === null ? '' : ` ≤ claimed ${s.claimedEpsilon}: ${row.belowClaim ? 'yes' : 'NO'}`}  (${seconds.toFixed(1)} s)`,
    );
  }

  const out = {
    benchmark: 'dp-membership-inference-audit',
    date: started.toISOString(),
    quick,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, note: '2 shared cores' },
    method: {
      reference: 'Jagielski, Ullman & Oprea 2020 (threshold distinguishing game, Clopper–Pearson); Nasr et al. 2021',
      data: `bank-marketing, demo split partner ${partnerIndex} training rows (${smallest.n})`,
      canary: `${otherFeatures.map(([f]) => f).join(', ')} = 1, all other features 0, label 1`,
      statistic: 'canary logit without intercept (w·x_canary) under the final model',
      mechanism: `trainLocal DP-SGD, q=${q}, ${steps} steps (${ROUNDS} rounds × ${Math.round(1 / q)}), lr ${dpPreset.localTraining.learningRate}, C=${clipNorm}, σ calibrated to the claimed ε at δ=${DELTA}`,
      threshold: 'chosen on the first half of the trials, error rates counted on the second half',
      bound: `ε ≥ max(ln((1−δ−FNR⁺)/FPR⁺), ln((1−δ−FPR⁺)/FNR⁺)), one-sided Clopper–Pearson at ${1 - ALPHA / 2} each (${1 - ALPHA} jointly)`,
      ceiling: r4(ceiling),
      ceilingNote: 'the largest ε this trial count can certify (zero errors on the certifying half)',
      bestThresholdAllTrialsNote: 'threshold picked on the same trials it is scored on: optimistic, not a valid bound; shown for context',
    },
    results,
    allBelowClaim: results.every((r) => r.belowClaim !== false),
  };
  await mkdir(join(here, '..', 'results'), { recursive: true });
  const file = join(here, '..', 'results', 'dp-membership.json');
  await writeFile(file, `${JSON.stringify(out, null, 2)}\n`);
  log(`ceiling for ${TRIALS - calib} certifying trials: ε_lb ≤ ${ceiling.toFixed(3)}; every DP setting below its claim: ${out.allBelowClaim ? 'yes' : 'NO'}`);
  log(`wrote ${file}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
