import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import { assertParameterLength, type ParameterLayout } from '../model/params.ts';
import type { ModelSpec } from '../model/spec.ts';
import { createRng, deriveSeed, permutation } from '../util/rng.ts';
import { accumulateGradient, backward, createWorkspace, forward, lossAndOutputDelta, type Workspace } from './backprop.ts';
import { dpSchedule, GaussianNoisePool, PoissonSampler, privatizeGradientSum, type RandomFill } from './dp-sgd.ts';
import { adamOptimizer, momentumOptimizer, sgdOptimizer, type LocalOptimizer } from './optimizers.ts';
import { chunkedClippedGradientSum, GRADIENT_CHUNK_ROWS } from './chunked-gradients.ts';
import { GradientPool } from './gradient-pool.ts';

/** The part of a dataset training needs (structurally compatible with src/data's Dataset). */
export interface TrainingData {
  n: number;
  d: number;
  /** Row-major n × d, features scaled to about [0, 1]. */
  X: Float32Array;
  /** Labels 0/1. */
  y: Float32Array;
}

export const dpTrainConfigSchema = z
  .object({
    noiseMultiplier: z.number().finite().min(0),
    clipNorm: z.number().finite().positive(),
    samplingRate: z.number().positive().max(1).optional(),
    /**
     * Rows the expected batch size q·n is computed from. Default: the exact n — but dividing by the
     * exact n releases n; a federated DP job passes its already released noisy row count.
     */
    normalizerRows: z.number().finite().positive().optional(),
  })
  .strict();

export const localTrainConfigSchema = z
  .object({
    epochs: z.number().int().min(1),
    batchSize: z.number().int().min(1),
    learningRate: z.number().finite().positive(),
    optimizer: z.enum(['sgd', 'momentum', 'adam']),
    /** Heavy-ball coefficient β of the `momentum` optimizer (default 0.9; ignored by the others). */
    momentum: z.number().finite().min(0).lt(1).optional(),
    seed: z.number().int(),
    /** L2 penalty (l2/2)·‖W‖² on kernels (biases are not penalised). */
    l2: z.number().finite().min(0).optional(),
    /** FedProx proximal term (μ/2)·‖w − w_global‖² (Li et al. 2020). */
    proximalMu: z.number().finite().min(0).optional(),
    dp: dpTrainConfigSchema.optional(),
    /**
     * Worker threads for DP-SGD's per-example gradients (default 1). Used when a step's expected
     * batch spans at least two gradient chunks; the result is bit-identical to one thread.
     */
    threads: z.number().int().min(1).max(256).optional(),
  })
  .strict();

/** The `momentum` optimizer's β when the config gives none. */
export const DEFAULT_MOMENTUM = 0.9;

export type LocalTrainConfig = z.input<typeof localTrainConfigSchema>;

export interface LocalTrainResult {
  params: Float64Array;
  steps: number;
  numExamples: number;
  /** Mean BCE over every example seen during training, measured before each step's update. */
  meanLoss: number;
  dp?: { samplingRate: number; noiseMultiplier: number; clipNorm: number; steps: number };
}

/** Test hook only: replaces the CSPRNG behind Poisson sampling (never set in production code). */
export interface TrainLocalInternals {
  randomFill?: RandomFill;
}

function validateData(data: TrainingData, d: number): void {
  if (data.d !== d) throw new FedmarkError('DIMENSION_MISMATCH', `data has d=${data.d} features but the model expects d=${d}`);
  if (!Number.isInteger(data.n) || data.n < 1) {
    throw new FedmarkError('EMPTY_DATASET', `local training needs at least one row, got n=${data.n}`);
  }
  if (data.X.length !== data.n * data.d) {
    throw new FedmarkError('INVALID_FEATURES', `feature matrix has ${data.X.length} values, expected n×d = ${data.n}×${data.d}`);
  }
  if (data.y.length !== data.n) {
    throw new FedmarkError('INVALID_LABELS', `label vector has ${data.y.length} values, expected n = ${data.n}`);
  }
  for (let i = 0; i < data.n; i++) {
    const t = data.y[i];
    if (t !== 0 && t !== 1) throw new FedmarkError('INVALID_LABELS', `label at row ${i} is ${t}; labels must be 0 or 1`);
  }
}

/**
 * Data-independent gradient terms (L2 on kernels, FedProx pull towards the global model). They are
 * added after clipping and noise: they carry no information about the data, so under DP they are
 * post-processing and need no clipping.
 */
