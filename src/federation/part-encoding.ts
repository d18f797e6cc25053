import { heValueBounds } from '../crypto/index.ts';
import { FedmarkError } from '../errors.ts';
import type { JobManifest } from './manifest.ts';
import { toGrid, toGridInPlace } from './release-grid.ts';
import { planOf, type AnyWorkload, type PartSpec, type WorkloadRegistry } from './workload.ts';

/**
 * How every summed part is encoded so that a partner of the largest declared size, in a federation
 * of the declared number of partners, fits the encryption's slot bound (issue 18).
 *
 * CKKS decrypts a slot correctly while |sum| < maxAbsSlotValue; each of at most `maxSummands`
 * partners may therefore contribute |value| ≤ maxAbsSlotValue / maxSummands (4096 with the default
 * parameters). A part whose per-partner bound (PartSpec.bound, from the manifest) exceeds that is
 * carried divided by a power of two `scale` — exact in float64 both ways — and multiplied back after
 * decryption. Decryptions are rounded to the release grid (REAL_QUANTUM = 2⁻²⁰) in the *encoded*
 * domain, so the decryption error stays ≈1/1000 of the grid whatever the scale, and a part's
 * resolution after decoding is `scale · 2⁻²⁰`:
 * - count parts must keep integers exact: resolution ≤ 1 (scale ≤ 2²⁰);
 * - real parts (model deltas) must keep resolution ≤ MAX_REAL_RESOLUTION.
 * A job whose declared sizes break either rule is refused when a partner accepts it, before any
 * budget is charged; a partner whose own rows exceed the declared maximum refuses it too.
 */

/** Rows one partner may hold (training + hold-out) when the manifest does not say. */
export const DEFAULT_MAX_ROWS_PER_PARTNER = 100_000_000;
/** Largest |change| of one model parameter in one round's local training, when the manifest does not say. */
export const DEFAULT_MAX_ABS_UPDATE = 16;
/** Coarsest resolution a real part may be summed with (≈ 9.8e-4): beyond it the server step would average quantisation noise. */
export const MAX_REAL_RESOLUTION = 2 ** -10;
/** Noise margin of a Gaussian release's bound, in standard deviations: P(|N(0,1)| > 12) ≈ 3.6e-33 per slot. */
export const NOISE_MARGIN_SIGMAS = 12;

const REAL_QUANTUM_BITS = 20;

export interface JobLimits {
  maxRowsPerPartner: number;
  maxAbsUpdate: number;
}

/** The manifest's declared sizes, defaults filled (absent from the manifest: its signed bytes stay those of a manifest without them). */
export function jobLimits(m: JobManifest): JobLimits {
  return { maxRowsPerPartner: m.limits?.maxRowsPerPartner ?? DEFAULT_MAX_ROWS_PER_PARTNER, maxAbsUpdate: m.limits?.maxAbsUpdate ?? DEFAULT_MAX_ABS_UPDATE };
}

/** Largest |value| one partner may encrypt under the job's scheme (null: plaintext, no bound). */
export function maxAbsInputOf(m: JobManifest): number | null {
  return m.encryption.scheme === 'ckks' ? heValueBounds(m.encryption).maxAbsInputValue : null;
}

export interface PartEncoding {
  /** Values travel divided by this power of two. */
  scale: number;
  /**
   * 1, or 2 for a scaled real part: [high | low], high = v/scale on the 2⁻²⁰ grid and low = v − high·scale
   * (unscaled), so the decoded sum keeps the 2⁻²⁰ resolution of an unscaled part — twice the slots.
   */
  limbs: 1 | 2;
  /** Spacing of the decoded sums: 2⁻²⁰ for real parts, scale · 2⁻²⁰ for count parts (and their real slots). */
  resolution: number;
}

export function partEncoding(spec: PartSpec, maxAbsInput: number | null): PartEncoding {
  if (maxAbsInput === null || spec.bound === null || spec.bound <= maxAbsInput) return { scale: 1, limbs: 1, resolution: 2 ** -REAL_QUANTUM_BITS };
  const k = Math.ceil(Math.log2(spec.bound / maxAbsInput));
  // log2 may land a hair low on exact powers of two: make sure the bound fits.
  const e = spec.bound / 2 ** k > maxAbsInput ? k + 1 : k;
  if (spec.domain === 'real') return { scale: 2 ** e, limbs: 2, resolution: 2 ** -REAL_QUANTUM_BITS };
  return { scale: 2 ** e, limbs: 1, resolution: 2 ** (e - REAL_QUANTUM_BITS) };
}

/** Slots a part takes on the wire (what its ciphertexts hold): its length times its limbs. */
export function wireLength(spec: PartSpec, maxAbsInput: number | null): number {
  return spec.length * partEncoding(spec, maxAbsInput).limbs;
}

/** Why the job's declared sizes cannot be encoded (empty: they fit). From the manifest alone. */
export function encodingProblems(workload: AnyWorkload, m: JobManifest): string[] {
  const problems: string[] = [];
  if (m.encryption.scheme === 'ckks') {
    const he = heValueBounds(m.encryption);
    if (m.partners.length > he.maxSummands)
      problems.push(`the job names ${m.partners.length} partners but its HE parameters sum at most ${he.maxSummands} ciphertexts (encryption.maxSummands)`);
  }
  return [...problems, ...partProblems(workload, m, maxAbsInputOf(m))];
}

