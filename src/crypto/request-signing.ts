/**
 * Signed protocol requests. Every request carries the sender's key id, job id, round, a timestamp
 * and a nonce, and an Ed25519 signature over a canonical string binding all of them to the method,
 * the path and sha256(body). The verifier rejects unsigned, mis-signed, stale (clock skew beyond
 * maxSkewMs) and replayed (nonce already seen) requests.
 */
import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../util/hash.ts';
import { keyId as keyIdOf, signBytes, verifyBytes, type Identity } from './identity.ts';

export const SIGNATURE_HEADERS = {
  key: 'x-fedmark-key',
  job: 'x-fedmark-job',
  round: 'x-fedmark-round',
  timestamp: 'x-fedmark-timestamp',
  nonce: 'x-fedmark-nonce',
  signature: 'x-fedmark-signature',
} as const;

export const DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000;

const NONCE_RE = /^[A-Za-z0-9_-]{16,128}$/;
const FIELD_RE = /^[\x21-\x7e]{1,512}$/;

export interface SignRequestInput {
  method: string;
  path: string;
  body: Uint8Array;
  jobId: string;
  round: number;
  identity: Identity;
  now?: number;
  nonce?: string;
}

/**
 * The exact bytes that are signed. Fields are newline-separated and validated to contain no
 * whitespace, so no two different requests share a canonical string.
 */
export function canonicalRequestString(f: {
  method: string;
  path: string;
  bodySha256: string;
  jobId: string;
  round: number;
  timestamp: number;
  nonce: string;
}): string {
  return ['FEDMARK-REQUEST-1', f.method.toUpperCase(), f.path, f.bodySha256, f.jobId, String(f.round), String(f.timestamp), f.nonce].join('\n');
}

export function signRequest(input: SignRequestInput): Record<string, string> {
  const timestamp = Math.floor(input.now ?? Date.now());
  const nonce = input.nonce ?? randomBytes(16).toString('hex');
  if (!FIELD_RE.test(input.method) || !FIELD_RE.test(input.path) || !FIELD_RE.test(input.jobId)) {
    throw new TypeError('method, path and jobId must be non-empty printable ASCII without spaces');
  }
  if (!Number.isSafeInteger(input.round) || input.round < 0) throw new TypeError('round must be a non-negative integer');
  if (!NONCE_RE.test(nonce)) throw new TypeError('nonce must be 16–128 characters of [A-Za-z0-9_-]');
  const canonical = canonicalRequestString({
    method: input.method,
    path: input.path,
    bodySha256: sha256Hex(input.body),
    jobId: input.jobId,
    round: input.round,
    timestamp,
    nonce,
  });
  return {
    [SIGNATURE_HEADERS.key]: keyIdOf(input.identity.signPublicKey),
    [SIGNATURE_HEADERS.job]: input.jobId,
    [SIGNATURE_HEADERS.round]: String(input.round),
    [SIGNATURE_HEADERS.timestamp]: String(timestamp),
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: signBytes(new TextEncoder().encode(canonical), input.identity),
  };
}

/** Remembers nonces per key until they expire; the coordinator backs this with SQLite. */
export interface NonceStore {
  /** true if the nonce is fresh (and is now recorded), false if it was seen before. */
  checkAndRecord(keyId: string, nonce: string, expiresAtMs: number): boolean;
}

export class MemoryNonceStore implements NonceStore {
  private readonly seen = new Map<string, number>();
  private readonly now: () => number;
  private sincePrune = 0;

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
  }

  checkAndRecord(keyId: string, nonce: string, expiresAtMs: number): boolean {
    if (++this.sincePrune >= 256) this.prune();
    const key = `${keyId}\n${nonce}`;
    if (this.seen.has(key)) return false;
    this.seen.set(key, expiresAtMs);
    return true;
  }

  /**
   * Drops nonces whose request timestamps are now outside the skew window: a replay of such a request
   * is already rejected as stale, so remembering the nonce no longer adds anything.
   */
  prune(): void {
    this.sincePrune = 0;
    const now = this.now();
    for (const [key, expires] of this.seen) if (expires < now) this.seen.delete(key);
  }

  get size(): number {
    return this.seen.size;
  }
}

