/**
 * Sealing a long list to one recipient: X25519 (a fresh ephemeral key against the recipient's
 * identity box key) → HKDF-SHA-256 → AES-256-GCM over fixed-size chunks, in the STREAM construction
 * of Hoang, Reyhanitabar, Rogaway and Vizár (CRYPTO 2015): chunk i is encrypted under nonce
 * 0^7 ‖ u32(i) ‖ last-flag, so chunks cannot be reordered, dropped or the stream cut short without the
 * tag check failing. The HKDF info binds the caller's context (job, spec, sender, recipient, message
 * kind, origin, hop), so a sealed list cannot be replayed into another slot even by its recipient.
 *
 * nacl.box would need the whole list in one buffer and runs in JavaScript; this runs in OpenSSL at
 * memory speed. Sender authenticity is the caller's signature over a header that includes the sealed
 * bytes' hash (messages.ts); X25519 here gives confidentiality against the relaying coordinator.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';
import { sha256Hex } from '../../util/hash.ts';

const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const TAG_BYTES = 16;
const INFO_TAG = 'fedmark-psi-seal-v1';

export interface SealParams {
  /** Ephemeral X25519 public key, 32 bytes. */
  ephemeralPublicKey: Uint8Array;
  chunkBytes: number;
  chunks: number;
  plainBytes: number;
}

export function chunkCount(plainBytes: number, chunkBytes: number): number {
  return Math.max(1, Math.ceil(plainBytes / chunkBytes));
}

export function sealedLength(plainBytes: number, chunkBytes: number): number {
  return plainBytes + chunkCount(plainBytes, chunkBytes) * TAG_BYTES;
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new FedmarkError('PSI_SEAL_BAD_KEY', `an X25519 public key is 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([X25519_SPKI, raw]), format: 'der', type: 'spki' });
}

function privateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new FedmarkError('PSI_SEAL_BAD_KEY', `an X25519 secret key is 32 bytes, got ${raw.length}`);
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8, raw]), format: 'der', type: 'pkcs8' });
}

function rawPublic(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: 'der', type: 'spki' }).subarray(X25519_SPKI.length));
}

function streamKey(shared: Buffer, ephemeral: Uint8Array, recipient: Uint8Array, context: string): Buffer {
  if (shared.every((b) => b === 0)) throw new FedmarkError('PSI_SEAL_BAD_KEY', 'X25519 produced the all-zero secret (low-order public key)');
  const salt = Buffer.concat([ephemeral, recipient]);
  const info = Buffer.from(`${INFO_TAG}\n${sha256Hex(context)}`);
  return Buffer.from(hkdfSync('sha256', shared, salt, info, 32));
}

function nonce(i: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(i, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** Seals `plain` to the holder of recipientBoxPublicKey (an identity's X25519 key). */
export function sealStream(
  plain: Uint8Array,
  recipientBoxPublicKey: Uint8Array,
  context: string,
  chunkBytes: number,
): { params: SealParams; sealed: Uint8Array } {
  const recipient = publicKeyObject(recipientBoxPublicKey);
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const ephemeral = rawPublic(publicKey);
  const key = streamKey(diffieHellman({ privateKey, publicKey: recipient }), ephemeral, recipientBoxPublicKey, context);
  const chunks = chunkCount(plain.length, chunkBytes);
  const sealed = new Uint8Array(sealedLength(plain.length, chunkBytes));
  let out = 0;
  for (let i = 0; i < chunks; i++) {
    const part = plain.subarray(i * chunkBytes, Math.min(plain.length, (i + 1) * chunkBytes));
    const cipher = createCipheriv('aes-256-gcm', key, nonce(i, i === chunks - 1));
    const ct = cipher.update(part);
    cipher.final();
    sealed.set(ct, out);
    sealed.set(cipher.getAuthTag(), out + ct.length);
    out += ct.length + TAG_BYTES;
  }
  return { params: { ephemeralPublicKey: ephemeral, chunkBytes, chunks, plainBytes: plain.length }, sealed };
}

/** Opens a sealed stream; any tampering, truncation or wrong key/context names the chunk that failed. */
export function openStream(
  sealed: Uint8Array,
  params: SealParams,
  recipientBoxSecretKey: Uint8Array,
  recipientBoxPublicKey: Uint8Array,
  context: string,
): Uint8Array {
  const { chunkBytes, chunks, plainBytes } = params;
  if (chunks !== chunkCount(plainBytes, chunkBytes) || sealed.length !== sealedLength(plainBytes, chunkBytes)) {
    throw new FedmarkError(
      'PSI_SEAL_OPEN_FAILED',
      `sealed stream is ${sealed.length} bytes in ${chunks} chunks; ${plainBytes} plaintext bytes in chunks of ${chunkBytes} need ${sealedLength(plainBytes, chunkBytes)} bytes in ${chunkCount(plainBytes, chunkBytes)}`,
    );
  }
  const shared = diffieHellman({ privateKey: privateKeyObject(recipientBoxSecretKey), publicKey: publicKeyObject(params.ephemeralPublicKey) });
  const key = streamKey(shared, params.ephemeralPublicKey, recipientBoxPublicKey, context);
  const plain = new Uint8Array(plainBytes);
  let at = 0;
  for (let i = 0; i < chunks; i++) {
    const len = Math.min(chunkBytes, plainBytes - i * chunkBytes);
    const decipher = createDecipheriv('aes-256-gcm', key, nonce(i, i === chunks - 1));
    decipher.setAuthTag(sealed.subarray(at + len, at + len + TAG_BYTES));
    try {
      plain.set(decipher.update(sealed.subarray(at, at + len)), i * chunkBytes);
      decipher.final();
    } catch {
      throw new FedmarkError(
        'PSI_SEAL_OPEN_FAILED',
        `sealed chunk ${i} of ${chunks} does not authenticate: not sealed to this identity, for another message slot, or altered in transit`,
        { chunk: i },
      );
    }
    at += len + TAG_BYTES;
  }
  return plain;
}
