/**
 * Privacy Loss Distribution (PLD) accounting for the Poisson-subsampled Gaussian mechanism under
 * add-or-remove-one neighbouring, composed `steps` times.
 *
 * Method (a port of Google's dp_accounting `PLDAccountant` /
 * `from_gaussian_mechanism(sampling_prob=q, use_connect_dots=True)`):
 * - PLD of a mechanism: Koskela, Jälkö, Honkela 2020 ("Computing tight differential privacy
 *   guarantees using FFT"); Sommer, Meiser, Mohammadi 2019 ("Privacy loss classes").
 * - Subsampled Gaussian with separate ADD and REMOVE distributions: Zhu, Dong, Wang 2022
 *   ("Optimal accounting of differential privacy via characteristic function"), as in
 *   dp_accounting's AdditiveNoisePrivacyLoss.
 * - Pessimistic discretisation on a grid of width 1e-4 by "Connect the Dots": Doroshenko, Ghazi,
 *   Kamath, Kumar, Manurangsi 2022 (arXiv 2207.04380), Algorithm 1 — the grid values are the exact
 *   hockey-stick divergences δ(ε_i), so the discrete PLD dominates the true one.
 * - Self-composition by FFT with Chernoff-bounded truncation (tail mass 1e-15 sent to +∞, which
 *   is pessimistic), then ε(δ) from the composed PMF; ε = max over ADD and REMOVE.
 */
import { cyclicSelfConvolve } from './fft.ts';
import { logNdtr, ndtr } from './rdp.ts';

/** dp_accounting defaults, kept so results match its reference values. */
export const PLD_DISCRETIZATION = 1e-4;
const LOG_MASS_TRUNCATION_BOUND = -50;
const TAIL_MASS_TRUNCATION = 1e-15;

type Adjacency = 'add' | 'remove';

/** log(a·e^b + c), dp_accounting common.log_a_times_exp_b_plus_c. */
function logATimesExpBPlusC(a: number, b: number, c: number): number {
  const logAdd2 = (x: number, y: number) => {
    const mn = Math.min(x, y);
    const mx = Math.max(x, y);
    if (mn === -Infinity) return mx;
    return mx + Math.log1p(Math.exp(mn - mx));
  };
  const logSub2 = (x: number, y: number) => {
    if (y >= x) throw new RangeError(`log_sub needs x > y, got ${x}, ${y}`);
    return x + Math.log1p(-Math.exp(y - x));
  };
  if (a === 0) return Math.log(c);
  if (a < 0) {
    if (c <= 0) throw new RangeError('a·exp(b) + c must be positive');
    return logSub2(Math.log(c), Math.log(-a) + b);
  }
  if (b === 0) return Math.log(a + c);
  const d = b + Math.log(a);
  if (c === 0) return d;
  if (c < 0) return logSub2(d, Math.log(-c));
  return logAdd2(d, Math.log(c));
}

