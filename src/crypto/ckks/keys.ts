/** The CKKS secret key: generation and a validated, parameter-bound serialization. */
import { createHash } from 'node:crypto';
import type { SecretKey } from 'node-seal/implementation/secret-key.js';
import { FedmarkError } from '../../errors.ts';
import { withScope } from '../seal.ts';
import type { CkksContext } from './context.ts';
import { equalBytes, packSealCiphertext, unpackToSeal } from './wire-coding.ts';

const SK_MAGIC = Uint8Array.from([0x46, 0x4d, 0x53, 0x4b]); // "FMSK"
const SK_HEADER = 4 + 1 + 32;

/**
 * Generates a fresh CKKS secret key, serialized as: "FMSK", version 1, paramsId (32 bytes), the
 * bit-packed key coefficients, sha256 of all of that. The coordinator needs no key material at all
 * (partners encrypt symmetrically, the coordinator only adds), so there is no public key to publish.
 */
export function generateSecretKey(ctx: CkksContext): Uint8Array {
  ctx.assertLive();
  return withScope((s) => {
    const kg = s.track(ctx.seal.KeyGenerator(ctx.context));
    const sk = s.track(kg.secretKey());
    const packed = packSealCiphertext(ctx.secretKeyLayout, sk.saveArray(ctx.seal.ComprModeType.none));
    const out = new Uint8Array(SK_HEADER + packed.length + 32);
    out.set(SK_MAGIC, 0);
    out[4] = 1;
    out.set(ctx.paramsIdBytes, 5);
    out.set(packed, SK_HEADER);
    out.set(createHash('sha256').update(out.subarray(0, SK_HEADER + packed.length)).digest(), SK_HEADER + packed.length);
    packed.fill(0);
    return out;
  });
}

export function loadSecretKey(ctx: CkksContext, bytes: Uint8Array): SecretKey {
  const expected = SK_HEADER + ctx.secretKeyLayout.packedLength + 32;
  if (!(bytes instanceof Uint8Array) || bytes.length !== expected || !equalBytes(bytes.subarray(0, 4), SK_MAGIC) || bytes[4] !== 1) {
    throw new FedmarkError('HE_BAD_SECRET_KEY', 'not a fedmark CKKS secret key for these parameters (bad magic, version or length)');
  }
  const digest = createHash('sha256').update(bytes.subarray(0, expected - 32)).digest();
  if (!equalBytes(digest, bytes.subarray(expected - 32))) {
    throw new FedmarkError('HE_BAD_SECRET_KEY', 'CKKS secret key checksum mismatch: corrupted');
  }
  if (!equalBytes(bytes.subarray(5, 37), ctx.paramsIdBytes)) {
    throw new FedmarkError('HE_PARAMS_MISMATCH', 'CKKS secret key was generated for other HE parameters');
  }
  let sealBytes: Uint8Array;
  try {
    sealBytes = unpackToSeal(ctx.secretKeyLayout, bytes.subarray(SK_HEADER, expected - 32));
  } catch {
    throw new FedmarkError('HE_BAD_SECRET_KEY', 'CKKS secret key coefficients out of range');
  }
  const sk = ctx.seal.SecretKey();
  try {
    sk.loadArray(ctx.context, sealBytes);
  } catch (err) {
    sk.delete();
    throw new FedmarkError('HE_BAD_SECRET_KEY', `SEAL rejected the secret key: ${(err as Error).message ?? String(err)}`);
  } finally {
    sealBytes.fill(0);
  }
  return sk;
}
