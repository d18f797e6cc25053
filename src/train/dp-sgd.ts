import { randomFillSync } from 'node:crypto';
import { FedmarkError } from '../errors.ts';
import type { ParameterLayout } from '../model/params.ts';
import { gaussianNoise } from '../privacy/noise.ts';
import {
  accumulateGradient,
  backward,
  createWorkspace,
  ensureCapacity,
  forward,
  lossAndOutputDelta,
  perExampleSquaredNorms,
  type Workspace,
} from './backprop.ts';

/**
 * DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy") in the form the RDP
 * accountant analyses — the Sampled Gaussian Mechanism (Mironov, Talwar & Zhang 2019): every row
 * joins a step's batch independently with probability q (Poisson sampling), each example's full
 * gradient is clipped to L2 norm C, the clipped gradients are summed, N(0, σ²C²) noise is added to
 * every coordinate, and the sum is divided by the *expected* batch size q·n (as Opacus does), so the
 * divisor does not depend on the data.
 */

export interface DpConfig {
  noiseMultiplier: number;
  clipNorm: number;
  /** Poisson sampling rate q; default batchSize / n. */
  samplingRate?: number;
}

/** A source of cryptographically secure random bytes (node's crypto by default). */
export type RandomFill = (buf: Uint32Array) => void;

const defaultFill: RandomFill = (buf) => {
  randomFillSync(buf);
};

/**
 * Poisson sampler over rows 0..n-1 with rate q, driven by a CSPRNG: the privacy amplification by
 * sampling that the accountant credits holds only if the batch is unpredictable, so the seeded PRNG
 * must not choose it. Gaps between selected rows are drawn as Geometric(q) — P(gap ≥ k) = (1−q)^k —
 * which is the same Bernoulli(q)-per-row process but needs ≈ q·n random numbers per step instead of n.
 */
export class PoissonSampler {
  readonly n: number;
  readonly q: number;
  private readonly logOneMinusQ: number;
  private readonly fill: RandomFill;
  private readonly pool = new Uint32Array(2048);
  private poolPos = 2048;
  private rows: Int32Array;

  constructor(n: number, q: number, fill: RandomFill = defaultFill) {
    if (!Number.isInteger(n) || n < 1) throw new FedmarkError('INVALID_DP_CONFIG', `Poisson sampling needs n ≥ 1 rows, got ${n}`);
    if (!(q > 0 && q <= 1)) throw new FedmarkError('INVALID_DP_CONFIG', `sampling rate q must be in (0, 1], got ${q}`);
    this.n = n;
    this.q = q;
    this.logOneMinusQ = Math.log1p(-q);
    this.fill = fill;
    this.rows = new Int32Array(Math.min(n, Math.ceil(n * q + 8 * Math.sqrt(n * q) + 16)));
  }

  private nextWord(): number {
    if (this.poolPos >= this.pool.length) {
      this.fill(this.pool);
      this.poolPos = 0;
    }
    return this.pool[this.poolPos++];
  }

  /** Uniform in (0, 1] with 53 random bits (never 0, so its log is finite). */
  private uniform(): number {
    const hi = this.nextWord() >>> 5;
    const lo = this.nextWord() >>> 6;
    return (hi * 67108864 + lo + 1) / 9007199254740992;
  }

  /**
   * Draws one batch. Returns the selected row indices in ascending order; the view is valid until
   * the next call.
   */
  sample(): Int32Array {
    if (this.q === 1) {
      if (this.rows.length < this.n) this.rows = new Int32Array(this.n);
      for (let i = 0; i < this.n; i++) this.rows[i] = i;
      return this.rows.subarray(0, this.n);
    }
    let count = 0;
    let idx = -1;
    for (;;) {
      const gap = Math.floor(Math.log(this.uniform()) / this.logOneMinusQ);
      idx += gap + 1;
      if (idx >= this.n || !Number.isFinite(idx)) break;
      if (count === this.rows.length) {
        const bigger = new Int32Array(Math.min(this.n, this.rows.length * 2));
        bigger.set(this.rows);
        this.rows = bigger;
      }
      this.rows[count++] = idx;
    }
    return this.rows.subarray(0, count);
  }
}

export interface ClippedSum {
  /** Σ_i clip_C(∇θ loss_i), length = parameter count (written into the caller's buffer). */
  sum: Float64Array;
  /** Squared norms of the unclipped per-example gradients, length = batch size. */
  sqNorms: Float64Array;
  /** Summed BCE loss of the batch (before the update). */
  lossSum: number;
  /** Number of per-example gradients that were scaled down. */
  clipped: number;
  /** The workspace actually used (it grows if the batch did not fit). */
  workspace: Workspace;
}

/**
 * Sum of per-example gradients each clipped to L2 norm ≤ clipNorm, without materialising any
 * per-example gradient: norms come from ‖a_i‖²‖g_i‖² per dense layer, then one weighted pass
 * aᵀ(g ⊙ s) per layer with s_i = min(1, C/‖∇_i‖) (Goodfellow 2015; the idea behind Opacus' ghost
 * clipping).
 */
