/** Coordinator side: validate and add blobs (CKKS or BFV); needs no key, so it cannot read what it adds. */
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import { FedmarkError } from '../../errors.ts';
import { loadAll, parseBlob, writeBlob } from './blob.ts';
import type { SealWireContext } from './context.ts';
import { packSealCiphertext } from './wire-coding.ts';

export class SealSumAggregator<C extends SealWireContext = SealWireContext> {
  protected readonly ctx: C;
  private sums: CipherText[] = [];
  private summands = 0;
  private disposed = false;

  constructor(ctx: C) {
    ctx.assertLive();
    this.ctx = ctx;
  }

  /** Restores a running sum persisted with toBytes() (or starts from a single fresh blob). */
  protected restore(bytes: Uint8Array): this {
    const parsed = parseBlob(this.ctx, bytes);
    this.sums = loadAll(this.ctx, parsed);
    this.summands = parsed.summands;
    return this;
  }

  /** Number of fresh blobs folded into the sum. */
  get count(): number {
    return this.summands;
  }

  /** Number of ciphertexts in the running sum (0 before the first add). */
  get ciphertextCount(): number {
    return this.sums.length;
  }

  /**
   * Validates the blob completely, then adds it. The new sums are computed into fresh ciphertexts and
   * swapped in only when every addition succeeded, so on any failure the running sum is unchanged.
   */
  add(blob: Uint8Array): void {
    if (this.disposed) throw new FedmarkError('HE_DISPOSED', `${this.ctx.wire.label} aggregator has been disposed`);
    const ctx = this.ctx;
    const parsed = parseBlob(ctx, blob, this.sums.length > 0 ? this.sums.length : undefined);
    if (this.summands + parsed.summands > ctx.maxSummands) {
      throw new FedmarkError(
        'HE_TOO_MANY_SUMMANDS',
        `adding ${parsed.summands} more summands to ${this.summands} would exceed maxSummands ${ctx.maxSummands} and risk overflow`,
      );
    }
    const incoming = loadAll(ctx, parsed);
    if (this.sums.length === 0) {
      this.sums = incoming;
      this.summands += parsed.summands;
      return;
    }
    const next: CipherText[] = [];
    try {
      for (let i = 0; i < incoming.length; i++) {
        next.push(ctx.evaluator.add(this.sums[i], incoming[i]) as CipherText);
      }
    } catch (err) {
      for (const ct of next) ct.delete();
      throw new FedmarkError('HE_BAD_CIPHERTEXT', `homomorphic addition failed: ${(err as Error).message ?? String(err)}`);
    } finally {
      for (const ct of incoming) ct.delete();
    }
    for (const ct of this.sums) ct.delete();
    this.sums = next;
    this.summands += parsed.summands;
  }

  /** The running sum as a blob (kind "sum": full, unseeded ciphertexts — about twice a fresh blob). */
  toBytes(): Uint8Array {
    if (this.disposed) throw new FedmarkError('HE_DISPOSED', `${this.ctx.wire.label} aggregator has been disposed`);
    const ctx = this.ctx;
    const packed = this.sums.map((ct) => packSealCiphertext(ctx.full, ct.saveArray(ctx.seal.ComprModeType.none)));
    return writeBlob(ctx, 'sum', this.summands, packed);
  }

  dispose(): void {
    for (const ct of this.sums) ct.delete();
    this.sums = [];
    this.disposed = true;
  }
}
