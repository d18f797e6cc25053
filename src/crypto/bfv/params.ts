/**
 * BFV parameters (Brakerski 2012; Fan–Vercauteren, ePrint 2012/144) for exact modular aggregation, and
 * the worst-case noise bound that caps how many ciphertexts may be summed.
 *
 * BFV with batching holds N integers modulo a prime plaintext modulus t ≡ 1 (mod 2N), and adding
 * ciphertexts adds them slot-wise modulo t — exactly, which is what pairwise masks need to cancel
 * (CKKS adds approximate reals, so masks over it cannot cancel exactly).
 */
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';
import { assertHeStandardSecurity, parseHeParams } from '../ckks/params.ts';

export const bfvParamsSchema = z
  .object({
    scheme: z.literal('bfv'),
    polyModulusDegree: z.union([z.literal(4096), z.literal(8192), z.literal(16384), z.literal(32768)]),
    /**
     * Bit size of the single ciphertext prime q (aggregation needs no modulus chain). q is chosen
     * ≡ 1 (mod t) and ≡ 1 (mod 2N): see bfvCoeffPrime.
     */
    coeffModulusBits: z.tuple([z.number().int().min(30).max(60)]),
    /**
     * Bit size of the plaintext modulus t, a prime ≡ 1 (mod 2N) chosen by SEAL's PlainModulus.Batching.
     * At most 50 so every residue, and the sum of two, is exact in a float64.
     */
    plainModulusBits: z.number().int().min(17).max(50),
    /** Most fresh ciphertexts one sum may hold; defaults to, and may not exceed, the noise bound. */
    maxSummands: z
      .number()
      .int()
      .min(1)
      .max(1 << 24)
      .optional(),
  })
  .strict();

export type BfvParams = z.infer<typeof bfvParamsSchema>;

/**
 * N = 8192, one 60-bit prime q ≡ 1 (mod t), t a 40-bit batching prime: 8192 slots per ciphertext,
 * 7.5 wire bytes per value (seeded, bit-packed), 14 bits of measured noise budget fresh, 13 after 10
 * sums, 9 after 1024; worst-case correct for up to 8,000 summands (see bfvNoiseMaxSummands).
 * Alternatives measured in docs/CRYPTO.md.
 */
export const DEFAULT_BFV_PARAMS: BfvParams = Object.freeze({
  scheme: 'bfv',
  polyModulusDegree: 8192,
  coeffModulusBits: Object.freeze([60]) as unknown as number[],
  plainModulusBits: 40,
}) as BfvParams;

/**
 * Largest |e| of one coefficient of SEAL's fresh encryption noise: SEAL 4.1 samples e from a centred
 * binomial distribution (`sample_poly_cbd` in native/src/seal/util/rlwe.cpp: the difference of two
 * 21-bit Hamming weights, σ ≈ 3.24), whose support is [−21, 21].
 */
export const SEAL_CBD_NOISE_BOUND = 21;

/**
 * Worst-case number of fresh BFV ciphertexts whose sum still decrypts exactly.
 *
 * SEAL encodes m as ⌊(q·m + ⌊(t+1)/2⌋)/t⌋ = q·m/t + ε with |ε| ≤ 1/2, and a fresh symmetric
 * ciphertext decrypts to that plus e (|e| ≤ 21 per coefficient). A sum of n of them is
 * q·(Σm mod t)/t + Σε + Σe (mod q): the multiples of q from Σm ≥ t vanish modulo q. Decryption
 * rounds t·x/q, so it is exact while |Σε + Σe| < q/(2t). Requiring one more bit of headroom (SEAL's
 * RNS scale-and-round approximates the division) gives n·(21 + 1/2) ≤ q/(4t).
 */
export function bfvNoiseMaxSummands(q: bigint, t: bigint): number {
  const perSummandTwice = BigInt(2 * SEAL_CBD_NOISE_BOUND + 1); // 2·(21 + 1/2), to stay in integers
  return Number((2n * q) / (4n * t * perSummandTwice));
}

/** Validates the shape and the HE-standard 128-bit limit; the plain modulus itself is checked by BfvContext. */
export function validateBfvParams(input: unknown): BfvParams {
  const data = parseHeParams(bfvParamsSchema, input, 'BFV');
  const params: BfvParams = { ...data, coeffModulusBits: [data.coeffModulusBits[0]] };
  assertHeStandardSecurity(params.polyModulusDegree, params.coeffModulusBits, 'BFV');
  const total = params.coeffModulusBits[0];
  if (params.plainModulusBits + 12 > total) {
    throw new FedmarkError(
      'HE_BAD_PARAMS',
      `BFV plain modulus of ${params.plainModulusBits} bits leaves no noise budget under a ${total}-bit ciphertext modulus (need at least 12 bits between them)`,
    );
  }
  return params;
}

/** Deterministic Miller–Rabin for n < 3.3·10^24 (bases 2..41: Sorenson & Webster 2015). */
export function isPrime(n: bigint): boolean {
  if (n < 2n) return false;
  const small = [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n, 41n];
  for (const p of small) if (n % p === 0n) return n === p;
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  const powMod = (b: bigint, e: bigint): bigint => {
    let r = 1n;
    b %= n;
    while (e > 0n) {
      if (e & 1n) r = (r * b) % n;
      b = (b * b) % n;
      e >>= 1n;
    }
    return r;
  };
  outer: for (const a of small) {
    let x = powMod(a, d);
    if (x === 1n || x === n - 1n) continue;
    for (let i = 1; i < s; i++) {
      x = (x * x) % n;
      if (x === n - 1n) continue outer;
    }
    return false;
  }
  return true;
}

/**
 * The ciphertext prime: the largest `bits`-bit prime q ≡ 1 (mod 2N) (the NTT needs it) with q mod t
 * small — 1 when such a prime exists, else below 2^22. The second
 * condition is for speed: SEAL encodes Δ·m as ⌊(q·m + ⌊(t+1)/2⌋)/t⌋ through (q mod t)·m and a
 * bit-serial 128-by-64 division whose length grows with q mod t; in the WASM build a 40-bit q mod t
 * costs ~6 ms per ciphertext (measured: 8.3 ms → 2.6 ms per seeded encryption at N = 8192 with
 * q ≡ 1 mod t). Security is unchanged: RLWE hardness depends on N, log q and the error distribution,
 * not on q mod t (the HE standard's tables hold for any q of that size).
 */
export function bfvCoeffPrime(bits: number, t: bigint, n: number): bigint {
  const twoN = BigInt(2 * n);
  const low = 1n << BigInt(bits - 1);
  const high = 1n << BigInt(bits);
  // q = k·t + r with t ≡ 1 (mod 2N), so q ≡ k + r (mod 2N): r ≡ 1 − k.
  // First r = 1 (k ≡ 0 mod 2N); then r = r0 + 2N·j, since a fixed r0 can give every candidate a common factor.
  for (let k = ((high - 1n) / t / twoN) * twoN; k > 0n && k * t + 1n >= low; k -= twoN) {
    if (isPrime(k * t + 1n)) return k * t + 1n;
  }
  for (let k = (high - 1n) / t; k > 0n && k * t >= low - twoN * 257n; k--) {
    const r0 = (((1n - k) % twoN) + twoN) % twoN || twoN;
    for (let j = 0n; j <= 256n; j++) {
      const q = k * t + r0 + twoN * j;
      if (q >= low && q < high && isPrime(q)) return q;
    }
  }
  throw new FedmarkError('HE_BAD_PARAMS', `no ${bits}-bit prime q ≡ 1 mod ${2 * n} with small q mod t exists for t = ${t}`);
}
