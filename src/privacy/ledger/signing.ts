/**
 * Hashing and Ed25519 signing of ledger entries. Kept free of crypto/identity.ts on purpose: the
 * ledger only needs "something that signs bytes under a key id", so any identity implementation
 * (file key, HSM, test key) can write a ledger, and verification needs only tweetnacl.
 */
import { keyId } from '../../crypto/identity.ts';
import { ed25519Sign, ed25519Verify } from '../../crypto/ed25519.ts';
import nacl from 'tweetnacl';
import { createHash } from 'node:crypto';
import { canonicalBytes, sha256Canonical } from './canonical.ts';
import type { Attestation, LedgerEntry, UnsignedEntry } from './entries.ts';

export interface LedgerSigner {
  /** Hex of the first 16 bytes of SHA-256 of the Ed25519 public key. */
  keyId: string;
  /** Ed25519 detached signature of `bytes`. */
  sign(bytes: Uint8Array): Uint8Array;
}

/** The key id rule of crypto/identity.ts: hex of the first 16 bytes of SHA-256(public key). */
export const keyIdOf = keyId;

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function fromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** A signer over a raw tweetnacl secret key (64 bytes); handy for tests and simple nodes. */
export function signerFromSecretKey(signSecretKey: Uint8Array): LedgerSigner & { signPublicKey: Uint8Array } {
  const kp = nacl.sign.keyPair.fromSecretKey(signSecretKey);
  return {
    keyId: keyIdOf(kp.publicKey),
    signPublicKey: kp.publicKey,
    sign: (bytes) => ed25519Sign(bytes, kp.secretKey),
  };
}

/** Bytes an entry's signature covers: the canonical entry without `sig`. */
export function signingBytes(entry: UnsignedEntry | LedgerEntry): Uint8Array {
  const { sig: _sig, ...rest } = entry as LedgerEntry;
  return canonicalBytes(rest);
}

/** The hash the next entry's `prev` must carry: SHA-256 of the canonical entry *with* `sig`. */
export function entryHash(entry: LedgerEntry): string {
  return sha256Canonical(entry);
}

export function signEntry(unsigned: UnsignedEntry, signer: LedgerSigner): LedgerEntry {
  const sig = toBase64(signer.sign(signingBytes(unsigned)));
  return { ...unsigned, sig } as LedgerEntry;
}

// tweetnacl verification costs milliseconds per signature on a busy core, and an audit verifies the
// same entries repeatedly (coordinator ledger, then once per cross-checked partner; repeated
// audits of a growing ledger). Ed25519 verification is a pure function, so remembering *successful*
// (key, signature, message digest) triples is exact; failures are always recomputed.
const verifiedCache = new Set<string>();
const VERIFIED_CACHE_MAX = 20_000;

/** Returns false (never throws) for malformed keys or signatures. */
export function verifySignature(message: Uint8Array, sigBase64: string, publicKey: Uint8Array): boolean {
  try {
    const sig = fromBase64(sigBase64);
    // Node's base64 decoder is lenient (ignores stray characters and padding bits); accept only the
    // canonical encoding so no two different `sig` strings verify as the same signature.
    if (toBase64(sig) !== sigBase64) return false;
    if (sig.length !== nacl.sign.signatureLength || publicKey.length !== nacl.sign.publicKeyLength) return false;
    const key = `${toBase64(publicKey)}|${sigBase64}|${createHash('sha256').update(message).digest('hex')}`;
    if (verifiedCache.has(key)) return true;
    const ok = ed25519Verify(message, sig, publicKey);
    if (ok) {
      if (verifiedCache.size >= VERIFIED_CACHE_MAX) verifiedCache.clear();
      verifiedCache.add(key);
    }
    return ok;
  } catch {
    return false;
  }
}

export function verifyEntrySignature(entry: LedgerEntry, publicKey: Uint8Array): boolean {
  return verifySignature(signingBytes(entry), entry.sig, publicKey);
}

/**
 * A party's signature over a payload it did not author as a ledger entry (e.g. the partner's
 * acceptance recorded by the coordinator): covers the canonical payload without `attestation`.
 */
export function attestPayload<P extends Record<string, unknown>>(payload: P, signer: LedgerSigner): P & { attestation: Attestation } {
  const { attestation: _a, ...body } = payload as P & { attestation?: unknown };
  return { ...(body as P), attestation: { keyId: signer.keyId, sig: toBase64(signer.sign(canonicalBytes(body))) } };
}

export function verifyAttestation(payload: Record<string, unknown>, publicKey: Uint8Array): boolean {
  const { attestation, ...body } = payload as { attestation?: Attestation };
  if (!attestation) return false;
  return verifySignature(canonicalBytes(body), attestation.sig, publicKey);
}
