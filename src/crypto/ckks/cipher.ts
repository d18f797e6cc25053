/** Partner side: encrypt a vector into seeded CKKS ciphertexts, decrypt a fresh or summed blob. */
import type { PlainText } from 'node-seal/implementation/plain-text.js';
import { FedmarkError } from '../../errors.ts';
import { SealKeyHolder } from '../seal-wire/cipher.ts';
import type { CkksContext } from './context.ts';

export class CkksCipher extends SealKeyHolder<CkksContext> {
  /**
   * Encrypts a vector into ceil(len/slots) seeded ciphertexts. Every |value| must be at most
   * ctx.maxAbsInputValue (= maxAbsSlotValue / maxSummands) so that a sum of up to maxSummands such
   * vectors still decrypts correctly.
   */
  encryptVector(values: Float64Array): Uint8Array {
    this.live();
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
    return this.encryptChunks(values.length, (start, end) => ctx.encoder.encode(values.subarray(start, end), ctx.scale) as PlainText);
  }

  /** Decrypts a fresh or summed blob and returns its first `length` slot values. */
  decryptVector(blob: Uint8Array, length: number): Float64Array {
    const out = new Float64Array(length > 0 && Number.isInteger(length) ? length : 0);
    this.decryptChunks(blob, length, (pt, _ct, _dec, start, end) => {
      out.set(this.ctx.encoder.decode(pt).subarray(0, end - start), start);
    });
    return out;
  }
}
