/**
 * Gaussian noise for the Gaussian mechanism / DP-SGD, drawn from node's CSPRNG
 * (`crypto.randomFillSync`). Never seeded: reproducible noise would be predictable noise.
 *
 * Sampling: Box–Muller on two independent uniforms built from 53 random bits each (the full
 * mantissa of a double), u₁ ∈ (0, 1] so log(u₁) is always finite, u₂ ∈ [0, 1).
 *
 * Floating-point caveat (Mironov 2012, "On significance of the least significant bits for
 * differential privacy", CCS): DP proofs assume real-valued noise, but a double-precision sample
 * has an irregular, input-dependent set of reachable values, and the low-order bits of x + noise
 * can reveal x, breaking DP outright for naive floating-point Laplace/Gaussian samplers. Sound
 * mitigations are (a) the snapping mechanism (Mironov 2012: clamp, then round to a power-of-two
 * grid coarser than the noise's resolution) or (b) exact discrete Gaussian noise on an integer
 * grid (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy").
 *
 * What this code does: uses 53-bit uniforms (no coarse 32-bit grids, no log(0)), a CSPRNG, and
 * one sample per coordinate. What it does NOT do: snapping or discrete sampling, so the
 * Mironov-style residual risk remains in principle. In fedmark the noised update is further
 * weighted, summed with other partners' updates and CKKS-encoded (which adds its own ≈1e-9
 * approximation error before anyone but the partner sees it), which makes the attack much harder
 * in practice but is not a proof. Also, because u₁ ≥ 2⁻⁵³, |z| ≤ √(2·53·ln 2) ≈ 8.57: the
 * Gaussian tails beyond 8.57σ (probability ≈ 1e-17) are never sampled — a deviation from the
 * analysed mechanism that is negligible next to δ but is stated here for honesty.
 */
import { randomFillSync } from 'node:crypto';
import { FedmarkError } from '../errors.ts';

const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;
/** Random words fetched per CSPRNG call: amortises the syscall without a large buffer. */
const BATCH_PAIRS = 4096;

function checkStd(std: number): void {
  if (!(typeof std === 'number' && std >= 0 && Number.isFinite(std)))
    throw new FedmarkError('DP_BAD_NOISE', `noise standard deviation must be finite and >= 0, got ${String(std)}`);
}

/** Fills (or, with add, adds to) every entry of `out` with N(0, std²) samples from the CSPRNG. */
function fillGaussian(out: Float64Array | Float32Array, std: number, add: boolean): void {
  const n = out.length;
  const words = new Uint32Array(4 * BATCH_PAIRS);
  let i = 0;
  while (i < n) {
    const pairs = Math.min(BATCH_PAIRS, Math.ceil((n - i) / 2));
    const buf = words.subarray(0, 4 * pairs);
    randomFillSync(buf);
    for (let p = 0; p < pairs && i < n; p++) {
      // 27 + 26 = 53 random bits per uniform.
      const k1 = (buf[4 * p] >>> 5) * TWO_POW_26 + (buf[4 * p + 1] >>> 6);
      const k2 = (buf[4 * p + 2] >>> 5) * TWO_POW_26 + (buf[4 * p + 3] >>> 6);
      const u1 = (k1 + 1) / TWO_POW_53; // (0, 1]
      const u2 = k2 / TWO_POW_53; // [0, 1)
      const r = std * Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      const z0 = r * Math.cos(theta);
      if (add) out[i] += z0;
      else out[i] = z0;
      i++;
      if (i < n) {
        const z1 = r * Math.sin(theta);
        if (add) out[i] += z1;
        else out[i] = z1;
        i++;
      }
    }
  }
}

/** n independent N(0, std²) samples from the CSPRNG. */
export function gaussianNoise(n: number, std: number): Float64Array {
  if (!(Number.isInteger(n) && n >= 0)) throw new FedmarkError('DP_BAD_NOISE', `sample count must be a non-negative integer, got ${String(n)}`);
  checkStd(std);
  const out = new Float64Array(n);
  if (std > 0) fillGaussian(out, std, false);
  return out;
}

/**
 * Adds independent N(0, std²) noise to every coordinate of `vec` in place (DP-SGD: std = σ·C).
 * For Float32Array the sum is rounded to float32, which is a further post-processing step.
 */
export function addGaussianNoiseInPlace(vec: Float64Array | Float32Array, std: number): void {
  checkStd(std);
  if (std > 0) fillGaussian(vec, std, true);
}