export type VerifyResult =
  | { ok: true; keyId: string; jobId: string; round: number }
  | { ok: false; status: 401 | 409; code: string; error: string };

export interface VerifyOptions {
  lookupKey: (keyId: string) => string | undefined;
  nonces: NonceStore;
  maxSkewMs?: number;
  now?: number;
}

type HeaderBag = Record<string, string | string[] | undefined>;

function header(headers: HeaderBag, name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) value = v;
  }
  return typeof value === 'string' ? value : undefined;
}

const reject = (status: 401 | 409, code: string, error: string): VerifyResult => ({ ok: false, status, code, error });

export function verifyRequest(
  headers: HeaderBag,
  request: { method: string; path: string; body: Uint8Array },
  options: VerifyOptions,
): VerifyResult {
  const values: Record<keyof typeof SIGNATURE_HEADERS, string | undefined> = {
    key: header(headers, SIGNATURE_HEADERS.key),
    job: header(headers, SIGNATURE_HEADERS.job),
    round: header(headers, SIGNATURE_HEADERS.round),
    timestamp: header(headers, SIGNATURE_HEADERS.timestamp),
    nonce: header(headers, SIGNATURE_HEADERS.nonce),
    signature: header(headers, SIGNATURE_HEADERS.signature),
  };
  const missing = (Object.keys(values) as (keyof typeof SIGNATURE_HEADERS)[]).filter((k) => values[k] === undefined);
  if (missing.length > 0) {
    return reject(401, 'AUTH_MISSING', `missing or repeated header(s): ${missing.map((k) => SIGNATURE_HEADERS[k]).join(', ')}`);
  }
  const { key, job, round, timestamp, nonce, signature } = values as Record<keyof typeof SIGNATURE_HEADERS, string>;
  if (!/^(0|[1-9][0-9]{0,14})$/.test(round)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.round} must be a non-negative integer`);
  if (!/^[0-9]{1,16}$/.test(timestamp)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.timestamp} must be milliseconds since the epoch`);
  if (!NONCE_RE.test(nonce)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.nonce} must be 16–128 characters of [A-Za-z0-9_-]`);
  if (!FIELD_RE.test(job)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.job} is malformed`);
  if (!/^[0-9a-f]{32}$/.test(key)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.key} must be a 32-hex-character key id`);

  const publicKey = options.lookupKey(key);
  if (publicKey === undefined) return reject(401, 'AUTH_UNKNOWN_KEY', `key ${key} is not registered for this job`);
  if (keyIdOf(new Uint8Array(Buffer.from(publicKey, 'base64'))) !== key) {
    return reject(401, 'AUTH_UNKNOWN_KEY', `registered public key does not match key id ${key}`);
  }

  const now = options.now ?? Date.now();
  const maxSkew = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const ts = Number(timestamp);
  if (Math.abs(now - ts) > maxSkew) {
    return reject(401, 'AUTH_STALE', `request timestamp is ${Math.round((now - ts) / 1000)} s off the server clock (allowed ±${maxSkew / 1000} s)`);
  }

  const canonical = canonicalRequestString({
    method: request.method,
    path: request.path,
    bodySha256: sha256Hex(request.body),
    jobId: job,
    round: Number(round),
    timestamp: ts,
    nonce,
  });
  if (!verifyBytes(new TextEncoder().encode(canonical), signature, publicKey)) {
    return reject(401, 'AUTH_BAD_SIGNATURE', 'request signature does not verify (wrong key, or method/path/body/headers altered)');
  }

  // Only a correctly signed request may consume a nonce, so forgeries cannot burn honest nonces.
  // The nonce must be remembered until the timestamp itself would be rejected as stale.
  if (!options.nonces.checkAndRecord(key, nonce, ts + maxSkew)) {
    return reject(409, 'AUTH_REPLAY', `nonce ${nonce} was already used by key ${key}`);
  }
  return { ok: true, keyId: key, jobId: job, round: Number(round) };
}
