/** The secret key (CKKS or BFV): generation and a validated, parameter-bound serialization. */
import { createHash } from 'node:crypto';
import type { SecretKey } from 'node-seal/implementation/secret-key.js';
import { FedmarkError } from '../../errors.ts';
import { withScope } from '../seal.ts';
import type { SealWireContext } from './context.ts';
import { equalBytes, packSealCiphertext, unpackToSeal } from './wire-coding.ts';

const SK_HEADER = 4 + 1 + 32;

/**
 * Generates a fresh secret key, serialized as: the scheme's key magic ("FMSK" CKKS, "FMBK" BFV), version 1, paramsId (32 bytes), the
 * bit-packed key coefficients, sha256 of all of that. The coordinator needs no key material at all
 * (partners encrypt symmetrically, the coordinator only adds), so there is no public key to publish.
 */
export function generateSecretKey(ctx: SealWireContext): Uint8Array {
  ctx.assertLive();
  return withScope((s) => {
    const kg = s.track(ctx.seal.KeyGenerator(ctx.context));
    const sk = s.track(kg.secretKey());
    const packed = packSealCiphertext(ctx.secretKeyLayout, sk.saveArray(ctx.seal.ComprModeType.none));
    const out = new Uint8Array(SK_HEADER + packed.length + 32);
    out.set(ctx.wire.keyMagic, 0);
    out[4] = 1;
    out.set(ctx.paramsIdBytes, 5);
    out.set(packed, SK_HEADER);
    out.set(
      createHash('sha256')
        .update(out.subarray(0, SK_HEADER + packed.length))
        .digest(),
      SK_HEADER + packed.length,
    );
    packed.fill(0);
    return out;
  });
}

export function loadSecretKey(ctx: SealWireContext, bytes: Uint8Array): SecretKey {
  const expected = SK_HEADER + ctx.secretKeyLayout.packedLength + 32;
  if (!(bytes instanceof Uint8Array) || bytes.length !== expected || !equalBytes(bytes.subarray(0, 4), ctx.wire.keyMagic) || bytes[4] !== 1) {
    throw new FedmarkError('HE_BAD_SECRET_KEY', `not a fedmark ${ctx.wire.label} secret key for these parameters (bad magic, version or length)`);
  }
  const digest = createHash('sha256')
    .update(bytes.subarray(0, expected - 32))
    .digest();
  if (!equalBytes(digest, bytes.subarray(expected - 32))) {
    throw new FedmarkError('HE_BAD_SECRET_KEY', `${ctx.wire.label} secret key checksum mismatch: corrupted`);
  }
  if (!equalBytes(bytes.subarray(5, 37), ctx.paramsIdBytes)) {
    throw new FedmarkError('HE_PARAMS_MISMATCH', `${ctx.wire.label} secret key was generated for other HE parameters`);
  }
  let sealBytes: Uint8Array;
  try {
    sealBytes = unpackToSeal(ctx.secretKeyLayout, bytes.subarray(SK_HEADER, expected - 32));
  } catch {
    throw new FedmarkError('HE_BAD_SECRET_KEY', `${ctx.wire.label} secret key coefficients out of range`);
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
