/**
 * The fast path: P-256 through OpenSSL (node:crypto). `ECDH.computeSecret` on a compressed point is
 * an x-only scalar multiplication with point validation built in (OpenSSL rejects an x ≥ p or off
 * the curve), and `ECDH.convertKey` decompresses (square root mod p) without multiplying, which is
 * how try-and-increment tests a candidate cheaply. Synchronous and stateless apart from a per-call
 * ECDH object: run in-thread or from a piscina worker (worker.mjs) on batches.
 */
import { createECDH, ECDH } from 'node:crypto';
import { p256_hasher } from '@noble/curves/nist.js';
import { ELEMENT_BYTES, type Suite } from './group.ts';
import { rfc9380Dst, tiCandidate, tiExhausted, tiPrefix, TI_MAX_CANDIDATES } from './hash-to-curve.ts';

export type NativeTask =
  | { op: 'hash-blind'; suite: Suite; domain: string; ids: string[]; scalar: Uint8Array }
  | { op: 'blind'; xs: Uint8Array; scalar: Uint8Array }
  | { op: 'random'; count: number; seed: Uint8Array };

/** `index` is relative to the task's batch. */
export type NativeResult = { ok: true; out: Uint8Array } | { ok: false; index: number; reason: string };

const CURVE = 'prime256v1';
/** p, big-endian: an encoded x must be below it (the encoding is canonical). */
const P_BYTES = Buffer.from('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff', 'hex');

function keyed(scalar: Uint8Array): ECDH {
  const ecdh = createECDH(CURVE);
  ecdh.setPrivateKey(Buffer.from(scalar.buffer, scalar.byteOffset, scalar.byteLength));
  return ecdh;
}

/** Uncompressed point for the first valid candidate, or null when every candidate failed. */
function tiPoint(domain: string, id: string): Buffer | null {
  const prefix = tiPrefix(domain, id);
  const compressed = Buffer.alloc(33);
  compressed[0] = 2;
  for (let c = 0; c < TI_MAX_CANDIDATES; c++) {
    const x = tiCandidate(prefix, c);
    if (x.compare(P_BYTES) >= 0) continue;
    x.copy(compressed, 1);
    try {
      return ECDH.convertKey(compressed, CURVE, undefined, undefined, 'uncompressed') as Buffer;
    } catch {
      // x³ − 3x + b is not a square: next candidate.
    }
  }
  return null;
}

function rfc9380Point(domain: string, id: string): Buffer {
  const point = p256_hasher.hashToCurve(new TextEncoder().encode(id), { DST: rfc9380Dst(domain) });
  return Buffer.from(point.toBytes(false));
}

function hashBlind(task: Extract<NativeTask, { op: 'hash-blind' }>): NativeResult {
  const ecdh = keyed(task.scalar);
  const out = new Uint8Array(task.ids.length * ELEMENT_BYTES);
  for (let i = 0; i < task.ids.length; i++) {
    const point = task.suite === 'p256-ti-sha256' ? tiPoint(task.domain, task.ids[i]) : rfc9380Point(task.domain, task.ids[i]);
    if (!point) return { ok: false, index: i, reason: tiExhausted(task.ids[i]).message };
    out.set(ecdh.computeSecret(point), i * ELEMENT_BYTES);
  }
  return { ok: true, out };
}

function blind(task: Extract<NativeTask, { op: 'blind' }>): NativeResult {
  const ecdh = keyed(task.scalar);
  const n = task.xs.length / ELEMENT_BYTES;
  const out = new Uint8Array(task.xs.length);
  const compressed = Buffer.alloc(33);
  compressed[0] = 2;
  const xs = Buffer.from(task.xs.buffer, task.xs.byteOffset, task.xs.byteLength);
  for (let i = 0; i < n; i++) {
    const x = xs.subarray(i * ELEMENT_BYTES, (i + 1) * ELEMENT_BYTES);
    if (x.compare(P_BYTES) >= 0) return { ok: false, index: i, reason: 'x-coordinate is not reduced mod p (non-canonical encoding)' };
    x.copy(compressed, 1);
    let r: Buffer;
    try {
      r = ecdh.computeSecret(compressed);
    } catch {
      return { ok: false, index: i, reason: 'x-coordinate is not on the P-256 curve' };
    }
    out.set(r, i * ELEMENT_BYTES);
  }
  return { ok: true, out };
}

/**
 * Uniformly random curve elements (padding dummies): try-and-increment on random bytes, which has
 * the same distribution as a blinded real id, so the dummies cannot be told apart.
 */
function random(task: Extract<NativeTask, { op: 'random' }>): NativeResult {
  const out = new Uint8Array(task.count * ELEMENT_BYTES);
  const seed = Buffer.from(task.seed).toString('base64');
  for (let i = 0; i < task.count; i++) {
    const point = tiPoint('fedmark-psi-v1|dummy', `${seed}|${i}`);
    if (!point) return { ok: false, index: i, reason: 'no curve point for a dummy' };
    out.set(point.subarray(1, 1 + ELEMENT_BYTES), i * ELEMENT_BYTES);
  }
  return { ok: true, out };
}

export function runNativeTask(task: NativeTask): NativeResult {
  switch (task.op) {
    case 'hash-blind':
      return hashBlind(task);
    case 'blind':
      return blind(task);
    case 'random':
      return random(task);
  }
}

/** Uncompressed hash point of one id (tests compare it with the reference). */
export function nativeHashPoint(suite: Suite, domain: string, id: string): Uint8Array | null {
  const p = suite === 'p256-ti-sha256' ? tiPoint(domain, id) : rfc9380Point(domain, id);
  return p ? new Uint8Array(p) : null;
}