function isClose(a: number, b: number): boolean {
  return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

/** Inverse standard normal CDF by Newton iterations on log Φ (enough for a grid bound). */
function ndtri(p: number): number {
  // Initial guess from the tail asymptote, then Newton on log Φ(x) = log p.
  let x = p < 0.5 ? -Math.sqrt(-2 * Math.log(p)) : Math.sqrt(-2 * Math.log(1 - p));
  const target = Math.log(p);
  for (let k = 0; k < 100; k++) {
    const lf = logNdtr(x);
    // d/dx log Φ(x) = φ(x)/Φ(x) = exp(log φ(x) − log Φ(x))
    const dl = Math.exp(-0.5 * x * x - 0.5 * Math.log(2 * Math.PI) - lf);
    const step = (lf - target) / dl;
    x -= step;
    if (Math.abs(step) <= 1e-15 * Math.max(1, Math.abs(x))) break;
  }
  return x;
}

/** Privacy loss of the (subsampled) Gaussian, dp_accounting GaussianPrivacyLoss (sensitivity 1). */
class GaussianPrivacyLoss {
  constructor(
    readonly sigma: number,
    readonly q: number,
    readonly adjacency: Adjacency,
  ) {}

  private plNoSub(x: number): number {
    const s2 = this.sigma * this.sigma;
    return this.adjacency === 'add' ? (0.5 - x) / s2 : (-0.5 - x) / s2;
  }

  private invNoSub(loss: number): number {
    const s2 = this.sigma * this.sigma;
    return this.adjacency === 'add' ? 0.5 - loss * s2 : -0.5 - loss * s2;
  }

  privacyLoss(x: number): number {
    const l0 = this.plNoSub(x);
    const q = this.q;
    if (q === 1) return l0;
    if (this.adjacency === 'add') return -logATimesExpBPlusC(q, -l0, 1 - q);
    return logATimesExpBPlusC(q, l0, 1 - q);
  }

  inversePrivacyLoss(loss: number): number {
    const q = this.q;
    if (q === 1) return this.invNoSub(loss);
    if (this.adjacency === 'add') {
      const cap = -Math.log(1 - q);
      if (isClose(loss, cap)) return this.invNoSub(Infinity);
      if (loss > cap) throw new RangeError(`privacy loss ${loss} exceeds -log(1-q)`);
      return this.invNoSub(-logATimesExpBPlusC(1 / q, -loss, 1 - 1 / q));
    }
    const floor = Math.log(1 - q);
    if (isClose(loss, floor)) return this.invNoSub(-Infinity);
    if (loss <= floor) throw new RangeError(`privacy loss ${loss} below log(1-q)`);
    return this.invNoSub(logATimesExpBPlusC(1 / q, loss, 1 - 1 / q));
  }

  muUpperCdf(x: number): number {
    const s = this.sigma;
    if (this.adjacency === 'add') return ndtr(x / s);
    if (this.q === 1) return ndtr((x + 1) / s);
    return (1 - this.q) * ndtr(x / s) + this.q * ndtr((x + 1) / s);
  }

  muLowerLogCdf(x: number): number {
    const s = this.sigma;
    if (this.adjacency === 'remove') return logNdtr(x / s);
    if (this.q === 1) return logNdtr((x - 1) / s);
    const a = Math.log1p(-this.q) + logNdtr(x / s);
    const b = Math.log(this.q) + logNdtr((x - 1) / s);
    const mx = Math.max(a, b);
    if (mx === -Infinity) return -Infinity;
    return mx + Math.log1p(Math.exp(Math.min(a, b) - mx));
  }

  /** Exact hockey-stick divergence δ(ε) of the continuous mechanism (clipped to [0, 1]). */
  deltaForEpsilon(eps: number): number {
    const q = this.q;
    let d: number;
    if (q !== 1 && this.adjacency === 'add' && !(eps < -Math.log1p(-q))) {
      d = 0;
    } else if (q !== 1 && this.adjacency === 'remove' && !(eps > Math.log1p(-q))) {
      d = -Math.expm1(eps);
    } else {
      const x = this.inversePrivacyLoss(eps);
      d = this.muUpperCdf(x) - Math.exp(eps + this.muLowerLogCdf(x));
    }
    return Math.min(1, Math.max(0, d));
  }

  /** Grid bounds: the privacy loss at the x where the Gaussian tails fall below e^-50. */
  connectDotsBounds(): { epsilonUpper: number; epsilonLower: number } {
    let lowerX = this.sigma * ndtri(0.5 * Math.exp(LOG_MASS_TRUNCATION_BOUND));
    let upperX = -lowerX;
    if (this.adjacency === 'add') upperX += 1;
    else lowerX -= 1;
    return { epsilonUpper: this.privacyLoss(lowerX), epsilonLower: this.privacyLoss(upperX) };
  }
}

/** A discrete PLD on the grid {(lowerLoss + i)·d}, plus mass at +∞. */
interface DensePmf {
  lowerLoss: number;
  probs: Float64Array;
  infinityMass: number;
}

/**
 * Pessimistic connect-the-dots PMF on contiguous grid points (dp_accounting
 * create_pmf_pessimistic_connect_dots_fixed_gap; Doroshenko et al. 2022, Algorithm 1).
 */
function connectDotsPmf(pl: GaussianPrivacyLoss, d: number): DensePmf {
  const { epsilonUpper, epsilonLower } = pl.connectDotsBounds();
  const upper = Math.ceil(epsilonUpper / d);
  const lower = Math.floor(epsilonLower / d);
  const n = upper - lower + 1;
  const deltas = new Float64Array(n);
  let runningMin = Infinity;
  for (let i = 0; i < n; i++) {
    // np.minimum.accumulate: δ(ε) is non-increasing; enforce it against rounding noise.
    const v = pl.deltaForEpsilon((lower + i) * d);
    runningMin = Math.min(runningMin, v);
    deltas[i] = runningMin;
  }
  if (n === 1) {
    return { lowerLoss: lower, probs: Float64Array.of(1 - deltas[0]), infinityMass: deltas[0] };
  }
  const probs = new Float64Array(n);
  const em1 = Math.expm1(d);
  const ed = Math.exp(d);
  probs[0] = 1 - deltas[0] + (deltas[1] - deltas[0]) / em1;
  for (let i = 1; i < n - 1; i++) {
    probs[i] = (deltas[i + 1] - deltas[i] - (deltas[i] - deltas[i - 1]) * ed) / em1;
  }
  probs[n - 1] = (deltas[n - 1] - deltas[n - 2]) / Math.expm1(-d);
  for (let i = 0; i < n; i++) if (!(probs[i] > 0)) probs[i] = 0;
  return { lowerLoss: lower, probs, infinityMass: deltas[n - 1] };
}

function logSumExpWeighted(probs: Float64Array, order: number): number {
  let mx = -Infinity;
  for (let i = 0; i < probs.length; i++) if (probs[i] > 0) mx = Math.max(mx, i * order);
  if (mx === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i] !== 0) s += probs[i] * Math.exp(i * order - mx);
  return mx + Math.log(s);
}

