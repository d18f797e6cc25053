/** Partner side: encrypt a vector into seeded CKKS ciphertexts, decrypt a fresh or summed blob. */
import type { Decryptor } from 'node-seal/implementation/decryptor.js';
import type { Encryptor } from 'node-seal/implementation/encryptor.js';
import { FedmarkError } from '../../errors.ts';
import { withScope } from '../seal.ts';
import { parseBlob, writeBlob } from './blob.ts';
import { loadCiphertext, type CkksContext } from './context.ts';
import { loadSecretKey } from './keys.ts';
import { packSealCiphertext } from './wire-coding.ts';

export class CkksCipher {
  private readonly ctx: CkksContext;
  private encryptor: Encryptor | undefined;
  private decryptor: Decryptor | undefined;

  constructor(ctx: CkksContext, secretKey: Uint8Array) {
    ctx.assertLive();
    this.ctx = ctx;
    const sk = loadSecretKey(ctx, secretKey);
    try {
      withScope((s) => {
        // SEAL's Encryptor constructor demands a public key even for symmetric encryption; it copies
        // the keys, so the generator and public key can be freed right away.
        const kg = s.track(ctx.seal.KeyGenerator(ctx.context, sk));
        const pk = s.track(kg.createPublicKey());
        this.encryptor = ctx.seal.Encryptor(ctx.context, pk, sk);
        this.decryptor = ctx.seal.Decryptor(ctx.context, sk);
      });
    } catch (err) {
      this.dispose();
      throw err;
    } finally {
      sk.delete();
    }
  }

  private live(): { encryptor: Encryptor; decryptor: Decryptor } {
    this.ctx.assertLive();
    if (!this.encryptor || !this.decryptor) throw new FedmarkError('HE_DISPOSED', 'CKKS cipher has been disposed');
    return { encryptor: this.encryptor, decryptor: this.decryptor };
  }

  /**
   * Encrypts a vector into ceil(len/slots) seeded ciphertexts. Every |value| must be at most
   * ctx.maxAbsInputValue (= maxAbsSlotValue / maxSummands) so that a sum of up to maxSummands such
   * vectors still decrypts correctly.
   */
  encryptVector(values: Float64Array): Uint8Array {
    const { encryptor } = this.live();
    const ctx = this.ctx;
    if (!(values instanceof Float64Array) || values.length === 0) {
      throw new FedmarkError('HE_BAD_INPUT', 'encryptVector needs a non-empty Float64Array');
    }
    const limit = ctx.maxAbsInputValue;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (!(Math.abs(v) <= limit)) {
        throw new FedmarkError(
          'HE_VALUE_OUT_OF_RANGE',
          `value ${v} at index ${i} exceeds the HE bound ±${limit} (maxAbsSlotValue ${ctx.maxAbsSlotValue} / maxSummands ${ctx.maxSummands})`,
          { index: i, value: v, limit },
        );
      }
    }
    const slots = ctx.slotCount;
    const packed: Uint8Array[] = [];
    for (let start = 0; start < values.length; start += slots) {
      const chunk = values.subarray(start, Math.min(values.length, start + slots));
      const sealBytes = withScope((s) => {
        const pt = s.track(ctx.encoder.encode(chunk, ctx.scale) as unknown as { delete(): void });
        const ser = s.track(encryptor.encryptSymmetricSerializable(pt as never));
        return ser.saveArray(ctx.seal.ComprModeType.none);
      });
      packed.push(packSealCiphertext(ctx.seeded, sealBytes));
    }
    return writeBlob(ctx, 'fresh', 1, packed);
  }

  /** Decrypts a fresh or summed blob and returns its first `length` slot values. */
  decryptVector(blob: Uint8Array, length: number): Float64Array {
    const { decryptor } = this.live();
    const ctx = this.ctx;
    const parsed = parseBlob(ctx, blob);
    const slots = ctx.slotCount;
    if (!Number.isInteger(length) || length <= 0 || Math.ceil(length / slots) !== parsed.count) {
      throw new FedmarkError('HE_BAD_INPUT', `cannot read ${length} values from ${parsed.count} ciphertexts of ${slots} slots`);
    }
    const out = new Float64Array(length);
    parsed.entries.forEach((entry, i) => {
      withScope((s) => {
        const ct = s.track(loadCiphertext(ctx, parsed.layout, entry));
        const pt = s.track(decryptor.decrypt(ct) as unknown as { delete(): void });
        const decoded = ctx.encoder.decode(pt as never);
        const start = i * slots;
        out.set(decoded.subarray(0, Math.min(slots, length - start)), start);
      });
    });
    return out;
  }

  dispose(): void {
    this.encryptor?.delete();
    this.decryptor?.delete();
    this.encryptor = undefined;
    this.decryptor = undefined;
  }
}
