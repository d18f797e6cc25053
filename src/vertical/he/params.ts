/**
 * Parameters and noise analysis of the label holder's BFV key in vertical SecureBoost.
 *
 * The feature holder computes, for one node and one of its feature columns, Σ_blocks ct_b · P_b where
 * ct_b encrypts 2r rows' (g, h) by coefficient (g_j at X^j, h_j at X^{r+j}) and
 * P_b = Σ_{i∈node∩b} X^{2r·bin(i) − i}: coefficient 2r·k of the sum is the gradient sum of bin k and
 * coefficient 2r·k + r its hessian sum (rotation-free, docs/VERTICAL.md). Every other coefficient mixes
 * rows with one another and is replaced by a uniform value mod t (the mask); the ciphertext noise,
 * which depends on P, is re-randomised with an encryption of zero under the label holder's public key
 * and flooded with uniform noise far larger than it; then the ciphertext is switched down to its last
 * prime. What the label holder can decrypt is the per-bin sums and values independent of P.
 *
 * The bounds, per coefficient, as SEAL 4.1 computes (its encoder scales m by q/t with rounding, so a
 * plaintext product adds no multiple of q; fresh noise is centred binomial in [−21, 21]):
 *   product noise (depends on P):  B_e = (rows + r) · (21 + ½)         (one ±1 monomial per row)
 *   re-randomisation (independent): B_pk = 21 + 21·N + 21              (e₁ + e·u + e₂·s, u and s ternary)
 *   flooding (independent):         B_f, uniform in [−B_f, B_f]
 * Decryption before the switch needs B_e + B_pk + B_f + ½ < q/(2t); after switching from q to q₁ the
 * noise is (that)·q₁/q + ½ + N/2 (rounding of c₀ and c₁·s) and needs to stay < q₁/(2t). The flooding
 * hides B_e to statistical distance ≤ B_e/B_f per coefficient (the smudging lemma); `floodSecurityBits`
 * is log₂(B_f/B_e), refused below `minFloodBits`.
 */
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';
import { HE_STANDARD_MAX_COEFF_BITS } from '../../crypto/ckks/params.ts';

export const verticalHeParamsSchema = z.strictObject({
  polyModulusDegree: z.literal(8192).default(8192),
  /** Ciphertext primes, largest first (the switch keeps the first), then SEAL's special prime. */
  coeffModulusBits: z.array(z.number().int().min(30).max(60)).min(3).max(4).default([60, 55, 60]),
  /** Plain modulus t: per-bin sums of fixed-point gradients live in (−t/2, t/2). */
  plainModulusBits: z.number().int().min(30).max(50).default(44),
  /** Least statistical security of the noise flooding, log₂(B_f / B_e) per coefficient. */
  minFloodBits: z.number().int().min(20).max(128).default(40),
});

export type VerticalHeParams = z.output<typeof verticalHeParamsSchema>;
export type VerticalHeParamsInput = z.input<typeof verticalHeParamsSchema>;

export const DEFAULT_VERTICAL_HE: VerticalHeParams = Object.freeze(verticalHeParamsSchema.parse({})) as VerticalHeParams;

export function parseVerticalHeParams(input: unknown): VerticalHeParams {
  const r = verticalHeParamsSchema.safeParse(input ?? {});
  if (!r.success) {
    const i = r.error.issues[0];
    throw new FedmarkError('VERTICAL_HE_PARAMS', `vertical HE parameters: ${i?.path.join('.') || '(root)'}: ${i?.message}`);
  }
  const p = r.data;
  const total = p.coeffModulusBits.reduce((a, b) => a + b, 0);
  const limit = HE_STANDARD_MAX_COEFF_BITS[p.polyModulusDegree];
  if (total > limit) {
    throw new FedmarkError(
      'VERTICAL_HE_PARAMS',
      `vertical HE parameters below 128-bit security: ${total} coefficient-modulus bits, N=${p.polyModulusDegree} allows ${limit}`,
    );
  }
  return p;
}