/**
 * Index range outside of which the n-fold self-convolution has mass ≤ tail (Chernoff bound over
 * 40 moment orders, dp_accounting common.compute_self_convolve_bounds).
 */
function selfConvolveBounds(probs: Float64Array, times: number, tail: number): [number, number] {
  let upper = (probs.length - 1) * times;
  let lower = 0;
  const len = probs.length;
  const orders: number[] = [];
  for (let k = -20; k < 0; k++) orders.push(k / len);
  for (let k = 1; k <= 20; k++) orders.push(k / len);
  for (const order of orders) {
    const bound = (times * logSumExpWeighted(probs, order) + Math.log(2 / tail)) / order;
    if (!Number.isFinite(bound)) continue;
    if (order > 0) upper = Math.min(upper, Math.ceil(bound));
    else lower = Math.max(lower, Math.floor(bound));
  }
  return [lower, upper];
}

/** n-fold composition of a PMF with itself (dp_accounting common.self_convolve). */
function selfCompose(pmf: DensePmf, times: number): DensePmf {
  const [tLower, tUpper] = selfConvolveBounds(pmf.probs, times, TAIL_MASS_TRUNCATION);
  const outLen = tUpper - tLower + 1;
  let size = 4;
  while (size < Math.max(outLen, pmf.probs.length)) size <<= 1;
  const cyc = cyclicSelfConvolve(pmf.probs, size, times);
  const out = new Float64Array(outLen);
  for (let k = 0; k < outLen; k++) out[k] = cyc[(((k + tLower) % size) + size) % size];
  return {
    lowerLoss: pmf.lowerLoss * times + tLower,
    probs: out,
    infinityMass: TAIL_MASS_TRUNCATION - Math.expm1(times * Math.log1p(-pmf.infinityMass)),
  };
}

