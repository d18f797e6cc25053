/**
 * SEAL's uncompressed serialization (SEAL 4.1, compr_mode none) and fedmark's bit-packed coding of it.
 *
 * SEAL's compressed serialization is never used on the wire: in node-seal 6.0.3 a truncated or
 * corrupted compressed stream aborts the whole WASM module, so untrusted bytes must never reach SEAL's
 * decompressor. Instead the RNS coefficients are bit-packed to the width of their prime (60 bits → 7.5
 * bytes, which beats zstd, which cannot compress uniformly random residues) and SEAL's uncompressed
 * serialization is rebuilt from a template whose metadata (parms_id, degree, size, scale, NTT flag) the
 * context produced itself. Every coefficient is range-checked against its prime before SEAL sees it.
 * Nothing here depends on the scheme: a Layout carries the degree and the primes it packs.
 */
import { FedmarkError } from '../../errors.ts';

export const SEAL_MAGIC = 0xa15e;
export const SEAL_HEADER_SIZE = 16;
/** Ciphertext: header, parms_id(32), is_ntt(1), size(8), degree(8), coeff_mod_size(8), scale(8), correction(8). */
export const CT_META_END = SEAL_HEADER_SIZE + 73;
/** Then a DynArray: its own header and a u64 element count. */
export const CT_DATA_START = CT_META_END + SEAL_HEADER_SIZE + 8;
/** SecretKey = Plaintext: header, parms_id(32), coeff_count(8), scale(8), then a DynArray. */
export const SK_DATA_START = SEAL_HEADER_SIZE + 48 + SEAL_HEADER_SIZE + 8;
/** UniformRandomGeneratorInfo: header, prng type(1), then the seed. */
export const SEED_INFO_FIXED = SEAL_HEADER_SIZE + 1;

export interface Modulus {
  lo: number;
  hi: number;
  bits: number;
}

export interface Layout {
  /** Polynomial degree N. */
  n: number;
  /** The primes each polynomial is reduced by, in SEAL's order. */
  moduli: Modulus[];
  /** Exact SEAL bytes before the coefficient data (metadata we vouch for). */
  prefix: Uint8Array;
  polyCount: number;
  /** Fixed bytes after the data (seed-info header + PRNG type) for seeded ciphertexts. */
  seedPrefix: Uint8Array | undefined;
  seedLength: number;
  sealLength: number;
  packedLength: number;
}

export function readSealHeader(bytes: Uint8Array, what: string): { major: number; minor: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ok =
    bytes.length >= SEAL_HEADER_SIZE &&
    dv.getUint16(0, true) === SEAL_MAGIC &&
    bytes[2] === SEAL_HEADER_SIZE &&
    bytes[5] === 0 &&
    Number(dv.getBigUint64(8, true)) === bytes.length;
  if (!ok) {
    throw new FedmarkError('HE_UNSUPPORTED_SEAL', `unexpected SEAL serialization header for ${what}`);
  }
  return { major: bytes[3], minor: bytes[4] };
}

export function u64At(bytes: Uint8Array, offset: number): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, true));
}

export function toModulus(q: bigint): Modulus {
  return { lo: Number(q & 0xffffffffn), hi: Number(q >> 32n), bits: q.toString(2).length };
}

/** Bytes needed to bit-pack one polynomial: N coefficients per prime at that prime's width. */
export function polyPackedBytes(n: number, moduli: Modulus[]): number {
  return moduli.reduce((acc, m) => acc + (n * m.bits) / 8, 0);
}

/**
 * Packs 64-bit little-endian words (as lo/hi u32 pairs) to each prime's bit width, checking every
 * coefficient is below its prime. `words` holds polyCount polynomials, each k blocks of N
 * coefficients; `out` receives 32-bit little-endian words (N·bits is always a multiple of 32).
 * Pure 32-bit integer arithmetic: this runs over millions of coefficients per round.
 */
function packCoefficients(words: Uint32Array, n: number, moduli: Modulus[], polyCount: number, out: Uint32Array): void {
  let pos = 0;
  let acc = 0;
  let nbits = 0;
  const put = (v: number, b: number) => {
    acc = (acc | (v << nbits)) >>> 0;
    const total = nbits + b;
    if (total >= 32) {
      out[pos++] = acc;
      acc = nbits === 0 ? 0 : v >>> (32 - nbits);
      nbits = total - 32;
    } else {
      nbits = total;
    }
  };
  let w = 0;
  for (let p = 0; p < polyCount; p++) {
    for (const m of moduli) {
      const hiBits = m.bits - 32;
      for (let i = 0; i < n; i++, w += 2) {
        const lo = words[w];
        const hi = words[w + 1];
        if (hi > m.hi || (hi === m.hi && lo >= m.lo)) {
          throw new FedmarkError('HE_BAD_CIPHERTEXT', 'ciphertext coefficient is not reduced modulo its prime');
        }
        if (hiBits > 0) {
          put(lo, 32);
          put(hi, hiBits);
        } else {
          put(lo, m.bits);
        }
      }
    }
  }
  if (nbits !== 0 || pos !== out.length) throw new Error('bit packing did not fill whole words');
}