/** Why some part of some round cannot be encoded at the resolution it needs under the slot bound `maxAbsInput`. */
export function partProblems(workload: AnyWorkload, m: JobManifest, maxAbsInput: number | null): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (let r = 1; r <= workload.totalRounds(m); r++) {
    for (const spec of planOf(workload, m, r).parts) {
      const key = `${spec.name}|${spec.bound}|${spec.domain}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const { scale, resolution, limbs } = partEncoding(spec, maxAbsInput);
      // A real part's low limb holds |value − high·scale| ≤ scale·2⁻²¹: it must fit the slot bound too.
      const lowFits = limbs === 1 || scale * 2 ** -(REAL_QUANTUM_BITS + 1) <= maxAbsInput!;
      if (resolution > 1 || !lowFits) {
        problems.push(
          `part "${spec.name}" (|value| ≤ ${fmt(spec.bound!)} per partner with ${fmt(jobLimits(m).maxRowsPerPartner)} rows per partner) needs scale 2^${Math.log2(scale)} under the slot bound ±${maxAbsInput}, ${spec.domain === 'count' ? `which sums counts at resolution ${fmt(resolution)}, coarser than integers` : 'beyond what its low limb can carry'}: lower limits.maxRowsPerPartner${spec.domain === 'real' ? ' or limits.maxAbsUpdate' : ''}, or choose HE parameters with more headroom`,
        );
      }
    }
  }
  return problems;
}

/** Throws JOB_DOES_NOT_FIT naming every problem. */
export function assertEncodingFits(workload: AnyWorkload, m: JobManifest): void {
  const problems = encodingProblems(workload, m);
  if (problems.length) throw new FedmarkError('JOB_DOES_NOT_FIT', `job ${m.jobId} cannot be encoded: ${problems.join('; ')}`, { problems });
}

/** Why a partner with `rows` rows may not take part (null: it may). */
export function rowsProblem(m: JobManifest, rows: number): string | null {
  const { maxRowsPerPartner } = jobLimits(m);
  return rows > maxRowsPerPartner
    ? `this partner holds ${rows} rows, more than the ${maxRowsPerPartner} the job declares per partner (limits.maxRowsPerPartner): its sums could exceed the encoding bound`
    : null;
}

/**
 * Why a partner holding `rows` rows refuses the job at acceptance, before anything is charged: a
 * workload it does not run, declared sizes the encoding cannot fit, or more rows than declared.
 */
export function acceptanceProblems(workloads: WorkloadRegistry, m: JobManifest, rows: number): string[] {
  if (!workloads.has(m.workload.kind)) return [`this node does not run workload "${m.workload.kind}"`];
  let problems: string[];
  try {
    problems = encodingProblems(workloads.resolve(m), m);
  } catch (err) {
    if (!(err instanceof FedmarkError)) throw err;
    problems = [err.message];
  }
  const tooMany = rowsProblem(m, rows);
  return tooMany ? [...problems, tooMany] : problems;
}

/**
 * A part as it is encrypted: every |value| within the part's declared bound (PART_OUT_OF_BOUND
 * names the first that is not — the partner refuses to upload it), divided by the part's scale.
 */
export function encodePart(spec: PartSpec, values: Float64Array, maxAbsInput: number | null): Float64Array {
  const bound = spec.bound ?? Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(Math.abs(v) <= bound)) {
      throw new FedmarkError(
        'PART_OUT_OF_BOUND',
        `part "${spec.name}": value ${v} at index ${i} exceeds the bound ±${bound} the job declares per partner; not uploaded`,
        { part: spec.name, index: i, value: v, bound },
      );
    }
  }
  const { scale, limbs } = partEncoding(spec, maxAbsInput);
  if (scale === 1) return values;
  const n = values.length;
  const out = new Float64Array(n * limbs);
  for (let i = 0; i < n; i++) {
    const high = limbs === 2 ? toGrid(values[i] / scale) + 0 : values[i] / scale;
    out[i] = high;
    if (limbs === 2) out[n + i] = values[i] - high * scale;
  }
  return out;
}

/** A decrypted sum of `wireLength` slots (already on the release grid in the encoded domain) scaled back and put on its part's grid. */
export function decodePart(spec: PartSpec, decrypted: Float64Array, maxAbsInput: number | null): Float64Array {
  const { scale, limbs } = partEncoding(spec, maxAbsInput);
  if (scale === 1) return onGrid(spec, decrypted);
  const n = spec.length;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = decrypted[i] * scale + (limbs === 2 ? decrypted[n + i] : 0);
  return onGrid(spec, out);
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(3);
}

/** A decrypted sum on the release grid of its part: counts to integers (their real slots and real parts to REAL_QUANTUM). */
export function onGrid(spec: PartSpec, values: Float64Array): Float64Array {
  toGridInPlace(values);
  if (spec.domain !== 'count') return values;
  const real = new Uint8Array(values.length);
  for (const [a, b] of spec.realSlots ?? []) real.fill(1, a, b);
  for (let i = 0; i < values.length; i++) if (!real[i]) values[i] = toGrid(values[i], 1) + 0;
  return values;
}