function addRegularisation(layout: ParameterLayout, params: Float64Array, global: Float64Array, grad: Float64Array, l2: number, mu: number): void {
  if (l2 > 0) {
    for (const layer of layout.layers) {
      const end = layer.kernelOffset + layer.inDim * layer.outDim;
      for (let i = layer.kernelOffset; i < end; i++) grad[i] += l2 * params[i];
    }
  }
  if (mu > 0) {
    for (let i = 0; i < params.length; i++) grad[i] += mu * (params[i] - global[i]);
  }
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Trains from the global parameters on one partner's data and returns the new local parameters.
 *
 * Without dp: each epoch visits a seeded permutation in minibatches of batchSize (the last may be
 * smaller); identical inputs give bit-identical parameters on every machine (float64 loops in a fixed
 * order, seeded permutation). With dp: DP-SGD with Poisson sampling at rate q (default batchSize/n)
 * for round(1/q) steps per epoch, per-example clipping and Gaussian noise — see dp-sgd.ts; the
 * batches and noise come from a CSPRNG, so DP runs are not reproducible by design.
 */
export async function trainLocal(
  spec: ModelSpec,
  d: number,
  global: Float64Array,
  data: TrainingData,
  config: LocalTrainConfig,
  internals: TrainLocalInternals = {},
): Promise<LocalTrainResult> {
  const parsed = localTrainConfigSchema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError('INVALID_TRAIN_CONFIG', `invalid local training config at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const cfg = parsed.data;
  const layout = assertParameterLength(spec, d, global);
  validateData(data, d);
  for (let i = 0; i < global.length; i++) {
    if (!Number.isFinite(global[i])) throw new FedmarkError('INVALID_PARAMETERS', `global parameter ${i} is not finite (${global[i]})`);
  }

  const params = Float64Array.from(global);
  const grad = new Float64Array(layout.size);
  const opt: LocalOptimizer =
    cfg.optimizer === 'adam'
      ? adamOptimizer(cfg.learningRate, layout.size)
      : cfg.optimizer === 'momentum'
        ? momentumOptimizer(cfg.learningRate, layout.size, cfg.momentum ?? DEFAULT_MOMENTUM)
        : sgdOptimizer(cfg.learningRate);
  const l2 = cfg.l2 ?? 0;
  const mu = cfg.proximalMu ?? 0;
  const { n, X, y } = data;
  const last = layout.layers.length - 1;
  let lossSum = 0;
  let seen = 0;
  let steps = 0;

  if (!cfg.dp) {
    const batch = Math.min(cfg.batchSize, n);
    const ws = createWorkspace(layout, batch);
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      const order = permutation(n, createRng(deriveSeed(cfg.seed, 'local-epoch', epoch)));
      for (let start = 0; start < n; start += batch) {
        const count = Math.min(batch, n - start);
        const rows = order.subarray(start, start + count);
        forward(layout, params, X, rows, count, ws);
        lossSum += lossAndOutputDelta(y, rows, count, ws, last);
        backward(layout, params, count, ws);
        accumulateGradient(layout, count, ws, null, grad);
        const inv = 1 / count;
        for (let i = 0; i < grad.length; i++) grad[i] *= inv;
        addRegularisation(layout, params, global, grad, l2, mu);
        opt.step(params, grad);
        seen += count;
        steps++;
      }
      await yieldToEventLoop();
    }
    return { params, steps, numExamples: n, meanLoss: seen > 0 ? lossSum / seen : Number.NaN };
  }

  const dp = cfg.dp;
  const { samplingRate: q, stepsPerEpoch } = dpSchedule(dp, n, cfg.batchSize);
  const expected = q * (dp.normalizerRows ?? n);
  const sampler = new PoissonSampler(n, q, internals.randomFill);
  const noise = new GaussianNoisePool(dp.noiseMultiplier * dp.clipNorm);
  let ws: Workspace = createWorkspace(layout, Math.min(GRADIENT_CHUNK_ROWS, Math.ceil(q * n + 4 * Math.sqrt(q * n) + 8)));
  const threads = cfg.threads ?? 1;
  const pool = threads > 1 && q * n >= 2 * GRADIENT_CHUNK_ROWS ? new GradientPool(threads, data) : null;
  for (let epoch = 0; epoch < cfg.epochs; epoch++) {
    for (let s = 0; s < stepsPerEpoch; s++) {
      const rows = sampler.sample();
      let res: { lossSum: number };
      if (pool) {
        res = await pool.sum(layout, params, rows, dp.clipNorm, grad);
      } else {
        const r = chunkedClippedGradientSum(layout, params, X, y, rows, dp.clipNorm, grad, ws);
        ws = r.workspace;
        res = r;
      }
      lossSum += res.lossSum;
      seen += rows.length;
      privatizeGradientSum(grad, dp.noiseMultiplier, dp.clipNorm, expected, noise);
      addRegularisation(layout, params, global, grad, l2, mu);
      opt.step(params, grad);
      steps++;
    }
    await yieldToEventLoop();
  }
  return {
    params,
    steps,
    numExamples: n,
    meanLoss: seen > 0 ? lossSum / seen : Number.NaN,
    dp: { samplingRate: q, noiseMultiplier: dp.noiseMultiplier, clipNorm: dp.clipNorm, steps },
  };
}