/** Inverse of packCoefficients; rejects (never wraps) coefficients that are not below their prime. */
function unpackCoefficients(src: Uint32Array, n: number, moduli: Modulus[], polyCount: number, words: Uint32Array): void {
  let pos = 0;
  let acc = 0;
  let nbits = 0;
  const take = (b: number): number => {
    let v: number;
    if (nbits >= b) {
      v = b === 32 ? acc : acc & ((1 << b) - 1);
      acc = b === 32 ? 0 : acc >>> b;
      nbits -= b;
    } else {
      const next = src[pos++];
      const need = b - nbits;
      v = (nbits === 0 ? 0 : acc) | (next << nbits);
      if (b < 32) v &= (1 << b) - 1;
      acc = need === 32 ? 0 : next >>> need;
      nbits = 32 - need;
    }
    return v >>> 0;
  };
  let w = 0;
  for (let p = 0; p < polyCount; p++) {
    for (const m of moduli) {
      const hiBits = m.bits - 32;
      for (let i = 0; i < n; i++, w += 2) {
        const lo = hiBits > 0 ? take(32) : take(m.bits);
        const hi = hiBits > 0 ? take(hiBits) : 0;
        if (hi > m.hi || (hi === m.hi && lo >= m.lo)) {
          throw new FedmarkError('HE_BAD_CIPHERTEXT', 'ciphertext coefficient is not reduced modulo its prime');
        }
        words[w] = lo;
        words[w + 1] = hi;
      }
    }
  }
}

/** A 4-byte-aligned Uint32 view of bytes (copying only when the input is misaligned). */
export function u32View(bytes: Uint8Array): Uint32Array {
  const src = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Uint32Array(src.buffer, src.byteOffset, src.byteLength / 4);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** SEAL uncompressed ciphertext bytes → our packed form (metadata checked against the template). */
export function packSealCiphertext(layout: Layout, sealBytes: Uint8Array): Uint8Array {
  if (sealBytes.length !== layout.sealLength || !equalBytes(sealBytes.subarray(0, layout.prefix.length), layout.prefix)) {
    throw new FedmarkError('HE_BAD_CIPHERTEXT', 'ciphertext metadata does not match the context (level, scale or size)');
  }
  const { n, moduli } = layout;
  const dataStart = layout.prefix.length;
  const coeffCount = layout.polyCount * moduli.length * n;
  const words = new Uint32Array(sealBytes.slice(dataStart, dataStart + coeffCount * 8).buffer);
  const out = new Uint8Array(layout.packedLength);
  if (layout.seedPrefix) {
    const seedAt = dataStart + coeffCount * 8;
    if (!equalBytes(sealBytes.subarray(seedAt, seedAt + layout.seedPrefix.length), layout.seedPrefix)) {
      throw new FedmarkError('HE_BAD_CIPHERTEXT', 'unexpected seed header in seeded ciphertext');
    }
    out.set(sealBytes.subarray(seedAt + layout.seedPrefix.length), 0);
  }
  packCoefficients(words, n, moduli, layout.polyCount, new Uint32Array(out.buffer, layout.seedLength, (layout.packedLength - layout.seedLength) / 4));
  return out;
}

/** Packed form → SEAL uncompressed bytes built on our own metadata template. */
export function unpackToSeal(layout: Layout, packed: Uint8Array): Uint8Array {
  if (packed.length !== layout.packedLength) {
    throw new FedmarkError('HE_BAD_CIPHERTEXT', `ciphertext has ${packed.length} bytes, expected ${layout.packedLength}`);
  }
  const { n, moduli } = layout;
  const coeffCount = layout.polyCount * moduli.length * n;
  const words = new Uint32Array(coeffCount * 2);
  unpackCoefficients(u32View(packed.subarray(layout.seedLength)), n, moduli, layout.polyCount, words);
  const out = new Uint8Array(layout.sealLength);
  out.set(layout.prefix, 0);
  const dataStart = layout.prefix.length;
  out.set(new Uint8Array(words.buffer), dataStart);
  if (layout.seedPrefix) {
    const seedAt = dataStart + coeffCount * 8;
    out.set(layout.seedPrefix, seedAt);
    out.set(packed.subarray(0, layout.seedLength), seedAt + layout.seedPrefix.length);
  }
  return out;
}
