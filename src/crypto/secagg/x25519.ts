/**
 * X25519 (RFC 7748) for the per-round mask key pairs, through node:crypto (OpenSSL). Keys travel as
 * raw 32-byte strings; the DER wrappers below are the fixed RFC 8410 prefixes.
 */
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';

const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

// Importing a private key costs a scalar multiplication in OpenSSL; a party agrees with many peers
// under one key, so the imported object is kept for as long as the key's bytes are alive.
const privateKeys = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(secretKey: Uint8Array): KeyObject {
  let k = privateKeys.get(secretKey);
  if (!k) {
    k = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
    privateKeys.set(secretKey, k);
  }
  return k;
}

const publicKeys = new Map<string, KeyObject>();
const PUBLIC_CACHE_MAX = 4096;

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey).toString('base64');
  let k = publicKeys.get(id);
  if (!k) {
    k = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    if (publicKeys.size >= PUBLIC_CACHE_MAX) publicKeys.clear();
    publicKeys.set(id, k);
  }
  return k;
}

export interface X25519KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** A key pair from 32 random bytes (RFC 7748 clamping is applied inside the scalar multiplication). */
export function x25519KeyPair(secretKey: Uint8Array = randomBytes(32)): X25519KeyPair {
  const own = Uint8Array.from(secretKey);
  return { secretKey: own, publicKey: x25519PublicKey(own) };
}

export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== 32) throw new FedmarkError('SECAGG_BAD_KEY', `X25519 secret key must be 32 bytes, got ${secretKey.length}`);
  const spki = createPublicKey(privateKeyObject(secretKey)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

/**
 * The shared secret X25519(secretKey, publicKey). Refuses a peer key that yields the all-zero output
 * (a small-order point, RFC 7748 §6.1): the "secret" would be known to everyone.
 */
export function x25519Agree(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (secretKey.length !== 32 || publicKey.length !== 32) {
    throw new FedmarkError('SECAGG_BAD_KEY', 'X25519 keys must be 32 bytes');
  }
  let shared: Uint8Array;
  try {
    shared = new Uint8Array(
      diffieHellman({
        privateKey: privateKeyObject(secretKey),
        publicKey: publicKeyObject(publicKey),
      }),
    );
  } catch (err) {
    throw new FedmarkError('SECAGG_BAD_KEY', `X25519 key agreement failed (small-order or malformed public key): ${(err as Error).message}`);
  }
  if (shared.every((b) => b === 0)) throw new FedmarkError('SECAGG_BAD_KEY', 'X25519 key agreement gave the all-zero secret (small-order public key)');
  return shared;
}
