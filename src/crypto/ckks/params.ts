/**
 * CKKS parameters and the value bound they imply. Validation refuses any set below 128-bit security
 * (Homomorphic Encryption Security Standard, Albrecht et al. 2018) and any set without headroom.
 */
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';

/**
 * Largest total coefficient-modulus bit count for 128-bit classical security with a ternary secret,
 * from the Homomorphic Encryption Security Standard (Albrecht et al., 2018), Table 1 — the same
 * numbers as SEAL's `CoeffModulus::MaxBitCount(N, sec_level_type::tc128)`.
 */
export const HE_STANDARD_MAX_COEFF_BITS: Readonly<Record<number, number>> = {
  4096: 109,
  8192: 218,
  16384: 438,
  32768: 881,
};

export const heParamsSchema = z
  .object({
    scheme: z.literal('ckks'),
    polyModulusDegree: z.union([z.literal(4096), z.literal(8192), z.literal(16384), z.literal(32768)]),
    /** Bit sizes of the RNS primes; with more than one, the last is SEAL's special (key-switching) prime. */
    coeffModulusBits: z.array(z.number().int().min(20).max(60)).min(1).max(30),
    /** log2 of the CKKS scale Δ. */
    scaleBits: z.number().int().min(20).max(60),
    /** Most ciphertexts that may ever be summed; bounds each summand so the sum cannot overflow. */
    maxSummands: z
      .number()
      .int()
      .min(1)
      .max(1 << 20)
      .optional(),
  })
  .strict();

export type HeParams = z.infer<typeof heParamsSchema>;

/**
 * N=8192, one 60-bit prime, Δ=2^40: 4096 slots, ≈15.0 wire bytes per parameter, max abs error
 * ≈2e-9 on a sum of 10 partners, and room for sums up to 2^18 in magnitude (4096 per partner with 64
 * partners). See docs/CRYPTO.md for the table of alternatives measured.
 */
export const DEFAULT_HE_PARAMS: HeParams = Object.freeze({
  scheme: 'ckks',
  polyModulusDegree: 8192,
  coeffModulusBits: Object.freeze([60]) as unknown as number[],
  scaleBits: 40,
  maxSummands: 64,
}) as HeParams;

export const DEFAULT_MAX_SUMMANDS = 64;

export interface HeValueBounds {
  /** Data-level primes: all of them when there is one, else all but the special prime. */
  dataPrimeBits: number[];
  /** Largest |slot value| any ciphertext (including the final sum) may hold and still decrypt correctly. */
  maxAbsSlotValue: number;
  maxSummands: number;
  /** Largest |value| a single partner may encrypt: maxAbsSlotValue / maxSummands. */
  maxAbsInputValue: number;
}

/**
 * Decryption is correct while every coefficient of Δ·m + e stays below q/2 in magnitude. A CKKS
 * encoding's coefficients are bounded by the largest slot magnitude (the inverse canonical embedding
 * averages N unit-modulus terms), and q > 2^(Σbits − k) for k data primes, so slot values must stay
 * below 2^(Σbits − k − 1 − scaleBits). The fresh-encryption noise (≈ a few thousand, i.e. ~2^12) and
 * rounding are far below the remaining factor, which is the safety margin.
 */
export function heValueBounds(params: HeParams): HeValueBounds {
  const bits = params.coeffModulusBits;
  const dataPrimeBits = bits.length === 1 ? [...bits] : bits.slice(0, -1);
  const dataBits = dataPrimeBits.reduce((a, b) => a + b, 0);
  const exponent = dataBits - dataPrimeBits.length - 1 - params.scaleBits;
  const maxSummands = params.maxSummands ?? DEFAULT_MAX_SUMMANDS;
  const maxAbsSlotValue = 2 ** exponent;
  return { dataPrimeBits, maxAbsSlotValue, maxSummands, maxAbsInputValue: maxAbsSlotValue / maxSummands };
}

/** Parses HE parameters of any scheme with its schema; HE_BAD_PARAMS names the first problem. */
export function parseHeParams<S extends z.ZodTypeAny>(schema: S, input: unknown, label: string): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError('HE_BAD_PARAMS', `invalid ${label} parameters at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** Throws HE_INSECURE_PARAMS when the coefficient modulus exceeds the HE standard's 128-bit bound for N. */
export function assertHeStandardSecurity(polyModulusDegree: number, coeffModulusBits: number[], label: string): void {
  const total = coeffModulusBits.reduce((a, b) => a + b, 0);
  const limit = HE_STANDARD_MAX_COEFF_BITS[polyModulusDegree];
  if (total > limit) {
    throw new FedmarkError(
      'HE_INSECURE_PARAMS',
      `${label} parameters below 128-bit security: coefficient modulus has ${total} bits but N=${polyModulusDegree} allows at most ${limit} (HE standard, ternary secret)`,
      { totalBits: total, limit },
    );
  }
}

/** Validates and normalises HE parameters (fills maxSummands), refusing sets below 128-bit security. */
export function validateHeParams(input: unknown): HeParams {
  const data = parseHeParams(heParamsSchema, input, 'HE');
  const params: HeParams = { ...data, coeffModulusBits: [...data.coeffModulusBits], maxSummands: data.maxSummands ?? DEFAULT_MAX_SUMMANDS };
  assertHeStandardSecurity(params.polyModulusDegree, params.coeffModulusBits, 'HE');
  const bounds = heValueBounds(params);
  if (bounds.maxAbsInputValue < 1) {
    throw new FedmarkError(
      'HE_BAD_PARAMS',
      `HE parameters leave no headroom: data primes ${bounds.dataPrimeBits.join('+')} bits with scale 2^${params.scaleBits} allow |sum| < ${bounds.maxAbsSlotValue}, i.e. |value| < ${bounds.maxAbsInputValue} per partner for ${bounds.maxSummands} summands (need ≥ 1)`,
    );
  }
  return params;
}