/** Rows per gradient ciphertext when the widest feature column has `maxBins` bins. */
export function rowsPerCiphertext(n: number, maxBins: number): number {
  if (!(Number.isInteger(maxBins) && maxBins >= 2)) throw new FedmarkError('VERTICAL_HE_PARAMS', `maxBins must be an integer ≥ 2, got ${maxBins}`);
  const r = Math.floor(n / (2 * maxBins));
  if (r < 1) throw new FedmarkError('VERTICAL_HE_PARAMS', `${maxBins} bins do not fit a degree-${n} polynomial`);
  return r;
}

export interface NoisePlan {
  /** Rows per gradient ciphertext. */
  rows: number;
  /** Fixed-point scale: g and h are sent as round(value · 2^scaleBits). */
  scaleBits: number;
  /** log₂ of the flooding bound B_f. */
  floodBits: number;
  /** log₂(B_f / B_e): statistical security of the flooding per coefficient. */
  floodSecurityBits: number;
}

const log2 = (x: bigint): number => {
  const s = x.toString(2).length;
  if (s <= 52) return Math.log2(Number(x));
  return s - 52 + Math.log2(Number(x >> BigInt(s - 52)));
};

/**
 * The fixed-point scale and flooding bound for `trainRows` rows, from the actual primes of the context
 * (q₁ the prime the result is switched to, q the product of all ciphertext primes, t the plain modulus).
 * Throws VERTICAL_HE_PARAMS when the rows do not fit or the flooding would be weaker than minFloodBits.
 */
export function noisePlan(p: { n: number; rows: number; minFloodBits: number }, primes: { q: bigint; q1: bigint; t: bigint }, trainRows: number): NoisePlan {
  const { q, q1, t } = primes;
  const { rows } = p;
  if (!(Number.isInteger(rows) && rows >= 1 && 4 * rows <= p.n))
    throw new FedmarkError('VERTICAL_HE_PARAMS', `${rows} rows per ciphertext do not fit degree ${p.n}`);
  if (!(Number.isInteger(trainRows) && trainRows >= 1))
    throw new FedmarkError('VERTICAL_HE_PARAMS', `training rows must be a positive integer, got ${trainRows}`);
  // |Σ round(g·2^s)| ≤ rows·2^s with |g| ≤ 1 must stay below t/2 (with one bit of slack for rounding).
  const scaleBits = Math.floor(log2((t - 1n) / 2n / BigInt(trainRows))) - 1;
  if (scaleBits < 12) {
    throw new FedmarkError(
      'VERTICAL_HE_PARAMS',
      `${trainRows} rows leave only ${scaleBits} fixed-point bits under a ${t.toString(2).length}-bit plain modulus (need ≥ 12)`,
    );
  }
  const N = BigInt(p.n);
  const be = ((BigInt(trainRows) + BigInt(rows)) * 43n) / 2n + 1n;
  const bpk = 21n * N + 43n;
  // After the switch: (be + bpk + bf)·q1/q + N/2 + 1 < q1/(2t)  ⇔  bf < q/(2t) − (N/2 + 1)·q/q1 − be − bpk.
  const ratio = q / q1;
  const room = q / (2n * t) - (N / 2n + 1n) * (ratio + 1n) - be - bpk;
  if (room <= 0n) throw new FedmarkError('VERTICAL_HE_PARAMS', 'the ciphertext modulus leaves no room for noise flooding');
  const floodBits = room.toString(2).length - 2;
  const floodSecurityBits = floodBits - log2(be);
  if (floodSecurityBits < p.minFloodBits) {
    throw new FedmarkError(
      'VERTICAL_HE_PARAMS',
      `noise flooding for ${trainRows} rows would give ${floodSecurityBits.toFixed(1)} bits of statistical security, below the required ${p.minFloodBits}: use a larger ciphertext modulus`,
    );
  }
  return { rows, scaleBits, floodBits, floodSecurityBits };
}
