/**
 * Key holder side of BFV: encrypt a vector of residues modulo t into seeded ciphertexts, decrypt a
 * fresh or summed blob back to residues — refusing a sum whose noise budget is exhausted.
 */
import type { PlainText } from 'node-seal/implementation/plain-text.js';
import { FedmarkError } from '../../errors.ts';
import { SealKeyHolder } from '../seal-wire/cipher.ts';
import type { BfvContext } from './context.ts';

/**
 * Bits of noise budget a decrypted ciphertext must still have. SEAL's invariant noise budget is
 * ⌊log2(q/(2t·‖noise‖))⌋-ish; at 0 the rounding may already be wrong. Within maxSummands the measured
 * budget never drops below 7 bits, so hitting this means the ciphertext is not an honest sum.
 */
export const MIN_NOISE_BUDGET_BITS = 1;

const TWO_32 = 2 ** 32;

export class BfvCipher extends SealKeyHolder<BfvContext> {
  /**
   * Encrypts residues (integers in [0, t)) into ⌈len/N⌉ seeded ciphertexts. Refuses anything else:
   * a value outside [0, t) would be silently reduced by the encoder.
   */
  encryptResidues(values: Float64Array): Uint8Array {
    this.live();
    const ctx = this.ctx;
    if (!(values instanceof Float64Array) || values.length === 0) {
      throw new FedmarkError('HE_BAD_INPUT', 'encryptResidues needs a non-empty Float64Array');
    }
    const t = ctx.plainModulus;
    // One reusable 64-bit slot buffer, written as little-endian 32-bit halves (no BigInt per value).
    const words = new Uint32Array(2 * ctx.slotCount);
    const wide = new BigUint64Array(words.buffer);
    return this.encryptChunks(values.length, (start, end) => {
      words.fill(0);
      for (let i = start; i < end; i++) {
        const v = values[i];
        if (!(Number.isInteger(v) && v >= 0 && v < t)) {
          throw new FedmarkError('HE_VALUE_OUT_OF_RANGE', `value ${v} at index ${i} is not a residue modulo the BFV plain modulus ${t}`, {
            index: i,
            value: v,
          });
        }
        const j = 2 * (i - start);
        words[j] = v % TWO_32;
        words[j + 1] = Math.floor(v / TWO_32);
      }
      return ctx.encoder.encode(wide) as PlainText;
    });
  }

  /**
   * Decrypts a fresh or summed blob and returns its first `length` residues. Throws
   * HE_NOISE_BUDGET_EXHAUSTED (and returns nothing) when any ciphertext has less than
   * MIN_NOISE_BUDGET_BITS left: its plaintext cannot be trusted.
   */
  decryptResidues(blob: Uint8Array, length: number): Float64Array {
    const out = new Float64Array(length > 0 && Number.isInteger(length) ? length : 0);
    let minBudget = Infinity;
    this.decryptChunks(blob, length, (pt, ct, decryptor, start, end) => {
      const budget = decryptor.invariantNoiseBudget(ct);
      minBudget = Math.min(minBudget, budget);
      if (budget < MIN_NOISE_BUDGET_BITS) {
        throw new FedmarkError(
          'HE_NOISE_BUDGET_EXHAUSTED',
          `BFV ciphertext ${start / this.ctx.slotCount} has ${budget} bits of noise budget left (minimum ${MIN_NOISE_BUDGET_BITS}): it is not a sum of at most ${this.ctx.maxSummands} honest ciphertexts`,
          { budget },
        );
      }
      const decoded = this.ctx.encoder.decodeBigInt(pt, false) as BigUint64Array;
      const words = new Uint32Array(decoded.buffer, decoded.byteOffset, decoded.length * 2);
      for (let i = start; i < end; i++) {
        const j = 2 * (i - start);
        out[i] = words[j + 1] * TWO_32 + words[j];
      }
    });
    this.lastNoiseBudget = minBudget;
    return out;
  }

  /** Smallest noise budget (bits) seen by the last decryptResidues call. */
  lastNoiseBudget: number | undefined;
}
