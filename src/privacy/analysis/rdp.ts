/**
 * Rényi-DP accounting for the Poisson-subsampled Gaussian mechanism (add-or-remove-one neighbours).
 *
 * Per-step RDP follows Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled
 * Gaussian Mechanism" (arXiv 1908.10530): Section 3.3 closed form for integer orders and the
 * series of Section 3.4 for fractional orders, both evaluated in log space. The conversion to
 * (ε, δ)-DP is Balle, Barthe, Gaboardi, Hsu, Sato 2020, "Hypothesis testing interpretations and
 * Rényi differential privacy", Theorem 21. The arithmetic mirrors Opacus
 * (opacus/accountants/analysis/rdp.py) so results agree with it to floating-point precision.
 */

/**
 * Opacus `RDPAccountant.DEFAULT_ALPHAS`: 1.1 … 10.9 in steps of 0.1, then 12 … 63. Kept identical
 * so an ε computed here can be checked against Opacus without re-tuning the order grid.
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
]);

const LN2 = Math.log(2);
const SQRT1_2 = Math.SQRT1_2;

// ---------------------------------------------------------------------------------------------
// Normal CDF in double precision. Port of Cephes ndtr/erf/erfc (S. Moshier), the code scipy uses,
// including the split evaluation of exp(-x²) (Cephes expx2) that keeps full *relative* precision
// in the far tail, where PLD and RDP need it.
// ---------------------------------------------------------------------------------------------

const ERFC_P = [
  2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687, 4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
  9.3452852717195760754e2, 1.02755188689515710272e3, 5.57535335369399327526e2,
];
const ERFC_Q = [
  1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2, 9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
  1.65666309194161350182e3, 5.57535340817727675546e2,
];
const ERFC_R = [
  5.64189583547755073984e-1, 1.27536670759978104416, 5.01905042251180477414, 6.16021097993053585195, 7.4097426995044893916, 2.9788666537210024067,
];
const ERFC_S = [
  2.2605286322011727659, 9.39603524938001434673, 1.20489539808096656605e1, 1.70814450747565897222e1, 9.60896809063285878198, 3.3690764510008151605,
];
const ERF_T = [9.60497373987051638749, 9.0026019720384268922e1, 2.23200534594684319226e3, 7.00332514112805075473e3, 5.55923013010394962768e4];
const ERF_U = [3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3, 2.26290000613890934246e4, 4.92673942608635921086e4];

function polevl(x: number, coef: readonly number[]): number {
  let ans = coef[0];
  for (let i = 1; i < coef.length; i++) ans = ans * x + coef[i];
  return ans;
}

function p1evl(x: number, coef: readonly number[]): number {
  let ans = x + coef[0];
  for (let i = 1; i < coef.length; i++) ans = ans * x + coef[i];
  return ans;
}

/** exp(-x²) without the relative error that rounding x² would cause (Cephes expx2, sign = -1). */
function expNegSquare(x: number): number {
  const ax = Math.abs(x);
  const m = (1 / 128) * Math.floor(128 * ax + 0.5);
  const f = ax - m;
  const u = m * m;
  const u1 = 2 * m * f + f * f;
  if (u + u1 > 745.2) return 0;
  return Math.exp(-u) * Math.exp(-u1);
}

function erfSmall(x: number): number {
  const z = x * x;
  return (x * polevl(z, ERF_T)) / p1evl(z, ERF_U);
}

/** Complementary error function erfc(a), relative accuracy ≈ 1e-15 until it underflows. */
export function erfc(a: number): number {
  if (Number.isNaN(a)) return NaN;
  const x = Math.abs(a);
  if (x < 1) return 1 - erfSmall(a);
  const z = expNegSquare(a);
  let y: number;
  if (x < 8) y = (z * polevl(x, ERFC_P)) / p1evl(x, ERFC_Q);
  else y = (z * polevl(x, ERFC_R)) / p1evl(x, ERFC_S);
  return a < 0 ? 2 - y : y;
}

/** Standard normal CDF Φ(a). */
export function ndtr(a: number): number {
  if (Number.isNaN(a)) return NaN;
  if (a === Infinity) return 1;
  if (a === -Infinity) return 0;
  const x = a * SQRT1_2;
  const z = Math.abs(x);
  if (z < SQRT1_2) return 0.5 + 0.5 * erfSmall(x);
  const y = 0.5 * erfc(z);
  return x > 0 ? 1 - y : y;
}

/**
 * log Φ(a), accurate in both tails: log1p(-Φ(-a)) on the right, log Φ(a) in the body, and the
 * asymptotic (Mills-ratio) series below -20 where Φ would lose relative precision or underflow.
 */
export function logNdtr(a: number): number {
  if (Number.isNaN(a)) return NaN;
  if (a === Infinity) return 0;
  if (a === -Infinity) return -Infinity;
  if (a > -1) return Math.log1p(-ndtr(-a));
  if (a > -20) return Math.log(ndtr(a));
  // Φ(a) = φ(a)/|a| · (1 − 1/a² + 3/a⁴ − 15/a⁶ + …); at |a| ≥ 20 twelve terms reach 1e-20.
  const x2 = a * a;
  let term = 1;
  let sum = 1;
  for (let k = 1; k <= 12; k++) {
    term *= -(2 * k - 1) / x2;
    sum += term;
  }
  return -0.5 * x2 - Math.log(-a) - 0.5 * Math.log(2 * Math.PI) + Math.log(sum);
}

// ---------------------------------------------------------------------------------------------
// Log-space helpers (Opacus _log_add / _log_sub semantics).
// ---------------------------------------------------------------------------------------------

