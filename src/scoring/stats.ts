/**
 * Small statistical functions for campaign measurement, written out so each can be checked by hand
 * (test/scoring/stats.test.ts compares them with Python's standard library).
 */
import { FedmarkError } from '../errors.ts';
import { ndtr } from '../privacy/analysis/rdp.ts';

/** Standard normal CDF Φ. */
export const normalCdf = ndtr;

/**
 * Standard normal quantile Φ⁻¹(p): Acklam's rational approximation (relative error < 1.2e-9)
 * refined by one Halley step on Φ, which brings it to ~1e-15.
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new FedmarkError('STATS_BAD_PROBABILITY', `normal quantile needs 0 < p < 1, got ${p}`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  let x: number;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - lo) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const e = normalCdf(x) - p;
  const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}

/** z with P(|Z| ≤ z) = confidence. */
export function twoSidedZ(confidence: number): number {
  if (!(confidence > 0 && confidence < 1)) throw new FedmarkError('STATS_BAD_CONFIDENCE', `confidence must be in (0, 1), got ${confidence}`);
  return normalQuantile(1 - (1 - confidence) / 2);
}

export interface Interval {
  lower: number;
  upper: number;
}

/**
 * Wilson score interval for a proportion (Wilson 1927) from an estimate p̂ and a sample size n.
 * `n` may be an effective (non-integer) size; n ≤ 0 gives the uninformative [0, 1].
 */
export function wilsonInterval(p: number, n: number, z: number): Interval {
  if (!(n > 0) || !Number.isFinite(p)) return { lower: 0, upper: 1 };
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { lower: Math.max(0, centre - half), upper: Math.min(1, centre + half) };
}

/**
 * Newcombe's hybrid score interval for a difference of independent proportions p₁ − p₂
 * (Newcombe 1998, "Interval estimation for the difference between independent proportions:
 * comparison of eleven methods", Statistics in Medicine 17:873–890, method 10):
 *   L = (p₁ − p₂) − √((p₁ − l₁)² + (u₂ − p₂)²),  U = (p₁ − p₂) + √((u₁ − p₁)² + (p₂ − l₂)²),
 * with (lᵢ, uᵢ) the Wilson intervals of each proportion. Newcombe's worked example 56/70 − 48/80
 * gives 0.0524 to 0.3339.
 */
export function newcombeInterval(p1: number, i1: Interval, p2: number, i2: Interval): Interval {
  const diff = p1 - p2;
  return {
    lower: diff - Math.sqrt((p1 - i1.lower) ** 2 + (i2.upper - p2) ** 2),
    upper: diff + Math.sqrt((i1.upper - p1) ** 2 + (p2 - i2.lower) ** 2),
  };
}

/** Welford's running mean and variance. */
export class RunningMoments {
  n = 0;
  mean = 0;
  private m2 = 0;
  add(x: number): void {
    this.n++;
    const delta = x - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (x - this.mean);
  }
  /** Sample variance (n − 1); NaN for fewer than two values. */
  get variance(): number {
    return this.n > 1 ? this.m2 / (this.n - 1) : NaN;
  }
}
