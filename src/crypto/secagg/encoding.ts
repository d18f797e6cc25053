/**
 * Fixed-point encoding of the values a round sums, chosen from declared bounds so that the sum over
 * every partner provably fits the plaintext modulus t: no wrap-around, ever, for honest inputs.
 *
 * A real x becomes q = SR(x·2^f), stochastic rounding (Gupta et al., ICML 2015; used for federated
 * quantisation by Suresh et al., ICML 2017): ⌊x·2^f⌋ + 1 with probability equal to the fractional
 * part, so E[q] = x·2^f (unbiased to 2^-53) and |q − x·2^f| < 1. A count is encoded as is (f = 0).
 * The integer is offset by M = ⌈maxAbs·2^f⌉ to u = q + M ∈ [0, 2M] and, when n·2M does not fit below
 * t, split into limbs of b bits (u = Σ d_l·2^(b·l)) with n·(2^b − 1) ≤ t − 1: every slot of the sum of
 * n partners stays below t, and the key holders recombine limbs exactly with BigInt arithmetic and
 * subtract n·M.
 *
 * Quantisation error of a decoded sum of n partners: per value, |error| < n·2^-f and, the roundings
 * being independent and unbiased, standard deviation ≤ √n·2^-f/2.
 */
import { randomFillSync } from 'node:crypto';
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';

/** Smallest fraction bits a real part may get when its caller does not say (resolution 2^-16 ≈ 1.5e-5). */
export const DEFAULT_MIN_FRACTION_BITS = 16;
/** Most fraction bits chosen automatically (resolution 2^-40 ≈ 9e-13, far below CKKS's 2^-28). */
export const MAX_FRACTION_BITS = 40;
/** u = q + M must be an exact float64 integer. */
const MAX_OFFSET_VALUE = 2 ** 52;

export const partBoundSchema = z
  .object({
    name: z.string().min(1).max(200),
    length: z
      .number()
      .int()
      .min(1)
      .max(1 << 28),
    /** 'real': any finite value in [−maxAbs, maxAbs]; 'count': an integer in that range. */
    kind: z.enum(['real', 'count']),
    /** Largest |value| one partner may contribute (from the manifest, e.g. its declared row count). */
    maxAbs: z
      .number()
      .positive()
      .max(2 ** 52),
    /** Reals only: the least resolution 2^-f acceptable; more limbs are used rather than less. */
    minFractionBits: z.number().int().min(0).max(MAX_FRACTION_BITS).optional(),
  })
  .strict();
export type PartBound = z.infer<typeof partBoundSchema>;

export const partEncodingSchema = z
  .object({
    name: z.string(),
    length: z.number().int(),
    kind: z.enum(['real', 'count']),
    maxAbs: z.number(),
    fractionBits: z.number().int().min(0),
    /** M = ⌈maxAbs·2^f⌉: the offset that makes every encoded integer non-negative. */
    offset: z.number().int().min(0),
    limbs: z.number().int().min(1),
    limbBits: z.number().int().min(1),
    firstSlot: z.number().int().min(0),
  })
  .strict();
export type PartEncoding = z.infer<typeof partEncodingSchema>;

export const encodingPlanSchema = z
  .object({
    format: z.literal('fedmark-encoding-1'),
    plainModulus: z.number().int().min(2),
    /** Most partners whose vectors one sum may hold. */
    maxSummands: z.number().int().min(1),
    parts: z.array(partEncodingSchema).min(1),
    totalSlots: z.number().int().min(1),
  })
  .strict();
export type EncodingPlan = z.infer<typeof encodingPlanSchema>;

function refuse(message: string, details?: Record<string, unknown>): never {
  throw new FedmarkError('SECAGG_ENCODING_DOES_NOT_FIT', message, details);
}

/** Largest b with n·(2^b − 1) ≤ t − 1: the limb width whose sum over n partners cannot wrap. */
export function limbBitsFor(t: number, n: number): number {
  let b = 0;
  while (n * (2 ** (b + 1) - 1) <= t - 1) b++;
  return b;
}

