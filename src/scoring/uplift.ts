/**
 * Campaign measurement for a randomised treatment/control split: response rate per arm, uplift
 * (treatment rate − control rate) with a confidence interval, per score decile and for the top
 * deciles together ("does targeting the top deciles pay?").
 *
 * Everything is computed from one count table — per decile × arm × outcome — so a single partner's
 * exact counts and the summed noisy counts of a multi-partner campaign (uplift-federated.ts) go
 * through the same code.
 *
 * Interval: Newcombe's hybrid score interval for a difference of proportions (stats.ts), built
 * from each arm's Wilson interval. With noisy counts (Gaussian noise of known variance per cell),
 * each arm's Wilson interval uses an effective sample size n_eff = n / (1 + V_noise / V_sampling),
 * where V_sampling = p(1−p)/n and V_noise = ((1−p)²·Var(noise in responders) + p²·Var(noise in
 * non-responders)) / n² is the delta-method variance the noise adds to p̂ = r/n (Kish's design
 * effect, as used for survey proportions by Korn & Graubard 1998). Without noise n_eff = n and the
 * figures are exactly the non-private ones.
 */
import { FedmarkError } from '../errors.ts';
import { newcombeInterval, twoSidedZ, wilsonInterval, type Interval } from './stats.ts';

export const DECILES = 10;
export const ARMS = ['control', 'treatment'] as const;
export type Arm = (typeof ARMS)[number];
/** Cells of the count table: decile (10) × arm (2) × outcome (2). */
export const UPLIFT_CELLS = DECILES * 2 * 2;

/** Position of (decile 1–10, arm, responded) in the count table. */
export function cellIndex(decile: number, arm: Arm, responded: boolean): number {
  if (!Number.isInteger(decile) || decile < 1 || decile > DECILES) throw new FedmarkError('UPLIFT_BAD_DECILE', `decile must be 1..${DECILES}, got ${decile}`);
  return ((decile - 1) * 2 + (arm === 'treatment' ? 1 : 0)) * 2 + (responded ? 1 : 0);
}

export interface ArmEstimate {
  /** Customers in the arm (a noisy estimate for noisy counts, never below 0). */
  n: number;
  responders: number;
  rate: number | null;
  interval: Interval | null;
  /** Sample size the interval is based on (n, or less when the counts carry noise). */
  effectiveN: number;
}

export interface UpliftEstimate {
  treatment: ArmEstimate;
  control: ArmEstimate;
  /** treatment rate − control rate. */
  uplift: number | null;
  interval: Interval | null;
  /** uplift × treated customers: responses the campaign added. */
  incrementalResponders: number | null;
}

export interface UpliftResult {
  confidence: number;
  method: string;
  overall: UpliftEstimate;
  byDecile: (UpliftEstimate & { decile: number })[];
  /** Deciles 1..k together, for k = 1..10. */
  cumulative: (UpliftEstimate & { topDeciles: number })[];
  /** Share of each decile's customers in the treatment arm (randomisation check). */
  treatmentShare: (number | null)[];
  /** Present for noisy (federated) counts. */
  noise?: { cellVariance: number };
}

export interface UpliftOptions {
  confidence?: number;
  /** Variance of the Gaussian noise in every cell (0 or absent: exact counts). */
  cellVariance?: number;
}

interface Sums {
  r: number;
  m: number;
  /** Number of cells summed into r (and into m). */
  cells: number;
}

function armEstimate(s: Sums, z: number, cellVariance: number): ArmEstimate {
  const r = Math.max(0, s.r);
  const m = Math.max(0, s.m);
  const n = r + m;
  if (!(n > 0)) return { n, responders: r, rate: null, interval: null, effectiveN: 0 };
  const rate = r / n;
  let effectiveN = n;
  if (cellVariance > 0) {
    // Design effect of the noise on p̂ = r/n (see the file comment); p* keeps it finite at p̂ ∈ {0, 1}.
    const p = Math.min(Math.max((r + 0.5) / (n + 1), 1e-12), 1 - 1e-12);
    const noiseVar = s.cells * cellVariance;
    const vSampling = (p * (1 - p)) / n;
    const vNoise = ((1 - p) ** 2 * noiseVar + p ** 2 * noiseVar) / (n * n);
    effectiveN = n / (1 + vNoise / vSampling);
  }
  return { n, responders: r, rate, interval: wilsonInterval(rate, effectiveN, z), effectiveN };
}

function estimate(t: Sums, c: Sums, z: number, cellVariance: number): UpliftEstimate {
  const treatment = armEstimate(t, z, cellVariance);
  const control = armEstimate(c, z, cellVariance);
  if (treatment.rate === null || control.rate === null) return { treatment, control, uplift: null, interval: null, incrementalResponders: null };
  const uplift = treatment.rate - control.rate;
  return {
    treatment,
    control,
    uplift,
    interval: newcombeInterval(treatment.rate, treatment.interval!, control.rate, control.interval!),
    incrementalResponders: uplift * treatment.n,
  };
}

/** Uplift figures from a count table (length UPLIFT_CELLS, layout of cellIndex). */
export function upliftFromCounts(counts: ArrayLike<number>, opts: UpliftOptions = {}): UpliftResult {
  if (counts.length !== UPLIFT_CELLS) throw new FedmarkError('UPLIFT_BAD_COUNTS', `count table has ${counts.length} cells, expected ${UPLIFT_CELLS}`);
  for (let i = 0; i < counts.length; i++)
    if (!Number.isFinite(counts[i])) throw new FedmarkError('UPLIFT_BAD_COUNTS', `count table cell ${i} is not a finite number`);
  const confidence = opts.confidence ?? 0.95;
  const z = twoSidedZ(confidence);
  const cellVariance = opts.cellVariance ?? 0;
  if (!(cellVariance >= 0)) throw new FedmarkError('UPLIFT_BAD_NOISE', `cell variance must be ≥ 0, got ${cellVariance}`);
  const sums = (arm: Arm, from: number, to: number): Sums => {
    const s = { r: 0, m: 0, cells: 0 };
    for (let d = from; d <= to; d++) {
      s.r += counts[cellIndex(d, arm, true)];
      s.m += counts[cellIndex(d, arm, false)];
      s.cells++;
    }
    return s;
  };
  const byDecile = [];
  const cumulative = [];
  const treatmentShare: (number | null)[] = [];
  for (let d = 1; d <= DECILES; d++) {
    const t = sums('treatment', d, d);
    const c = sums('control', d, d);
    byDecile.push({ decile: d, ...estimate(t, c, z, cellVariance) });
    cumulative.push({ topDeciles: d, ...estimate(sums('treatment', 1, d), sums('control', 1, d), z, cellVariance) });
    const nt = Math.max(0, t.r) + Math.max(0, t.m);
    const nc = Math.max(0, c.r) + Math.max(0, c.m);
    treatmentShare.push(nt + nc > 0 ? nt / (nt + nc) : null);
  }
  return {
    confidence,
    method:
      cellVariance > 0
        ? 'Newcombe hybrid score interval (Newcombe 1998, method 10) on Wilson intervals with noise-adjusted effective sample sizes'
        : 'Newcombe hybrid score interval (Newcombe 1998, method 10)',
    overall: estimate(sums('treatment', 1, DECILES), sums('control', 1, DECILES), z, cellVariance),
    byDecile,
    cumulative,
    treatmentShare,
    ...(cellVariance > 0 ? { noise: { cellVariance } } : {}),
  };
}