/**
 * Pessimistic tail truncation after composing with the identity PLD (dp_accounting
 * PLDAccountant composes its identity start with each event using tail_mass_truncation 1e-15):
 * the left tail is folded onto the first kept point, the right tail moves to +∞.
 */
function truncateTails(pmf: DensePmf, tail: number): DensePmf {
  const p = pmf.probs;
  const prefix = (reverse: boolean) => {
    let s = 0;
    for (let k = 0; k < p.length; k++) {
      s += p[reverse ? p.length - 1 - k : k];
      if (s > tail / 2) return k;
    }
    return p.length;
  };
  const leftIdx = prefix(false);
  let rightIdx = p.length - prefix(true);
  rightIdx = Math.max(rightIdx, leftIdx + 1);
  let leftMass = 0;
  for (let k = 0; k < leftIdx; k++) leftMass += p[k];
  let rightMass = 0;
  for (let k = rightIdx; k < p.length; k++) rightMass += p[k];
  const kept = p.slice(leftIdx, rightIdx);
  kept[0] += leftMass;
  return { lowerLoss: pmf.lowerLoss + leftIdx, probs: kept, infinityMass: pmf.infinityMass + rightMass };
}

/** Smallest ε with hockey-stick divergence ≤ δ (dp_accounting pld_pmf._get_epsilon_for_delta). */
function epsilonForDelta(pmf: DensePmf, d: number, delta: number): number {
  if (pmf.infinityMass > delta) return Infinity;
  let massUpper = pmf.infinityMass;
  let massLower = 0;
  const p = pmf.probs;
  for (let i = p.length - 1; i >= 0; i--) {
    const loss = (pmf.lowerLoss + i) * d;
    if (massUpper > delta && massLower > 0 && Math.log((massUpper - delta) / massLower) >= loss) break;
    massUpper += p[i];
    massLower += Math.exp(-loss) * p[i];
    if (massUpper >= delta && massLower === 0) return Math.max(0, loss);
  }
  if (massUpper <= massLower + delta) return 0;
  return Math.log((massUpper - delta) / massLower);
}

export interface PldArgs {
  samplingRate: number;
  noiseMultiplier: number;
  steps: number;
  delta: number;
  /** Grid width of the privacy-loss discretisation; default 1e-4 (dp_accounting's default). */
  discretization?: number;
}

/**
 * ε for `steps` compositions of the Poisson-subsampled Gaussian (sensitivity 1, noise σ, rate q)
 * at the given δ, by PLD with pessimistic connect-the-dots discretisation. The discretisation
 * and the truncations are all pessimistic, so the result is an upper bound on the true ε.
 */
export function epsilonPld(args: PldArgs): number {
  const { samplingRate: q, noiseMultiplier: sigma, steps, delta } = args;
  const d = args.discretization ?? PLD_DISCRETIZATION;
  if (!(q >= 0 && q <= 1)) throw new RangeError(`samplingRate must be in [0, 1], got ${q}`);
  if (!(sigma >= 0)) throw new RangeError(`noiseMultiplier must be >= 0, got ${sigma}`);
  if (!(Number.isInteger(steps) && steps >= 0)) throw new RangeError(`steps must be a non-negative integer, got ${steps}`);
  if (!(delta > 0 && delta < 1)) throw new RangeError(`delta must be in (0, 1), got ${delta}`);
  if (!(d > 0 && d <= 1)) throw new RangeError(`discretization must be in (0, 1], got ${d}`);
  if (q === 0 || steps === 0) return 0;
  if (sigma === 0) return Infinity;
  const adjacencies: Adjacency[] = q === 1 ? ['remove'] : ['remove', 'add'];
  let eps = 0;
  for (const adj of adjacencies) {
    const single = connectDotsPmf(new GaussianPrivacyLoss(sigma, q, adj), d);
    const composed = truncateTails(selfCompose(single, steps), TAIL_MASS_TRUNCATION);
    eps = Math.max(eps, epsilonForDelta(composed, d, delta));
  }
  return eps;
}
