/**
 * Signed protocol requests. Every request carries the sender's key id, job id, round, a timestamp,
 * a nonce and sha256(body) in headers, and an Ed25519 signature over a canonical string binding all
 * of them to the method and the path. Because the body's hash travels in a signed header, a server
 * can authenticate a request from its headers alone — before it reads a byte of the body — and check
 * the body against the signed hash once it has arrived (`verifyRequestHeaders`, then `bodyMatches`).
 * The verifier rejects unsigned, mis-signed, stale (clock skew beyond maxSkewMs) and replayed (nonce
 * already seen) requests.
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
  bodySha256: 'x-fedmark-body-sha256',
} as const;

/**
 * The signer's Ed25519 public key (base64). Sent with every request; a server needs it only where no
 * key is registered yet (registering a job: the owner's key is in the body the server has not read).
 */
export const PUBLIC_KEY_HEADER = 'x-fedmark-public-key';

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
  const bodySha256 = sha256Hex(input.body);
  const canonical = canonicalRequestString({
    method: input.method,
    path: input.path,
    bodySha256,
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
    [SIGNATURE_HEADERS.bodySha256]: bodySha256,
    [SIGNATURE_HEADERS.signature]: signBytes(new TextEncoder().encode(canonical), input.identity),
    [PUBLIC_KEY_HEADER]: Buffer.from(input.identity.signPublicKey).toString('base64'),
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
  { ok: true; keyId: string; jobId: string; round: number; bodySha256: string } | { ok: false; status: 401 | 409; code: string; error: string };

export interface VerifyOptions {
  /** The registered public key (base64) of a key id, or undefined when the key is unknown here. */
  lookupKey: (keyId: string) => string | undefined;
  nonces: NonceStore;
  maxSkewMs?: number;
  now?: number;
}

type HeaderBag = Record<string, string | string[] | undefined>;

/** A header's single value (undefined when absent or repeated). */
export function headerValue(headers: HeaderBag, name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) value = v;
  }
  return typeof value === 'string' ? value : undefined;
}

const reject = (status: 401 | 409, code: string, error: string): VerifyResult => ({ ok: false, status, code, error });

/**
 * Authenticates a request from its headers alone (method and path included), without its body: the
 * signature covers the body's hash header, which `bodyMatches` checks once the body has arrived (or,
 * given `request.body`, this function checks before it consumes the nonce).
 * Checks run from the cheapest and least revealing to the most: header syntax, the clock, then the
 * key (unknown keys and bad signatures are the caller's to make indistinguishable), the signature,
 * and last the nonce — only a correctly signed request may consume one.
 */
export function verifyRequestHeaders(headers: HeaderBag, request: { method: string; path: string; body?: Uint8Array }, options: VerifyOptions): VerifyResult {
  const values: Record<keyof typeof SIGNATURE_HEADERS, string | undefined> = {
    key: headerValue(headers, SIGNATURE_HEADERS.key),
    job: headerValue(headers, SIGNATURE_HEADERS.job),
    round: headerValue(headers, SIGNATURE_HEADERS.round),
    timestamp: headerValue(headers, SIGNATURE_HEADERS.timestamp),
    nonce: headerValue(headers, SIGNATURE_HEADERS.nonce),
    signature: headerValue(headers, SIGNATURE_HEADERS.signature),
    bodySha256: headerValue(headers, SIGNATURE_HEADERS.bodySha256),
  };
  const missing = (Object.keys(values) as (keyof typeof SIGNATURE_HEADERS)[]).filter((k) => values[k] === undefined);
  if (missing.length > 0) {
    return reject(401, 'AUTH_MISSING', `missing or repeated header(s): ${missing.map((k) => SIGNATURE_HEADERS[k]).join(', ')}`);
  }
  const { key, job, round, timestamp, nonce, signature, bodySha256 } = values as Record<keyof typeof SIGNATURE_HEADERS, string>;
  if (!/^(0|[1-9][0-9]{0,14})$/.test(round)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.round} must be a non-negative integer`);
  if (!/^[0-9]{1,16}$/.test(timestamp)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.timestamp} must be milliseconds since the epoch`);
  if (!NONCE_RE.test(nonce)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.nonce} must be 16–128 characters of [A-Za-z0-9_-]`);
  if (!FIELD_RE.test(job)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.job} is malformed`);
  if (!/^[0-9a-f]{32}$/.test(key)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.key} must be a 32-hex-character key id`);
  if (!/^[0-9a-f]{64}$/.test(bodySha256)) return reject(401, 'AUTH_MALFORMED', `${SIGNATURE_HEADERS.bodySha256} must be 64 lower-case hex characters`);

  // The clock before the key: a stale request is refused the same way whoever's key it names.
  const now = options.now ?? Date.now();
  const maxSkew = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const ts = Number(timestamp);
  if (Math.abs(now - ts) > maxSkew) {
    return reject(401, 'AUTH_STALE', `request timestamp is ${Math.round((now - ts) / 1000)} s off the server clock (allowed ±${maxSkew / 1000} s)`);
  }

  const publicKey = options.lookupKey(key);
  if (publicKey === undefined) return reject(401, 'AUTH_UNKNOWN_KEY', `key ${key} is not registered for this job`);
  if (keyIdOf(new Uint8Array(Buffer.from(publicKey, 'base64'))) !== key) {
    return reject(401, 'AUTH_UNKNOWN_KEY', `registered public key does not match key id ${key}`);
  }

  const canonical = canonicalRequestString({ method: request.method, path: request.path, bodySha256, jobId: job, round: Number(round), timestamp: ts, nonce });
  if (!verifyBytes(new TextEncoder().encode(canonical), signature, publicKey)) {
    return reject(401, 'AUTH_BAD_SIGNATURE', 'request signature does not verify (wrong key, or method/path/body/headers altered)');
  }
  if (request.body && !bodyMatches(bodySha256, request.body)) {
    return reject(401, 'AUTH_BAD_SIGNATURE', `request body does not match the signed ${SIGNATURE_HEADERS.bodySha256}`);
  }

  // Only a correctly signed request may consume a nonce, so forgeries cannot burn honest nonces.
  // The nonce must be remembered until the timestamp itself would be rejected as stale.
  if (!options.nonces.checkAndRecord(key, nonce, ts + maxSkew)) {
    return reject(409, 'AUTH_REPLAY', `nonce ${nonce} was already used by key ${key}`);
  }
  return { ok: true, keyId: key, jobId: job, round: Number(round), bodySha256 };
}

/** Whether the body that arrived is the one whose hash was signed. */
export function bodyMatches(bodySha256: string, body: Uint8Array): boolean {
  return sha256Hex(body) === bodySha256;
}

/** Headers and body at once (a server that has the body already): `verifyRequestHeaders` + `bodyMatches`. */
export function verifyRequest(headers: HeaderBag, request: { method: string; path: string; body: Uint8Array }, options: VerifyOptions): VerifyResult {
  return verifyRequestHeaders(headers, request, options);
}