function encodePart(p: PartBound, t: number, n: number, firstSlot: number): PartEncoding {
  const fits = (offset: number) => n * 2 * offset <= t - 1;
  const offsetFor = (f: number) => Math.ceil(p.maxAbs * 2 ** f);
  let fractionBits = 0;
  if (p.kind === 'real') {
    const floor = p.minFractionBits ?? DEFAULT_MIN_FRACTION_BITS;
    fractionBits = floor;
    // As many fraction bits as one limb holds, but never fewer than the floor.
    for (let f = MAX_FRACTION_BITS; f > floor; f--) {
      if (fits(offsetFor(f)) && offsetFor(f) <= MAX_OFFSET_VALUE / 2) {
        fractionBits = f;
        break;
      }
    }
  } else if (!Number.isInteger(p.maxAbs)) {
    refuse(`part ${p.name}: a count bound must be an integer, got ${p.maxAbs}`);
  }
  const offset = offsetFor(fractionBits);
  if (2 * offset + 1 > MAX_OFFSET_VALUE) {
    refuse(`part ${p.name}: bound ${p.maxAbs} at 2^-${fractionBits} resolution needs more than 52 bits per value`);
  }
  if (fits(offset)) {
    return {
      name: p.name,
      length: p.length,
      kind: p.kind,
      maxAbs: p.maxAbs,
      fractionBits,
      offset,
      limbs: 1,
      limbBits: Math.ceil(Math.log2(2 * offset + 1)) || 1,
      firstSlot,
    };
  }
  const limbBits = limbBitsFor(t, n);
  if (limbBits < 1) refuse(`${n} summands cannot be added modulo ${t} without wrapping, even one bit at a time`);
  let valueBits = 1;
  while (2 ** valueBits < 2 * offset + 1) valueBits++;
  const limbs = Math.ceil(valueBits / limbBits);
  return { name: p.name, length: p.length, kind: p.kind, maxAbs: p.maxAbs, fractionBits, offset, limbs, limbBits, firstSlot };
}

/**
 * Chooses, for each part, the fixed-point scale and the limb split such that the sum of `maxSummands`
 * partners' vectors fits below t in every slot. Deterministic: every party derives the same plan from
 * the manifest. Throws SECAGG_ENCODING_DOES_NOT_FIT (before anything is charged or sent) otherwise.
 */
