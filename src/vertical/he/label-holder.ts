/**
 * The label holder's side of the HE: its own BFV key (generated here, never serialized, never sent),
 * the public key it hands to feature holders (used only to re-randomise their results), encryption of
 * the fixed-point gradients by coefficient, and decryption of returned per-bin sums.
 */
import type { Decryptor } from 'node-seal/implementation/decryptor.js';
import type { Encryptor } from 'node-seal/implementation/encryptor.js';
import type { PublicKey } from 'node-seal/implementation/public-key.js';
import type { SecretKey } from 'node-seal/implementation/secret-key.js';
import { FedmarkError } from '../../errors.ts';
import { withScope } from '../../crypto/seal.ts';
import { parseBlob, writeBlob } from '../../crypto/seal-wire/blob.ts';
import { loadCiphertext } from '../../crypto/seal-wire/context.ts';
import { packSealCiphertext } from '../../crypto/seal-wire/wire-coding.ts';
import type { VerticalHeContext } from './context.ts';

const TWO_32 = 2 ** 32;

/** Writes residue `v` (an integer in [0, 2^53)) as the u32 pair of coefficient `i`. */
export function putWord(words: Uint32Array, i: number, v: number): void {
  words[2 * i] = v % TWO_32;
  words[2 * i + 1] = Math.floor(v / TWO_32);
}

export function getWord(words: Uint32Array, i: number): number {
  return words[2 * i + 1] * TWO_32 + words[2 * i];
}

/** Per-bin sums of one (node, feature column) as the label holder decrypted them: signed fixed-point integers. */
export interface BinSums {
  grad: Float64Array;
  hess: Float64Array;
  /** Noise budget left in the returned ciphertext (bits). */
  noiseBudget: number;
}

export class LabelHolderKeys {
  private sk: SecretKey | undefined;
  private pk: PublicKey | undefined;
  private encryptor: Encryptor | undefined;
  private decryptor: Decryptor | undefined;
  private readonly t: number;

  constructor(private readonly ctx: VerticalHeContext) {
    ctx.assertLive();
    this.t = Number(ctx.t);
    withScope((s) => {
      const kg = s.track(ctx.seal.KeyGenerator(ctx.context));
      this.sk = kg.secretKey();
      this.pk = kg.createPublicKey();
    });
    this.encryptor = ctx.seal.Encryptor(ctx.context, this.pk!, this.sk!);
    this.decryptor = ctx.seal.Decryptor(ctx.context, this.sk!);
  }

  private live() {
    this.ctx.assertLive();
    if (!this.encryptor || !this.decryptor || !this.pk) throw new FedmarkError('HE_DISPOSED', 'the label holder key has been disposed');
    return { encryptor: this.encryptor, decryptor: this.decryptor, pk: this.pk };
  }

  /** The public key, in SEAL's uncompressed form (validated on load by the feature holder). */
  publicKeyBytes(): Uint8Array {
    return this.live().pk.saveArray(this.ctx.seal.ComprModeType.none);
  }

  /**
   * Seeded ciphertexts of ⌈n/rows⌉ blocks: block b holds rows b·rows … as g_j at X^j and h_j at
   * X^{rows+j}, each a signed fixed-point integer taken mod t.
   */
  encryptGradients(gq: Float64Array, hq: Float64Array, rows: number): Uint8Array {
    const { encryptor } = this.live();
    const ctx = this.ctx;
    const n = gq.length;
    if (hq.length !== n || n === 0) throw new FedmarkError('HE_BAD_INPUT', 'gradients and hessians need the same, non-zero length');
    if (!(Number.isInteger(rows) && rows >= 1 && 2 * rows <= ctx.n))
      throw new FedmarkError('HE_BAD_INPUT', `${rows} rows per ciphertext do not fit degree ${ctx.n}`);
    const half = this.t / 2;
    const residue = (v: number, what: string, i: number) => {
      if (!(Number.isInteger(v) && Math.abs(v) < half))
        throw new FedmarkError('HE_VALUE_OUT_OF_RANGE', `${what} ${i} = ${v} is not an integer inside (−t/2, t/2)`);
      return v < 0 ? v + this.t : v;
    };
    const packed: Uint8Array[] = [];
    const words = new Uint32Array(2 * ctx.n);
    for (let start = 0; start < n; start += rows) {
      words.fill(0);
      const end = Math.min(n, start + rows);
      for (let i = start; i < end; i++) {
        putWord(words, i - start, residue(gq[i], 'gradient', i));
        putWord(words, rows + i - start, residue(hq[i], 'hessian', i));
      }
      const bytes = withScope((s) => {
        const pt = s.track(ctx.plaintext(words));
        const ser = s.track(encryptor.encryptSymmetricSerializable(pt));
        return ser.saveArray(ctx.seal.ComprModeType.none);
      });
      packed.push(packSealCiphertext(ctx.gradients.seeded, bytes));
    }
    words.fill(0);
    return writeBlob(ctx.gradients, 'fresh', 1, packed);
  }

  /**
   * Decrypts a feature holder's results: ciphertext k holds bins[k] per-bin sums at coefficients
   * 2·rows·b (gradient) and 2·rows·b + rows (hessian). Refuses a ciphertext whose noise budget is
   * gone: it cannot be an honest result.
   */
  decryptBinSums(blob: Uint8Array, bins: readonly number[], rows: number): BinSums[] {
    const { decryptor } = this.live();
    const ctx = this.ctx;
    const parsed = parseBlob(ctx.results, blob, bins.length);
    const half = this.t / 2;
    return parsed.entries.map((entry, k) =>
      withScope((s) => {
        const ct = s.track(loadCiphertext(ctx.results, parsed.layout, entry));
        const budget = decryptor.invariantNoiseBudget(ct);
        if (budget < 1) throw new FedmarkError('HE_NOISE_BUDGET_EXHAUSTED', `result ciphertext ${k} has no noise budget left: it is not an honest sum`);
        const words = ctx.coefficients(s.track(decryptor.decrypt(ct)!));
        const B = bins[k];
        if (2 * rows * B > ctx.n) throw new FedmarkError('HE_BAD_INPUT', `${B} bins of ${rows} rows do not fit degree ${ctx.n}`);
        const grad = new Float64Array(B);
        const hess = new Float64Array(B);
        const signed = (v: number) => (v > half ? v - this.t : v);
        for (let b = 0; b < B; b++) {
          grad[b] = signed(getWord(words, 2 * rows * b));
          hess[b] = signed(getWord(words, 2 * rows * b + rows));
        }
        words.fill(0);
        return { grad, hess, noiseBudget: budget };
      }),
    );
  }

  dispose(): void {
    for (const o of [this.encryptor, this.decryptor, this.pk, this.sk]) o?.delete();
    this.encryptor = this.decryptor = this.pk = this.sk = undefined;
  }
}