export function clippedGradientSum(
  layout: ParameterLayout,
  params: Float64Array,
  X: Float32Array,
  y: Float32Array,
  rows: ArrayLike<number>,
  count: number,
  clipNorm: number,
  out: Float64Array,
  workspace?: Workspace,
): ClippedSum {
  if (!(clipNorm > 0)) throw new FedmarkError('INVALID_DP_CONFIG', `clip norm must be > 0, got ${clipNorm}`);
  const ws = workspace ? ensureCapacity(layout, workspace, count) : createWorkspace(layout, count);
  if (count === 0) {
    out.fill(0);
    return { sum: out, sqNorms: ws.sqNorms.subarray(0, 0), lossSum: 0, clipped: 0, workspace: ws };
  }
  forward(layout, params, X, rows, count, ws, true);
  const lossSum = lossAndOutputDelta(y, rows, count, ws, layout.layers.length - 1);
  backward(layout, params, count, ws);
  const sq = perExampleSquaredNorms(layout, count, ws);
  const c2 = clipNorm * clipNorm;
  let clipped = 0;
  for (let i = 0; i < count; i++) {
    if (sq[i] > c2) {
      ws.scales[i] = clipNorm / Math.sqrt(sq[i]);
      clipped++;
    } else {
      ws.scales[i] = 1;
    }
  }
  accumulateGradient(layout, count, ws, ws.scales, out);
  return { sum: out, sqNorms: sq.subarray(0, count), lossSum, clipped, workspace: ws };
}

/**
 * Hands out N(0, std²) samples from src/privacy/noise.ts drawn in blocks of ≥ 64k values: one CSPRNG
 * call per block instead of per step (per-call overhead dominated small-model DP-SGD steps).
 * Every value is used once, so the samples stay independent; leftovers are dropped with the pool.
 */
export class GaussianNoisePool {
  readonly std: number;
  private readonly blockSize: number;
  private block: Float64Array = new Float64Array(0);
  private pos = 0;

  constructor(std: number, blockSize = 65_536) {
    if (!(std >= 0) || !Number.isFinite(std)) throw new FedmarkError('INVALID_DP_CONFIG', `noise std must be finite and ≥ 0, got ${std}`);
    this.std = std;
    this.blockSize = Math.max(1, Math.floor(blockSize));
  }

  /** Adds one fresh sample to every coordinate of vec. */
  addTo(vec: Float64Array): void {
    if (this.std === 0) return;
    let i = 0;
    while (i < vec.length) {
      if (this.pos >= this.block.length) {
        this.block = gaussianNoise(Math.max(this.blockSize, vec.length - i), this.std);
        this.pos = 0;
      }
      const take = Math.min(vec.length - i, this.block.length - this.pos);
      for (let k = 0; k < take; k++) vec[i + k] += this.block[this.pos + k];
      // Spent samples are zeroed so no noise value lingers in memory after use.
      this.block.fill(0, this.pos, this.pos + take);
      this.pos += take;
      i += take;
    }
  }
}

/**
 * Turns a clipped gradient sum into the DP-SGD gradient in place: adds N(0, (σC)²) to every
 * coordinate (CSPRNG noise from src/privacy/noise.ts, optionally through a pool created with
 * std = σC) and divides by the expected batch size q·n.
 */
export function privatizeGradientSum(
  sum: Float64Array,
  noiseMultiplier: number,
  clipNorm: number,
  expectedBatchSize: number,
  pool?: GaussianNoisePool,
): Float64Array {
  if (!(noiseMultiplier >= 0)) throw new FedmarkError('INVALID_DP_CONFIG', `noise multiplier must be ≥ 0, got ${noiseMultiplier}`);
  if (!(expectedBatchSize > 0)) {
    throw new FedmarkError('INVALID_DP_CONFIG', `expected batch size q·n must be > 0, got ${expectedBatchSize}`);
  }
  const std = noiseMultiplier * clipNorm;
  if (pool && pool.std !== std) {
    throw new FedmarkError('INVALID_DP_CONFIG', `noise pool std ${pool.std} does not match σ·C = ${std}`);
  }
  if (std > 0) {
    if (pool) {
      pool.addTo(sum);
    } else {
      const noise = gaussianNoise(sum.length, std);
      for (let i = 0; i < sum.length; i++) sum[i] += noise[i];
    }
  }
  const inv = 1 / expectedBatchSize;
  for (let i = 0; i < sum.length; i++) sum[i] *= inv;
  return sum;
}

/** Validates a DP config against the data size and returns the sampling rate and steps per epoch. */
export function dpSchedule(dp: DpConfig, n: number, batchSize: number): { samplingRate: number; stepsPerEpoch: number } {
  if (!(dp.clipNorm > 0) || !Number.isFinite(dp.clipNorm)) {
    throw new FedmarkError('INVALID_DP_CONFIG', `dp.clipNorm must be a positive finite number, got ${dp.clipNorm}`);
  }
  if (!(dp.noiseMultiplier >= 0) || !Number.isFinite(dp.noiseMultiplier)) {
    throw new FedmarkError('INVALID_DP_CONFIG', `dp.noiseMultiplier must be a finite number ≥ 0, got ${dp.noiseMultiplier}`);
  }
  const q = dp.samplingRate ?? Math.min(1, batchSize / n);
  if (!(q > 0 && q <= 1)) throw new FedmarkError('INVALID_DP_CONFIG', `dp.samplingRate must be in (0, 1], got ${q}`);
  return { samplingRate: q, stepsPerEpoch: Math.max(1, Math.round(1 / q)) };
}
