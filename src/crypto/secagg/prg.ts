/**
 * Mask streams of secure aggregation: keys from HKDF-SHA256 (RFC 5869), expanded with AES-256-CTR
 * (NIST SP 800-38A) and mapped to uniform residues modulo the plaintext modulus t by rejection
 * sampling, so no residue is more likely than another (reducing a wider integer mod t would bias the
 * low residues). All primitives are node:crypto's (OpenSSL).
 */
import { createCipheriv, hkdfSync } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';

const PAIRWISE_SALT = new TextEncoder().encode('fedmark-secagg-1/pairwise');
const SELF_SALT = new TextEncoder().encode('fedmark-secagg-1/self-mask');
const ZERO_IV = new Uint8Array(16);
const KEYSTREAM_CHUNK = 1 << 16;
const TWO_32 = 2 ** 32;

/** Where a mask belongs: every stream is bound to the job, round and attempt it was made for. */
export interface MaskBinding {
  jobId: string;
  round: number;
  attempt: number;
}

/** Unambiguous concatenation: each field as a 2-byte big-endian length and its UTF-8 bytes. */
export function encodeFields(fields: (string | number)[]): Uint8Array {
  const parts = fields.map((f) => new TextEncoder().encode(String(f)));
  const out = new Uint8Array(parts.reduce((a, p) => a + 2 + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    if (p.length > 0xffff) throw new FedmarkError('SECAGG_BAD_INPUT', 'a binding field is longer than 65535 bytes');
    out[pos] = p.length >>> 8;
    out[pos + 1] = p.length & 0xff;
    out.set(p, pos + 2);
    pos += 2 + p.length;
  }
  return out;
}

/**
 * The AES key of the pairwise mask between partners i and j (key ids, in index order so both derive
 * the same): HKDF-SHA256(DH(s_i, s_j), info = job|round|attempt|i|j) — Bonawitz et al. 2017, §4.
 */
export function pairwiseMaskKey(sharedSecret: Uint8Array, b: MaskBinding, lower: string, upper: string): Uint8Array {
  const info = encodeFields(['pairwise', b.jobId, b.round, b.attempt, lower, upper]);
  return new Uint8Array(hkdfSync('sha256', sharedSecret, PAIRWISE_SALT, info, 32));
}

/** The AES key of partner u's self-mask: HKDF-SHA256(seed b_u, info = job|round|attempt|u). */
export function selfMaskKey(seed: Uint8Array, b: MaskBinding, owner: string): Uint8Array {
  const info = encodeFields(['self', b.jobId, b.round, b.attempt, owner]);
  return new Uint8Array(hkdfSync('sha256', seed, SELF_SALT, info, 32));
}

/** Largest plaintext modulus the float64 arithmetic below handles exactly (sums stay below 2^53). */
export const MAX_MODULUS = 2 ** 50;

function checkModulus(t: number): void {
  if (!Number.isSafeInteger(t) || t < 2 || t > MAX_MODULUS) {
    throw new FedmarkError('SECAGG_BAD_INPUT', `mask modulus ${t} must be an integer in [2, 2^50]`);
  }
}

/**
 * Adds sign·PRG(key) to `acc`, slot by slot, without reducing modulo t (the caller reduces once at
 * the end — a float64 holds the unreduced sum of many streams exactly, and skipping the per-value
 * reduction is a third of the cost). The stream is AES-256-CTR with a zero IV (every key is used for
 * exactly one stream). Each candidate is one little-endian 32-bit word (t ≤ 2^32) or two (t > 2^32)
 * of keystream with the bits above log2 t cleared; candidates ≥ t are rejected and the next is drawn,
 * so every residue is equally likely.
 */
function accumulateStream(acc: Float64Array, key: Uint8Array, t: number, sign: 1 | -1): void {
  let bits = 1;
  while (2 ** bits <= t) bits++;
  const wide = bits > 32;
  const loMask = wide || bits === 32 ? 0xffffffff : 2 ** bits - 1;
  const hiMask = wide ? 2 ** (bits - 32) - 1 : 0;
  const cipher = createCipheriv('aes-256-ctr', key, ZERO_IV);
  const zeros = new Uint8Array(KEYSTREAM_CHUNK);
  const n = acc.length;
  const step = wide ? 2 : 1;
  let i = 0;
  while (i < n) {
    let chunk: Uint8Array = cipher.update(zeros);
    if (chunk.byteOffset % 4 !== 0) chunk = chunk.slice();
    const w = new Uint32Array(chunk.buffer, chunk.byteOffset, chunk.byteLength >>> 2);
    const end = w.length - step;
    if (sign > 0) {
      for (let p = 0; p <= end && i < n; p += step) {
        const v = wide ? (w[p + 1] & hiMask) * TWO_32 + w[p] : (w[p] & loMask) >>> 0;
        if (v < t) acc[i++] += v; // else rejected: the next candidate is drawn
      }
    } else {
      for (let p = 0; p <= end && i < n; p += step) {
        const v = wide ? (w[p + 1] & hiMask) * TWO_32 + w[p] : (w[p] & loMask) >>> 0;
        if (v < t) acc[i++] -= v;
      }
    }
  }
}

/**
 * Adds and removes mask streams on a vector of residues modulo t. Entries stay exact float64 integers
 * while |entry| < 2^53, so the accumulator reduces every ⌊2^53/t⌋ − 2 streams and at `finish()`.
 */
export class MaskAccumulator {
  private pending = 0;
  private readonly cap: number;

  constructor(
    readonly values: Float64Array,
    readonly t: number,
  ) {
    checkModulus(t);
    this.cap = Math.max(1, Math.floor(2 ** 53 / t) - 2);
  }

  add(key: Uint8Array, sign: 1 | -1): void {
    if (this.pending >= this.cap) this.reduce();
    accumulateStream(this.values, key, this.t, sign);
    this.pending++;
  }

  private reduce(): void {
    const { values, t } = this;
    for (let i = 0; i < values.length; i++) {
      const r = values[i] % t;
      values[i] = r < 0 ? r + t : r;
    }
    this.pending = 0;
  }

  /** Reduces every entry to [0, t) and returns the vector. */
  finish(): Float64Array {
    this.reduce();
    return this.values;
  }
}

/** Adds sign·PRG(key) to `target` modulo t, in place (target holds residues). */
export function applyMask(target: Float64Array, key: Uint8Array, t: number, sign: 1 | -1): void {
  const acc = new MaskAccumulator(target, t);
  acc.add(key, sign);
  acc.finish();
}

/** The mask stream itself (0 + PRG(key) mod t), for tests and for checks. */
export function maskStream(key: Uint8Array, length: number, t: number): Float64Array {
  const out = new Float64Array(length);
  applyMask(out, key, t, 1);
  return out;
}
