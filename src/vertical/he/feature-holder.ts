/**
 * The feature holder's side of the HE: per-bin sums of the label holder's encrypted gradients over the
 * rows of one node, for one of its own feature columns, without rotations — and the masking,
 * re-randomisation and flooding that leave the label holder able to decrypt only those sums
 * (./params.ts has the bounds). The feature holder holds no secret key: it cannot read the gradients.
 */
import { randomFillSync } from 'node:crypto';
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import type { Encryptor } from 'node-seal/implementation/encryptor.js';
import type { PlainText } from 'node-seal/implementation/plain-text.js';
import type { PublicKey } from 'node-seal/implementation/public-key.js';
import { FedmarkError } from '../../errors.ts';
import { SealScope, withScope } from '../../crypto/seal.ts';
import { parseBlob, writeBlob } from '../../crypto/seal-wire/blob.ts';
import { loadCiphertext } from '../../crypto/seal-wire/context.ts';
import { packSealCiphertext } from '../../crypto/seal-wire/wire-coding.ts';
import type { VerticalHeContext } from './context.ts';
import { putWord } from './label-holder.ts';

/** Uniform integers in [0, bound) from the CSPRNG, by rejection (bound < 2^53). */
function uniformBelow(bound: number, count: number): Float64Array {
  const bits = Math.ceil(Math.log2(bound));
  const hiBits = Math.max(0, bits - 32);
  const hiMask = hiBits === 0 ? 0 : 2 ** hiBits - 1;
  const out = new Float64Array(count);
  const buf = new Uint32Array(2 * 1024);
  let k = buf.length;
  for (let i = 0; i < count;) {
    if (k >= buf.length) {
      randomFillSync(buf);
      k = 0;
    }
    const lo = bits >= 32 ? buf[k] : buf[k] & (2 ** bits - 1);
    const hi = hiBits === 0 ? 0 : buf[k + 1] & hiMask;
    k += 2;
    const v = hi * 2 ** 32 + lo;
    if (v < bound) out[i++] = v;
  }
  return out;
}

/** The gradient ciphertexts of one tree, loaded and moved to NTT form once. */
export class LoadedGradients {
  constructor(
    readonly blocks: CipherText[],
    readonly rows: number,
  ) {}

  dispose(): void {
    for (const ct of this.blocks) ct.delete();
    this.blocks.length = 0;
  }
}

export class FeatureHolderEvaluator {
  private pk: PublicKey | undefined;
  private encryptor: Encryptor | undefined;
  private readonly scratch = new SealScope();
  private readonly prod: CipherText;
  private readonly ptNtt: PlainText;
  private readonly t: number;

  /** `publicKey`: the label holder's public key bytes (validated here; used only to encrypt zeros). */
  constructor(
    private readonly ctx: VerticalHeContext,
    publicKey: Uint8Array,
  ) {
    ctx.assertLive();
    this.t = Number(ctx.t);
    this.pk = ctx.loadPublicKey(publicKey);
    this.encryptor = ctx.seal.Encryptor(ctx.context, this.pk);
    this.prod = this.scratch.track(ctx.seal.CipherText());
    this.ptNtt = this.scratch.track(ctx.seal.PlainText());
  }

  /** Validates and loads a tree's gradient blob (`blocks` seeded ciphertexts), in NTT form. */
  loadGradients(blob: Uint8Array, blocks: number, rows: number): LoadedGradients {
    const ctx = this.ctx;
    const parsed = parseBlob(ctx.gradients, blob, blocks);
    if (parsed.kind !== 'fresh') throw new FedmarkError('HE_BAD_CIPHERTEXT', 'gradient ciphertexts must be fresh (seeded) ciphertexts');
    const out: CipherText[] = [];
    try {
      for (const entry of parsed.entries) {
        const ct = withScope((s) => {
          const loaded = s.track(loadCiphertext(ctx.gradients, parsed.layout, entry));
          const ntt = ctx.seal.CipherText();
          ctx.evaluator.cipherTransformToNtt(loaded, ntt);
          return ntt;
        });
        out.push(ct);
      }
    } catch (err) {
      for (const ct of out) ct.delete();
      throw err;
    }
    return new LoadedGradients(out, rows);
  }

