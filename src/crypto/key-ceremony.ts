/**
 * Key ceremony: the job owner generates the job's HE secret key (CKKS, or BFV for masked
 * aggregation) and seals it to each participant's X25519 key with nacl.box (Curve25519 + XSalsa20-Poly1305, authenticated by the owner's box key). The
 * coordinator stores only these opaque blobs. The nodes seal the key together with the job id
 * (`sealJobKey`/`openJobKey`), so a blob from another job of the same owner cannot be replayed.
 */
import nacl from 'tweetnacl';
import { FedmarkError } from '../errors.ts';
import { sha256Hex } from '../util/hash.ts';
import { generateSecretKey } from './seal-wire/keys.ts';
import type { SealWireContext } from './seal-wire/context.ts';
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
  const opened = nacl.box.open(blob.subarray(nacl.box.nonceLength), blob.subarray(0, nacl.box.nonceLength), senderBoxPublicKey, recipient.boxSecretKey);
  if (!opened) {
    throw new FedmarkError('KEY_CEREMONY_OPEN_FAILED', 'cannot open sealed key: not addressed to this identity, wrong sender key, or tampered with');
  }
  return opened;
}

export interface KeyCeremony {
  secretKey: Uint8Array;
  sealed: { keyId: string; blob: Uint8Array }[];
  /** sha256 (hex) of the serialized secret key, for the ledger. */
  secretKeyHash: string;
}

/** Works for either scheme's context (CKKS today, BFV for masked aggregation). */
export function createKeyCeremony(ctx: SealWireContext, owner: Identity, participants: PublicIdentity[]): KeyCeremony {
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

/**
 * The job's secret key sealed together with the job id, so a sealed blob from another job (of the
 * same owner) cannot be replayed into this one: the recipient checks the id before using the key.
 */
export function sealJobKey(jobId: string, secretKey: Uint8Array, recipientBoxPublicKey: Uint8Array, owner: Identity): Uint8Array {
  const id = new TextEncoder().encode(jobId);
  const framed = new Uint8Array(2 + id.length + secretKey.length);
  new DataView(framed.buffer).setUint16(0, id.length, false);
  framed.set(id, 2);
  framed.set(secretKey, 2 + id.length);
  return sealForRecipient(framed, recipientBoxPublicKey, owner);
}

export function openJobKey(jobId: string, blob: Uint8Array, ownerBoxPublicKey: Uint8Array, recipient: Identity): Uint8Array {
  const framed = openSealed(blob, ownerBoxPublicKey, recipient);
  const n = framed.length >= 2 ? new DataView(framed.buffer, framed.byteOffset, framed.byteLength).getUint16(0, false) : -1;
  const sealedFor = n >= 0 && framed.length >= 2 + n ? new TextDecoder().decode(framed.subarray(2, 2 + n)) : null;
  if (sealedFor !== jobId) {
    throw new FedmarkError('KEY_CEREMONY_WRONG_JOB', `the sealed job key was issued for job ${JSON.stringify(sealedFor)}, not ${JSON.stringify(jobId)}`);
  }
  return framed.slice(2 + n);
}