/** log(exp(x) + exp(y)) without overflow. */
export function logAdd(x: number, y: number): number {
  const a = Math.min(x, y);
  const b = Math.max(x, y);
  if (a === -Infinity) return b;
  return Math.log1p(Math.exp(a - b)) + b;
}

/**
 * log(exp(x) − exp(y)). Opacus raises when x < y; here that yields NaN so the order is dropped
 * from the ε minimisation, which can only make ε larger (never round ε down).
 */
export function logSub(x: number, y: number): number {
  if (x < y) return NaN;
  if (y === -Infinity) return x;
  if (x === y) return -Infinity;
  const d = Math.expm1(x - y);
  if (!Number.isFinite(d)) return x;
  return Math.log(d) + y;
}

/**
 * log A_α for integer α: A_α = Σ_{i=0}^{α} C(α,i) (1−q)^{α−i} q^i exp((i²−i)/(2σ²))
 * (Mironov, Talwar, Zhang 2019, Section 3.3).
 */
export function logAIntegerOrder(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  let logCoef = 0; // log C(alpha, 0)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logCoef += Math.log(alpha - i + 1) - Math.log(i);
    const s = logCoef + i * logQ + (alpha - i) * log1mQ + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

function logErfc(x: number): number {
  return LN2 + logNdtr(-x * Math.SQRT2);
}

/**
 * log A_α for fractional α via the two convergent series of Mironov, Talwar, Zhang 2019,
 * Section 3.4 (split at z₀ = σ² log(1/q − 1) + 1/2), stopping once both terms fall below e^-30
 * — the same stopping rule as Opacus.
 */
export function logAFractionalOrder(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logQ = Math.log(q);
  const log1mQ = Math.log(1 - q);
  const s2 = 2 * sigma * sigma;
  // Opacus loops `while True`; bound the loop so a pathological input cannot hang the process.
  // log|C(α, i)| and its sign, updated by the ratio C(α, i)/C(α, i−1) = (α − i + 1)/i.
  let logCoef = 0;
  let sign = 1;
  for (let i = 0; i < 100_000; i++) {
    if (i > 0) {
      const num = alpha - i + 1;
      if (num < 0) sign = -sign;
      logCoef += Math.log(Math.abs(num)) - Math.log(i);
    }
    const j = alpha - i;
    const logT0 = logCoef + i * logQ + j * log1mQ;
    const logT1 = logCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / s2 + logE0;
    const logS1 = logT1 + (j * j - j) / s2 + logE1;
    if (sign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Number.isNaN(logA0) || Number.isNaN(logA1)) return NaN;
    if (Math.max(logS0, logS1) < -30) return logAdd(logA0, logA1);
  }
  return NaN;
}

/**
 * RDP of one step of the sampled Gaussian mechanism at order α (Mironov, Talwar, Zhang 2019):
 * q = 0 → 0; σ = 0 → ∞; q = 1 → α/(2σ²) (plain Gaussian); otherwise log A_α / (α − 1).
 */
export function rdpOneStep(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (alpha === Infinity) return Infinity;
  const logA = Number.isInteger(alpha) ? logAIntegerOrder(q, sigma, alpha) : logAFractionalOrder(q, sigma, alpha);
  return logA / (alpha - 1);
}

function assertRdpArgs(q: number, sigma: number, steps: number, orders: readonly number[]): void {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling rate q must be in [0, 1], got ${q}`);
  if (!(sigma >= 0)) throw new RangeError(`noise multiplier must be >= 0, got ${sigma}`);
  if (!(Number.isInteger(steps) && steps >= 0)) throw new RangeError(`steps must be a non-negative integer, got ${steps}`);
  for (const a of orders) if (!(a > 1)) throw new RangeError(`RDP orders must be > 1, got ${a}`);
}

/**
 * RDP of `steps` compositions of the Poisson-subsampled Gaussian mechanism at each order
 * (Mironov, Talwar, Zhang 2019; composition adds RDP per order, Mironov 2017 Prop. 1).
 * Entries may be NaN (order dropped) or Infinity, as in Opacus.
 */
export function computeRdp(q: number, noiseMultiplier: number, steps: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  assertRdpArgs(q, noiseMultiplier, steps, orders);
  return orders.map((a) => {
    const r = rdpOneStep(q, noiseMultiplier, a);
    return steps === 0 ? (Number.isNaN(r) ? NaN : 0) : r * steps;
  });
}

/**
 * Converts RDP to (ε, δ)-DP (Balle et al. 2020, Theorem 21):
 *   ε = min_α  rdp(α) − (log δ + log α)/(α − 1) + log((α − 1)/α).
 * NaN entries are ignored (Opacus `nanargmin`); if every entry is NaN, ε = ∞. The result is
 * clamped at 0 from below (a negative bound carries no extra meaning) and never rounded down.
 */
export function rdpToEpsilon(orders: readonly number[], rdp: readonly number[], delta: number): { epsilon: number; bestOrder: number } {
  if (orders.length !== rdp.length) throw new RangeError(`orders (${orders.length}) and rdp (${rdp.length}) differ in length`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  let best = NaN;
  let bestOrder = NaN;
  const logDelta = Math.log(delta);
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i];
    const eps = rdp[i] - (logDelta + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
    if (Number.isNaN(eps)) continue;
    if (Number.isNaN(best) || eps < best) {
      best = eps;
      bestOrder = a;
    }
  }
  if (Number.isNaN(best)) return { epsilon: Infinity, bestOrder: NaN };
  return { epsilon: Math.max(0, best), bestOrder };
}
