/**
 * Node identities: an Ed25519 signing key pair and an X25519 box key pair (tweetnacl). The identity
 * file holds secret keys, so it is written with mode 0600 and refused on read when group or others
 * can access it (the same rule OpenSSH applies to private keys).
 */
import { ed25519Sign, ed25519Verify } from './ed25519.ts';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import { sha256Hex } from '../util/hash.ts';

export interface Identity {
  name: string;
  signPublicKey: Uint8Array;
  signSecretKey: Uint8Array;
  boxPublicKey: Uint8Array;
  boxSecretKey: Uint8Array;
}

const nameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[^\n\r]+$/, 'must be a single line');

function base64OfLength(bytes: number) {
  return z.string().refine((s) => {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return false;
    return Buffer.from(s, 'base64').length === bytes;
  }, `must be base64 of ${bytes} bytes`);
}

export const publicIdentitySchema = z
  .object({
    name: nameSchema,
    keyId: z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex characters'),
    signPublicKey: base64OfLength(nacl.sign.publicKeyLength),
    boxPublicKey: base64OfLength(nacl.box.publicKeyLength),
  })
  .strict()
  .refine((p) => keyId(Buffer.from(p.signPublicKey, 'base64')) === p.keyId, {
    message: 'keyId does not match signPublicKey',
    path: ['keyId'],
  });

export type PublicIdentity = z.infer<typeof publicIdentitySchema>;

const identityFileSchema = z
  .object({
    format: z.literal('fedmark-identity-1'),
    name: nameSchema,
    keyId: z.string(),
    signPublicKey: base64OfLength(nacl.sign.publicKeyLength),
    signSecretKey: base64OfLength(nacl.sign.secretKeyLength),
    boxPublicKey: base64OfLength(nacl.box.publicKeyLength),
    boxSecretKey: base64OfLength(nacl.box.secretKeyLength),
  })
  .strict();

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function generateIdentity(name: string): Identity {
  const parsed = nameSchema.safeParse(name);
  if (!parsed.success) {
    throw new FedmarkError('IDENTITY_BAD_NAME', `identity name ${JSON.stringify(name)} is invalid: ${parsed.error.issues[0]?.message}`);
  }
  const sign = nacl.sign.keyPair();
  const box = nacl.box.keyPair();
  return {
    name,
    signPublicKey: sign.publicKey,
    signSecretKey: sign.secretKey,
    boxPublicKey: box.publicKey,
    boxSecretKey: box.secretKey,
  };
}

/**
 * An identity derived from a 32-byte seed: for in-process simulations, where the keys never leave
 * the process and a seeded job must replay exactly (training seeds are derived from key ids).
 * Never use it for a real node's identity.
 */
export function identityFromSeed(name: string, seed: Uint8Array): Identity {
  if (seed.length !== 32) throw new FedmarkError('IDENTITY_BAD_SEED', `identity seed must be 32 bytes, got ${seed.length}`);
  const parsed = nameSchema.safeParse(name);
  if (!parsed.success) {
    throw new FedmarkError('IDENTITY_BAD_NAME', `identity name ${JSON.stringify(name)} is invalid: ${parsed.error.issues[0]?.message}`);
  }
  const sign = nacl.sign.keyPair.fromSeed(seed);
  const box = nacl.box.keyPair.fromSecretKey(nacl.hash(seed).subarray(0, nacl.box.secretKeyLength));
  return { name, signPublicKey: sign.publicKey, signSecretKey: sign.secretKey, boxPublicKey: box.publicKey, boxSecretKey: box.secretKey };
}

/** Key id: hex of the first 16 bytes of sha256(Ed25519 public key). */
export function keyId(signPublicKey: Uint8Array): string {
  return sha256Hex(signPublicKey).slice(0, 32);
}

export function publicIdentity(id: Identity): PublicIdentity {
  return {
    name: id.name,
    keyId: keyId(id.signPublicKey),
    signPublicKey: b64(id.signPublicKey),
    boxPublicKey: b64(id.boxPublicKey),
  };
}

