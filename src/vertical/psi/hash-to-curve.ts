/**
 * Hashing normalised ids onto P-256, shared by the fast (OpenSSL) and reference (@noble/curves)
 * engines so that both produce the same points.
 *
 * Suite 'p256-ti-sha256' (the default, and the fast path): try-and-increment onto x. Candidate c
 * (c = 0, 1, …, 255) is x_c = SHA-256("fedmark-psi-h2x-ti-v1" ‖ u16(|domain|) ‖ domain ‖ u32(|id|) ‖
 * id ‖ u8(c)) read big-endian; the first x_c < p with x_c³ − 3x_c + b a square mod p is the id's
 * element. Each candidate succeeds with probability ≈ 1/2, so 256 failures have probability 2^-256.
 * Modelling SHA-256 as a random oracle, the output is uniform over the curve's x-coordinates and
 * nobody knows a discrete-log relation between two ids' points — the property the DDH argument of
 * ECDH-PSI needs (Meadows 1986; Huberman–Franklin–Hogg 1999). Its running time depends on the id
 * (how many candidates fail); that is a local timing channel only, visible to whoever can time the
 * party's own process.
 *
 * Suite 'p256-rfc9380-sswu': RFC 9380 hash_to_curve with P256_XMD:SHA-256_SSWU_RO_ and DST = the
 * job's hash domain; constant-time by construction, but in JavaScript about 3× slower than the
 * try-and-increment (benchmarks/psi measures both side by side).
 */
import { createHash } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';

const TI_TAG = Buffer.from('fedmark-psi-h2x-ti-v1', 'utf8');
export const TI_MAX_CANDIDATES = 256;

/** SHA-256 state fed with everything but the counter; digest per candidate from a copy. */
export function tiPrefix(domain: string, id: string): ReturnType<typeof createHash> {
  const d = Buffer.from(domain, 'utf8');
  const v = Buffer.from(id, 'utf8');
  if (d.length > 0xffff) throw new FedmarkError('PSI_BAD_DOMAIN', 'hash domain longer than 65535 bytes');
  const lens = Buffer.alloc(6);
  lens.writeUInt16BE(d.length, 0);
  lens.writeUInt32BE(v.length, 2);
  return createHash('sha256').update(TI_TAG).update(lens.subarray(0, 2)).update(d).update(lens.subarray(2)).update(v);
}

const COUNTER = [...Array(TI_MAX_CANDIDATES).keys()].map((c) => Buffer.from([c]));

/** Candidate x-coordinate number c for id under domain (32 bytes, not yet checked). */
export function tiCandidate(prefix: ReturnType<typeof createHash>, c: number): Buffer {
  return prefix.copy().update(COUNTER[c]).digest();
}

export function tiExhausted(id: string): FedmarkError {
  return new FedmarkError('PSI_HASH_TO_CURVE_FAILED', `no curve point among ${TI_MAX_CANDIDATES} candidates for id ${JSON.stringify(id.slice(0, 40))}`);
}

/** The DST of the RFC 9380 suite. */
export function rfc9380Dst(domain: string): Uint8Array {
  const dst = Buffer.from(domain, 'utf8');
  if (dst.length > 255) throw new FedmarkError('PSI_BAD_DOMAIN', 'RFC 9380 DSTs are at most 255 bytes');
  return new Uint8Array(dst);
}
