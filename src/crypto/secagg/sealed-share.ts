/**
 * A share pair (mask-key share, seed share) sealed from one partner to one holder, as Bonawitz et al.
 * (2017, round 1) do: an authenticated encryption keyed by key agreement between the two partners'
 * per-round share-encryption keys (c_u, c_v). Here: X25519 → HKDF-SHA256 (info = the binding) →
 * AES-256-GCM with the binding — config, job, round, attempt, sender, recipient — as associated data,
 * all node:crypto. A sealed share moved to another attempt or another recipient does not open, and
 * the round/attempt it was made for is readable up front so the refusal can say so.
 *
 * Sealed layout: version (1) | round (u32 BE) | attempt (u32 BE) | nonce (12) | ciphertext (66) | tag (16).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { SecaggError } from './errors.ts';
import { encodeFields } from './prg.ts';
import { SHARE_BYTES, type MessageHeader } from './messages.ts';
import { x25519Agree } from './x25519.ts';

const VERSION = 1;
const PREFIX = 1 + 4 + 4;
const NONCE = 12;
const TAG = 16;
export const SEALED_SHARE_BYTES = PREFIX + NONCE + 2 * SHARE_BYTES + TAG;
const SALT = new TextEncoder().encode('fedmark-secagg-1/share-seal');

export interface SharePair {
  keyShare: Uint8Array;
  seedShare: Uint8Array;
}

export interface ShareRoute extends MessageHeader {
  from: string;
  to: string;
}

function binding(r: ShareRoute): Uint8Array {
  return encodeFields(['share', r.configId, r.jobId, r.round, r.attempt, r.from, r.to]);
}

function sealKey(shared: Uint8Array, aad: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, SALT, aad, 32));
}

export function sealSharePair(route: ShareRoute, pair: SharePair, recipientSharePublicKey: Uint8Array, senderShareSecretKey: Uint8Array): Uint8Array {
  if (pair.keyShare.length !== SHARE_BYTES || pair.seedShare.length !== SHARE_BYTES) {
    throw new SecaggError('SECAGG_BAD_MESSAGE', 'share', `a share must be ${SHARE_BYTES} bytes`);
  }
  const aad = binding(route);
  const shared = x25519Agree(senderShareSecretKey, recipientSharePublicKey);
  const key = sealKey(shared, aad);
  shared.fill(0);
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const ct = Buffer.concat([cipher.update(pair.keyShare), cipher.update(pair.seedShare), cipher.final()]);
  key.fill(0);
  const out = new Uint8Array(SEALED_SHARE_BYTES);
  const dv = new DataView(out.buffer);
  out[0] = VERSION;
  dv.setUint32(1, route.round, false);
  dv.setUint32(5, route.attempt, false);
  out.set(nonce, PREFIX);
  out.set(ct, PREFIX + NONCE);
  out.set(cipher.getAuthTag(), PREFIX + NONCE + ct.length);
  return out;
}

/**
 * Opens a sealed share pair addressed to `route.to` from `route.from`. Throws SECAGG_WRONG_ATTEMPT for
 * a share sealed for another round or attempt, SECAGG_BAD_SHARE when it does not authenticate (other
 * config, job, sender or recipient, other keys, or tampering).
 */
export function openSharePair(route: ShareRoute, sealed: Uint8Array, senderSharePublicKey: Uint8Array, recipientShareSecretKey: Uint8Array): SharePair {
  if (!(sealed instanceof Uint8Array) || sealed.length !== SEALED_SHARE_BYTES || sealed[0] !== VERSION) {
    throw new SecaggError('SECAGG_BAD_SHARE', 'upload', `sealed share from ${route.from} has an unknown layout`);
  }
  const dv = new DataView(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const round = dv.getUint32(1, false);
  const attempt = dv.getUint32(5, false);
  if (round !== route.round || attempt !== route.attempt) {
    throw new SecaggError(
      'SECAGG_WRONG_ATTEMPT',
      'upload',
      `share from ${route.from} was sealed for round ${round} attempt ${attempt}, not round ${route.round} attempt ${route.attempt}`,
    );
  }
  const aad = binding(route);
  const shared = x25519Agree(recipientShareSecretKey, senderSharePublicKey);
  const key = sealKey(shared, aad);
  shared.fill(0);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(PREFIX, PREFIX + NONCE));
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(SEALED_SHARE_BYTES - TAG));
    const plain = Buffer.concat([decipher.update(sealed.subarray(PREFIX + NONCE, SEALED_SHARE_BYTES - TAG)), decipher.final()]);
    const pair = { keyShare: new Uint8Array(plain.subarray(0, SHARE_BYTES)), seedShare: new Uint8Array(plain.subarray(SHARE_BYTES)) };
    plain.fill(0);
    return pair;
  } catch {
    throw new SecaggError(
      'SECAGG_BAD_SHARE',
      'upload',
      `sealed share from ${route.from} does not authenticate: sealed for another config, job or partner pair, with other keys, or tampered with`,
    );
  } finally {
    key.fill(0);
  }
}
