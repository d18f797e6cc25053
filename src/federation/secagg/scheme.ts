import { BfvAggregator, BfvCipher, BfvContext, bfvCiphertextCount, generateBfvSecretKey, inspectBfvBlob } from '../../crypto/bfv/index.ts';
import { freshBlobBytes } from '../../crypto/seal-wire/blob.ts';
import { FedmarkError } from '../../errors.ts';
import type { SecureSumScheme } from '../secure-sum.ts';
import type { SecaggSpec } from './spec.ts';

/**
 * Masked aggregation's side of the seam (secure-sum.ts): BFV ciphertexts of residues mod t, added
 * exactly by the coordinator. What a blob holds is masked, so a key holder decrypting one partner's
 * upload reads uniform residues; the masks leave the sum only through the attempt's evidence
 * (aggregation.ts openMaskedSums). `cipher` encrypts and decrypts residues as they are.
 */
export async function openSecaggScheme(spec: SecaggSpec): Promise<SecureSumScheme> {
  const ctx = await BfvContext.create(spec.bfv);
  const count = (length: number) => bfvCiphertextCount(ctx, length);
  const inspect = (blob: Uint8Array, length: number) => {
    try {
      return inspectBfvBlob(ctx, blob, count(length));
    } catch (err) {
      if (err instanceof FedmarkError) throw err;
      throw new FedmarkError('HE_BAD_CIPHERTEXT', `BFV ciphertext blob cannot be read: ${(err as Error).message}`);
    }
  };
  return {
    scheme: 'secagg-bfv',
    paramsId: ctx.paramsId,
    maxAbsInput: null,
    masking: { paramsId: ctx.paramsId, plainModulus: ctx.plainModulus, maxSummands: ctx.maxSummands },
    inspect: (blob, length) => void inspect(blob, length),
    uploadBytes: (length) => freshBlobBytes(ctx, count(length)),
    summands: (blob, length) => inspect(blob, length).summands,
    cipher: (secretKey) => {
      if (!secretKey) throw new FedmarkError('HE_NO_SECRET_KEY', 'BFV: this node holds no secret key for the job (key ceremony not completed)');
      const c = new BfvCipher(ctx, secretKey);
      return { encrypt: (v) => c.encryptResidues(v), decrypt: (blob, length) => c.decryptResidues(blob, length), dispose: () => c.dispose() };
    },
    sum: (existing) => (existing ? BfvAggregator.fromBytes(ctx, existing) : new BfvAggregator(ctx)),
    generateSecretKey: () => generateBfvSecretKey(ctx),
    dispose: () => ctx.dispose(),
  };
}