/** Validates untrusted input as a PublicIdentity (FedmarkError 'IDENTITY_BAD_PUBLIC' otherwise). */
export function parsePublicIdentity(input: unknown): PublicIdentity {
  const parsed = publicIdentitySchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError('IDENTITY_BAD_PUBLIC', `invalid public identity at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  return parsed.data;
}

/** Writes the identity as JSON with mode 0600; refuses to overwrite an existing file unless force. */
export function writeIdentityFile(path: string, id: Identity, options: { force?: boolean } = {}): void {
  const content = JSON.stringify(
    {
      format: 'fedmark-identity-1',
      name: id.name,
      keyId: keyId(id.signPublicKey),
      signPublicKey: b64(id.signPublicKey),
      signSecretKey: b64(id.signSecretKey),
      boxPublicKey: b64(id.boxPublicKey),
      boxSecretKey: b64(id.boxSecretKey),
    },
    null,
    2,
  );
  try {
    writeFileSync(path, content + '\n', { mode: 0o600, flag: options.force ? 'w' : 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new FedmarkError('IDENTITY_FILE_EXISTS', `identity file ${path} already exists; refusing to overwrite it (use force)`);
    }
    if (code === 'ENOENT') throw new FedmarkError('IDENTITY_DIR_MISSING', `cannot write identity file ${path}: its directory does not exist`);
    throw new FedmarkError('IDENTITY_UNWRITABLE', `cannot write identity file ${path} (${code ?? (err as Error).message})`);
  }
  // The mode given at creation is filtered by the umask and ignored for an existing file.
  chmodSync(path, 0o600);
}

export function readIdentityFile(path: string): Identity {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new FedmarkError('IDENTITY_FILE_MISSING', `cannot read identity file ${path}: ${(err as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new FedmarkError(
      'IDENTITY_FILE_PERMISSIONS',
      `identity file ${path} has mode 0${(mode & 0o777).toString(8)}, which lets group or others read secret keys; run chmod 600 ${path}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FedmarkError('IDENTITY_FILE_INVALID', `identity file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = identityFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError('IDENTITY_FILE_INVALID', `identity file ${path}: field ${issue?.path.join('.') || '(root)'} ${issue?.message}`);
  }
  const f = parsed.data;
  const id: Identity = {
    name: f.name,
    signPublicKey: fromB64(f.signPublicKey),
    signSecretKey: fromB64(f.signSecretKey),
    boxPublicKey: fromB64(f.boxPublicKey),
    boxSecretKey: fromB64(f.boxSecretKey),
  };
  const signPair = nacl.sign.keyPair.fromSecretKey(id.signSecretKey);
  const boxPair = nacl.box.keyPair.fromSecretKey(id.boxSecretKey);
  if (!sameBytes(signPair.publicKey, id.signPublicKey) || !sameBytes(boxPair.publicKey, id.boxPublicKey)) {
    throw new FedmarkError('IDENTITY_FILE_INVALID', `identity file ${path}: public keys do not match the secret keys`);
  }
  if (f.keyId !== keyId(id.signPublicKey)) {
    throw new FedmarkError('IDENTITY_FILE_INVALID', `identity file ${path}: keyId does not match signPublicKey`);
  }
  return id;
}

/** Detached Ed25519 signature, base64. */
export function signBytes(bytes: Uint8Array, id: Identity): string {
  return b64(ed25519Sign(bytes, id.signSecretKey));
}

/** True only for a valid signature; malformed inputs return false rather than throwing. */
export function verifyBytes(bytes: Uint8Array, sigB64: string, signPublicKeyB64: string): boolean {
  if (typeof sigB64 !== 'string' || typeof signPublicKeyB64 !== 'string') return false;
  const b64re = /^[A-Za-z0-9+/]*={0,2}$/;
  if (!b64re.test(sigB64) || !b64re.test(signPublicKeyB64)) return false;
  const sig = fromB64(sigB64);
  const pk = fromB64(signPublicKeyB64);
  if (sig.length !== nacl.sign.signatureLength || pk.length !== nacl.sign.publicKeyLength) return false;
  return ed25519Verify(bytes, sig, pk);
}
