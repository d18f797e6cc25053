/** The key holder's encryptor/decryptor pair (CKKS or BFV), loaded from a validated secret key. */
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import type { Decryptor } from 'node-seal/implementation/decryptor.js';
import type { Encryptor } from 'node-seal/implementation/encryptor.js';
import type { PlainText } from 'node-seal/implementation/plain-text.js';
import { FedmarkError } from '../../errors.ts';
import { withScope } from '../seal.ts';
import { parseBlob, writeBlob } from './blob.ts';
import { loadCiphertext, type SealWireContext } from './context.ts';
import { loadSecretKey } from './keys.ts';
import { packSealCiphertext } from './wire-coding.ts';

export class SealKeyHolder<C extends SealWireContext = SealWireContext> {
  protected readonly ctx: C;
  private encryptor: Encryptor | undefined;
  private decryptor: Decryptor | undefined;

  constructor(ctx: C, secretKey: Uint8Array) {
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

  protected live(): { encryptor: Encryptor; decryptor: Decryptor } {
    this.ctx.assertLive();
    if (!this.encryptor || !this.decryptor) throw new FedmarkError('HE_DISPOSED', `${this.ctx.wire.label} cipher has been disposed`);
    return { encryptor: this.encryptor, decryptor: this.decryptor };
  }

  /**
   * Encrypts `length` values, one slot-sized chunk at a time, into a fresh blob of seeded ciphertexts.
   * `encode(start, end)` returns the plaintext of values [start, end); it is deleted here.
   */
  protected encryptChunks(length: number, encode: (start: number, end: number) => PlainText): Uint8Array {
    const { encryptor } = this.live();
    const ctx = this.ctx;
    const packed: Uint8Array[] = [];
    for (let start = 0; start < length; start += ctx.slotCount) {
      const end = Math.min(length, start + ctx.slotCount);
      const sealBytes = withScope((s) => {
        const pt = s.track(encode(start, end));
        const ser = s.track(encryptor.encryptSymmetricSerializable(pt));
        return ser.saveArray(ctx.seal.ComprModeType.none);
      });
      packed.push(packSealCiphertext(ctx.seeded, sealBytes));
    }
    return writeBlob(ctx, 'fresh', 1, packed);
  }

  /**
   * Decrypts every ciphertext of a fully validated blob holding `length` values; `decode` receives
   * the ciphertext, its plaintext and the value range [start, end) it holds.
   */
  protected decryptChunks(
    blob: Uint8Array,
    length: number,
    decode: (pt: PlainText, ct: CipherText, decryptor: Decryptor, start: number, end: number) => void,
  ): void {
    const { decryptor } = this.live();
    const ctx = this.ctx;
    const parsed = parseBlob(ctx, blob);
    const slots = ctx.slotCount;
    if (!Number.isInteger(length) || length <= 0 || Math.ceil(length / slots) !== parsed.count) {
      throw new FedmarkError('HE_BAD_INPUT', `cannot read ${length} values from ${parsed.count} ciphertexts of ${slots} slots`);
    }
    parsed.entries.forEach((entry, i) => {
      withScope((s) => {
        const ct = s.track(loadCiphertext(ctx, parsed.layout, entry));
        const pt = s.track(decryptor.decrypt(ct) as PlainText);
        const start = i * slots;
        decode(pt, ct, decryptor, start, Math.min(length, start + slots));
      });
    });
  }

  dispose(): void {
    this.encryptor?.delete();
    this.decryptor?.delete();
    this.encryptor = undefined;
    this.decryptor = undefined;
  }
}
