/**
 * Key ceremony: the job owner generates the CKKS secret key and seals it to each participant's X25519
 * key with nacl.box (Curve25519 + XSalsa20-Poly1305, authenticated by the owner's box key). The
 * coordinator stores only these opaque blobs. Every participant checks that what it opened hashes to
 * `secretKeyHash`, which the owner records in the signed ledger, so all hold the same key.
 */
import nacl from 'tweetnacl';
import { FedmarkError } from '../errors.ts';
import { sha256Hex } from '../util/hash.ts';
import { generateSecretKey, type CkksContext } from './ckks.ts';
import { parsePublicIdentity, type Identity, type PublicIdentity } from './identity.ts';

/** nonce (24 bytes, random) ‖ nacl.box(secret). */
export function sealForRecipient(secret: Uint8Array, recipientBoxPublicKey: Uint8Array, sender: Identity): Uint8Array {
  if (recipientBoxPublicKey.length !== nacl.box.publicKeyLength) {
    throw new FedmarkError('KEY_CEREMONY_BAD_KEY', `recipient box public key must be ${nacl.box.publicKeyLength} bytes`);
  }
  const nonce = nacl.randomBytes(nacl.box.nonceLength);
  const boxed = nacl.box(secret, nonce, recipientBoxPublicKey, sender.boxSecretKey);
  const out = new Uint8Array(nonce.length + boxed.length);
  out.set(nonce, 0);
  out.set(boxed, nonce.length);
  return out;
}

export function openSealed(blob: Uint8Array, senderBoxPublicKey: Uint8Array, recipient: Identity): Uint8Array {
  if (!(blob instanceof Uint8Array) || blob.length < nacl.box.nonceLength + nacl.box.overheadLength) {
    throw new FedmarkError('KEY_CEREMONY_OPEN_FAILED', 'sealed key blob is too short');
  }
  if (senderBoxPublicKey.length !== nacl.box.publicKeyLength) {
    throw new FedmarkError('KEY_CEREMONY_BAD_KEY', `sender box public key must be ${nacl.box.publicKeyLength} bytes`);
  }
  const opened = nacl.box.open(
    blob.subarray(nacl.box.nonceLength),
    blob.subarray(0, nacl.box.nonceLength),
    senderBoxPublicKey,
    recipient.boxSecretKey,
  );
  if (!opened) {
    throw new FedmarkError(
      'KEY_CEREMONY_OPEN_FAILED',
      'cannot open sealed key: not addressed to this identity, wrong sender key, or tampered with',
    );
  }
  return opened;
}

export interface KeyCeremony {
  secretKey: Uint8Array;
  sealed: { keyId: string; blob: Uint8Array }[];
  /** sha256 (hex) of the serialized secret key, for the ledger. */
  secretKeyHash: string;
}

export function createKeyCeremony(ctx: CkksContext, owner: Identity, participants: PublicIdentity[]): KeyCeremony {
  const checked = participants.map((p) => parsePublicIdentity(p));
  const seen = new Set<string>();
  for (const p of checked) {
    if (seen.has(p.keyId)) throw new FedmarkError('KEY_CEREMONY_DUPLICATE', `participant ${p.keyId} (${p.name}) is listed twice`);
    seen.add(p.keyId);
  }
  const secretKey = generateSecretKey(ctx);
  const sealed = checked.map((p) => ({
    keyId: p.keyId,
    blob: sealForRecipient(secretKey, new Uint8Array(Buffer.from(p.boxPublicKey, 'base64')), owner),
  }));
  return { secretKey, sealed, secretKeyHash: sha256Hex(secretKey) };
}
