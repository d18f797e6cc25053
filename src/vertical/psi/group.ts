/**
 * The group every PSI job uses: the P-256 curve (SEC 2 / FIPS 186-5), with points carried as their
 * 32-byte big-endian x-coordinate only. x-only scalar multiplication is well defined because
 * x([k]P) = x([k](−P)), so P and −P (the two points sharing an x) behave as one element; the
 * blinding maps P ↦ [k]P commute across parties, which is what ring ECDH-PSI needs. The identity
 * has no x-coordinate and so cannot even be encoded; every received x is checked to be < p and to
 * lie on the curve (x³ − 3x + b a square mod p) before it is used.
 */
import { FedmarkError } from '../../errors.ts';

export const P256_P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
export const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
/** Group order n (prime; P-256 has cofactor 1, so every point but the identity has order n). */
export const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

/** Bytes of one encoded element (an x-coordinate). */
export const ELEMENT_BYTES = 32;

/** The two hash-to-curve suites a job spec may choose (see hash-to-curve.ts). */
export const SUITES = ['p256-ti-sha256', 'p256-rfc9380-sswu'] as const;
export type Suite = (typeof SUITES)[number];

/** Right-hand side of the curve equation y² = x³ − 3x + b (mod p). */
export function curveRhs(x: bigint): bigint {
  const r = (((x * x) % P256_P) * x - 3n * x + P256_B) % P256_P;
  return r < 0n ? r + P256_P : r;
}

export function bytesToBigint(bytes: Uint8Array, offset = 0, length = ELEMENT_BYTES): bigint {
  return BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString('hex'));
}

export function bigintTo32(value: bigint, out: Uint8Array = new Uint8Array(32), offset = 0): Uint8Array {
  out.set(Buffer.from(value.toString(16).padStart(64, '0'), 'hex'), offset);
  return out;
}

/** A per-job blinding scalar: 32 bytes big-endian in [1, n − 1]. */
export function checkScalar(scalar: Uint8Array): bigint {
  if (!(scalar instanceof Uint8Array) || scalar.length !== 32) {
    throw new FedmarkError('PSI_BAD_SCALAR', 'a PSI blinding scalar must be 32 bytes');
  }
  const k = bytesToBigint(scalar);
  if (k === 0n || k >= P256_N) throw new FedmarkError('PSI_BAD_SCALAR', 'a PSI blinding scalar must lie in [1, n − 1]');
  return k;
}

/** Why an encoded element was refused (null when it is a valid x-coordinate of a curve point). */
export function elementProblem(x: bigint, hasSquareRoot: (rhs: bigint) => boolean): string | null {
  if (x >= P256_P) return 'x-coordinate is not reduced mod p (non-canonical encoding)';
  if (!hasSquareRoot(curveRhs(x))) return 'x-coordinate is not on the P-256 curve';
  return null;
}

/** Packs a list of elements into one buffer (n × 32 bytes), the form every engine works on. */
export function packElements(list: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(list.length * ELEMENT_BYTES);
  list.forEach((e, i) => out.set(e, i * ELEMENT_BYTES));
  return out;
}

export function elementAt(packed: Uint8Array, i: number): Uint8Array {
  return packed.subarray(i * ELEMENT_BYTES, (i + 1) * ELEMENT_BYTES);
}

export function elementCount(packed: Uint8Array, what: string): number {
  if (packed.length % ELEMENT_BYTES !== 0) {
    throw new FedmarkError('PSI_BAD_LIST', `${what}: ${packed.length} bytes is not a whole number of ${ELEMENT_BYTES}-byte elements`);
  }
  return packed.length / ELEMENT_BYTES;
}