export function planEncoding(parts: PartBound[], plainModulus: number, maxSummands: number, maxSlots = 1 << 28): EncodingPlan {
  if (!Number.isSafeInteger(plainModulus) || plainModulus < 3) refuse(`plain modulus ${plainModulus} is not a usable integer`);
  if (!Number.isInteger(maxSummands) || maxSummands < 1) refuse(`maxSummands ${maxSummands} must be a positive integer`);
  if (maxSummands >= plainModulus) refuse(`${maxSummands} summands cannot share a modulus of ${plainModulus}`);
  const names = new Set<string>();
  const out: PartEncoding[] = [];
  let slot = 0;
  for (const raw of parts) {
    const parsed = partBoundSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      refuse(`part bound at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
    }
    const p = parsed.data;
    if (names.has(p.name)) refuse(`part ${p.name} is declared twice`);
    names.add(p.name);
    const enc = encodePart(p, plainModulus, maxSummands, slot);
    slot += enc.length * enc.limbs;
    out.push(enc);
  }
  if (out.length === 0) refuse('an encoding plan needs at least one part');
  if (slot > maxSlots) refuse(`the encoded vector needs ${slot} slots, more than the ${maxSlots} allowed`);
  return { format: 'fedmark-encoding-1', plainModulus, maxSummands, parts: out, totalSlots: slot };
}

export function encodingPlanId(plan: EncodingPlan): string {
  return sha256Canonical(plan);
}

/** Uniform doubles in [0, 1) with 53 random bits each, from a CSPRNG (or the given byte source). */
function uniforms(count: number, random: (n: number) => Uint8Array): Float64Array {
  let bytes = random(8 * count);
  if (bytes.length !== 8 * count) throw new FedmarkError('SECAGG_BAD_INPUT', 'random source returned the wrong number of bytes');
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, 2 * count);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = ((words[2 * i] >>> 11) * 2 ** 32 + words[2 * i + 1]) / 2 ** 53;
  return out;
}

export const cryptoRandom = (n: number): Uint8Array => randomFillSync(new Uint8Array(n));

/**
 * One partner's values → the residue vector (digits in [0, 2^b)) it masks and encrypts. Refuses,
 * naming part and index, any value that is not finite, exceeds its declared bound, or (counts) is
 * not an integer. `random` is for tests only; the default is node:crypto's CSPRNG.
 */
export function encodeValues(plan: EncodingPlan, values: Record<string, Float64Array>, random: (n: number) => Uint8Array = cryptoRandom): Float64Array {
  const out = new Float64Array(plan.totalSlots);
  const known = new Set(plan.parts.map((p) => p.name));
  for (const name of Object.keys(values)) {
    if (!known.has(name)) throw new FedmarkError('SECAGG_BAD_INPUT', `value part ${name} is not in the encoding plan`);
  }
  for (const part of plan.parts) {
    const v = values[part.name];
    if (!(v instanceof Float64Array) || v.length !== part.length) {
      throw new FedmarkError(
        'SECAGG_BAD_INPUT',
        `part ${part.name}: expected a Float64Array of ${part.length} values, got ${v instanceof Float64Array ? v.length : typeof v}`,
      );
    }
    const scale = 2 ** part.fractionBits;
    const u01 = part.kind === 'real' ? uniforms(part.length, random) : undefined;
    const base = 2 ** part.limbBits;
    for (let i = 0; i < part.length; i++) {
      const x = v[i];
      if (!Number.isFinite(x) || Math.abs(x) > part.maxAbs) {
        throw new FedmarkError('SECAGG_VALUE_OUT_OF_RANGE', `part ${part.name}: value ${x} at index ${i} exceeds the declared bound ±${part.maxAbs}`, {
          part: part.name,
          index: i,
          value: x,
          bound: part.maxAbs,
        });
      }
      let q: number;
      if (u01) {
        const y = x * scale;
        const lo = Math.floor(y);
        q = u01[i] < y - lo ? lo + 1 : lo;
      } else {
        if (!Number.isInteger(x))
          throw new FedmarkError('SECAGG_VALUE_OUT_OF_RANGE', `part ${part.name}: count ${x} at index ${i} is not an integer`, {
            part: part.name,
            index: i,
            value: x,
          });
        q = x;
      }
      let u = q + part.offset;
      const at = part.firstSlot + i * part.limbs;
      for (let l = 0; l < part.limbs; l++) {
        const digit = part.limbs === 1 ? u : u % base;
        out[at + l] = digit;
        u = (u - digit) / base;
      }
    }
  }
  return out;
}

/**
 * The decoded sums of `summands` partners from the unmasked residue vector. Refuses a vector whose
 * limb sums exceed what `summands` honest partners can produce: it is not such a sum.
 */
export function decodeSums(plan: EncodingPlan, residues: Float64Array, summands: number): Record<string, Float64Array> {
  if (residues.length < plan.totalSlots)
    throw new FedmarkError('SECAGG_BAD_INPUT', `decoded vector has ${residues.length} slots, the plan needs ${plan.totalSlots}`);
  if (!Number.isInteger(summands) || summands < 1 || summands > plan.maxSummands) {
    throw new FedmarkError('SECAGG_BAD_INPUT', `summands ${summands} must be in [1, ${plan.maxSummands}]`);
  }
  const out: Record<string, Float64Array> = {};
  for (const part of plan.parts) {
    const sums = new Float64Array(part.length);
    const scale = 2 ** part.fractionBits;
    const digitMax = part.limbs === 1 ? 2 * part.offset : 2 ** part.limbBits - 1;
    const limit = summands * digitMax;
    const shift = BigInt(summands) * BigInt(part.offset);
    for (let i = 0; i < part.length; i++) {
      const at = part.firstSlot + i * part.limbs;
      for (let l = 0; l < part.limbs; l++) {
        if (residues[at + l] > limit) {
          throw new FedmarkError(
            'SECAGG_DECODE_OUT_OF_RANGE',
            `part ${part.name}: slot ${at + l} holds ${residues[at + l]}, more than ${summands} partners can sum to (${limit})`,
          );
        }
      }
      if (part.limbs === 1) {
        sums[i] = (residues[at] - summands * part.offset) / scale;
      } else {
        let total = 0n;
        for (let l = part.limbs - 1; l >= 0; l--) total = (total << BigInt(part.limbBits)) + BigInt(residues[at + l]);
        sums[i] = Number(total - shift) / scale;
      }
    }
    out[part.name] = sums;
  }
  return out;
}

/** The exact integer each partner's value is quantised to is not observable; this is its error bound. */
export function quantisationErrorBound(part: PartEncoding, summands: number): { maxAbs: number; stdDev: number } {
  const step = 2 ** -part.fractionBits;
  return part.kind === 'count' ? { maxAbs: 0, stdDev: 0 } : { maxAbs: summands * step, stdDev: (Math.sqrt(summands) * step) / 2 };
}