  /**
   * One result ciphertext: the per-bin sums over the node's rows of one feature column, masked,
   * re-randomised, flooded and switched to the last prime. `binOf(block)` gives, for the block's rows
   * (local index 0 … rows−1), the row's bin or −1 when the row is not in the node; blocks without a
   * row of the node are skipped.
   */
  binSums(g: LoadedGradients, bins: number, floodBits: number, binOf: (block: number) => Int16Array | null): Uint8Array {
    const ctx = this.ctx;
    const { rows } = g;
    const N = ctx.n;
    if (2 * rows * bins > N) throw new FedmarkError('HE_BAD_INPUT', `${bins} bins of ${rows} rows do not fit degree ${N}`);
    const minus1 = this.t - 1;
    const words = new Uint32Array(2 * N);
    return withScope((s) => {
      let acc: CipherText | null = null;
      for (let b = 0; b < g.blocks.length; b++) {
        const local = binOf(b);
        if (!local) continue;
        words.fill(0);
        let any = false;
        for (let i = 0; i < local.length; i++) {
          const k = local[i];
          if (k < 0) continue;
          if (k >= bins) throw new FedmarkError('HE_BAD_INPUT', `row ${i} of block ${b} has bin ${k}, only ${bins} bins`);
          const e = 2 * rows * k - i;
          if (e >= 0) putWord(words, e, 1);
          else putWord(words, e + N, minus1);
          any = true;
        }
        if (!any) continue;
        const pt = ctx.plaintext(words);
        try {
          ctx.evaluator.plainTransformToNtt(pt, ctx.context.firstParmsId, this.ptNtt);
        } finally {
          pt.delete();
        }
        ctx.evaluator.multiplyPlain(g.blocks[b], this.ptNtt, this.prod);
        if (acc === null) acc = s.track(this.prod.clone());
        else ctx.evaluator.add(acc, this.prod, acc);
      }
      const res = s.track(ctx.seal.CipherText());
      if (acc === null) {
        // No row of the node in any block: an encryption of zero stands in for the empty sum.
        s.track(this.encryptZeroInto(res, words));
      } else ctx.evaluator.cipherTransformFromNtt(acc, res);
      this.finish(res, bins, rows, floodBits, words, s);
      const low = s.track(ctx.seal.CipherText());
      ctx.evaluator.cipherModSwitchTo(res, ctx.context.lastParmsId, low);
      return packSealCiphertext(ctx.results.full, low.saveArray(ctx.seal.ComprModeType.none));
    });
  }

  private encryptZeroInto(dest: CipherText, words: Uint32Array): PlainText {
    words.fill(0);
    const zero = this.ctx.plaintext(words);
    this.encryptor!.encrypt(zero, dest);
    return zero;
  }

  /** Mask every coefficient but the sums, re-randomise with Enc_pk(0), flood the noise (all in place). */
  private finish(res: CipherText, bins: number, rows: number, floodBits: number, words: Uint32Array, s: SealScope): void {
    const ctx = this.ctx;
    const ev = ctx.evaluator;
    const N = ctx.n;
    const mask = uniformBelow(this.t, N);
    for (let b = 0; b < bins; b++) {
      mask[2 * rows * b] = 0;
      mask[2 * rows * b + rows] = 0;
    }
    for (let i = 0; i < N; i++) putWord(words, i, mask[i]);
    const maskPt = s.track(ctx.plaintext(words));
    ev.addPlain(res, maskPt, res);
    const zero = s.track(ctx.seal.CipherText());
    s.track(this.encryptZeroInto(zero, words));
    ev.add(res, zero, res);
    const flood = s.track(this.floodCiphertext(floodBits));
    ev.add(res, flood, res);
    words.fill(0);
  }

  /** (F, 0) with F uniform in [−2^floodBits, 2^floodBits), as RNS residues of the top-level primes. */
  private floodCiphertext(floodBits: number): CipherText {
    const ctx = this.ctx;
    const layout = ctx.gradients.full;
    const N = ctx.n;
    const moduli = ctx.topModuli.map((m) => (BigInt(m.hi) << 32n) | BigInt(m.lo));
    const bytes = new Uint8Array(layout.sealLength);
    bytes.set(layout.prefix, 0);
    // The data starts at an odd offset: fill an aligned array and copy it in.
    const data = new BigUint64Array(2 * moduli.length * N);
    const raw = new BigUint64Array(2 * N);
    randomFillSync(raw);
    const span = 1n << BigInt(floodBits + 1);
    const offset = 1n << BigInt(floodBits);
    const mask64 = (1n << 64n) - 1n;
    for (let i = 0; i < N; i++) {
      // floodBits + 1 ≤ 128 uniform bits, then centred.
      const v = (((raw[2 * i] << 64n) | raw[2 * i + 1]) & (span - 1n)) - offset;
      moduli.forEach((q, k) => {
        const r = v % q;
        data[k * N + i] = (r < 0n ? r + q : r) & mask64;
      });
    }
    raw.fill(0n);
    bytes.set(new Uint8Array(data.buffer), layout.prefix.length);
    const ct = ctx.seal.CipherText();
    try {
      ct.loadArray(ctx.context, bytes);
    } catch (err) {
      ct.delete();
      throw new FedmarkError('HE_UNSUPPORTED_SEAL', `SEAL refused the flooding ciphertext: ${(err as Error).message ?? String(err)}`);
    } finally {
      data.fill(0n);
      bytes.fill(0);
    }
    return ct;
  }

  /** The result blob of a message: one result ciphertext per (node, column), in the message's order. */
  resultsBlob(packed: Uint8Array[]): Uint8Array {
    return writeBlob(this.ctx.results, 'sum', 1, packed);
  }

  dispose(): void {
    this.scratch.dispose();
    this.encryptor?.delete();
    this.pk?.delete();
    this.encryptor = undefined;
    this.pk = undefined;
  }
}
