/**
 * CKKS (Cheon–Kim–Kim–Song, "Homomorphic Encryption for Arithmetic of Approximate Numbers",
 * ASIACRYPT 2017) via node-seal 6.0.3 (Microsoft SEAL 4.1), used only for secure aggregation:
 * partners encrypt, the coordinator adds ciphertexts, partners decrypt the sum.
 *
 * Design decisions (measurements in docs/CRYPTO.md):
 * - One data prime and no special prime: aggregation needs additions only, never key switching, so
 *   the modulus chain is as short as it can be, and the ciphertext is as small as it can be.
 * - Seeded symmetric encryption (partners hold the secret key): the second polynomial of a fresh
 *   ciphertext is replaced by a 64-byte PRNG seed, halving the upload.
 * - SEAL's own compressed serialization (zstd/zlib) is NOT used on the wire: in node-seal 6.0.3 a
 *   truncated or corrupted compressed stream aborts the whole WASM module (observed: `Aborted()`,
 *   then every later call fails), so untrusted bytes must never reach SEAL's decompressor. Instead we
 *   bit-pack the RNS coefficients to the width of their prime (60 bits → 7.5 bytes, which beats zstd,
 *   which cannot compress uniformly random residues) and rebuild SEAL's uncompressed serialization
 *   from a template whose metadata (parms_id, degree, size, scale, NTT flag) we produced ourselves.
 *   Every coefficient is range-checked against its prime before SEAL sees it, so SEAL's `load` (which
 *   still runs its own `is_valid_for` check) only ever receives well-formed input.
 */
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import { sha256Hex } from '../util/hash.ts';
import { loadSeal, SealScope, withScope, type SEALLibrary } from './seal.ts';
import type { Context } from 'node-seal/implementation/context.js';
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import type { CKKSEncoder } from 'node-seal/implementation/ckks-encoder.js';
import type { Evaluator } from 'node-seal/implementation/evaluator.js';
import type { Encryptor } from 'node-seal/implementation/encryptor.js';
import type { Decryptor } from 'node-seal/implementation/decryptor.js';
import type { SecretKey } from 'node-seal/implementation/secret-key.js';
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';

// ---------------------------------------------------------------------------------------------
// Parameters

/**
 * Largest total coefficient-modulus bit count for 128-bit classical security with a ternary secret,
 * from the Homomorphic Encryption Security Standard (Albrecht et al., 2018), Table 1 — the same
 * numbers as SEAL's `CoeffModulus::MaxBitCount(N, sec_level_type::tc128)`.
 */
export const HE_STANDARD_MAX_COEFF_BITS: Readonly<Record<number, number>> = {
  4096: 109,
  8192: 218,
  16384: 438,
  32768: 881,
};

export const heParamsSchema = z
  .object({
    scheme: z.literal('ckks'),
    polyModulusDegree: z.union([z.literal(4096), z.literal(8192), z.literal(16384), z.literal(32768)]),
    /** Bit sizes of the RNS primes; with more than one, the last is SEAL's special (key-switching) prime. */
    coeffModulusBits: z.array(z.number().int().min(20).max(60)).min(1).max(30),
    /** log2 of the CKKS scale Δ. */
    scaleBits: z.number().int().min(20).max(60),
    /** Most ciphertexts that may ever be summed; bounds each summand so the sum cannot overflow. */
    maxSummands: z.number().int().min(1).max(1 << 20).optional(),
  })
  .strict();

export type HeParams = z.infer<typeof heParamsSchema>;

/**
 * N=8192, one 60-bit prime, Δ=2^40: 4096 slots, ≈15.0 wire bytes per parameter, max abs error
 * ≈2e-9 on a sum of 10 partners, and room for sums up to 2^18 in magnitude (4096 per partner with 64
 * partners). See docs/CRYPTO.md for the table of alternatives measured.
 */
export const DEFAULT_HE_PARAMS: HeParams = Object.freeze({
  scheme: 'ckks',
  polyModulusDegree: 8192,
  coeffModulusBits: Object.freeze([60]) as unknown as number[],
  scaleBits: 40,
  maxSummands: 64,
}) as HeParams;

export const DEFAULT_MAX_SUMMANDS = 64;

export interface HeValueBounds {
  /** Data-level primes: all of them when there is one, else all but the special prime. */
  dataPrimeBits: number[];
  /** Largest |slot value| any ciphertext (including the final sum) may hold and still decrypt correctly. */
  maxAbsSlotValue: number;
  maxSummands: number;
  /** Largest |value| a single partner may encrypt: maxAbsSlotValue / maxSummands. */
  maxAbsInputValue: number;
}

/**
 * Decryption is correct while every coefficient of Δ·m + e stays below q/2 in magnitude. A CKKS
 * encoding's coefficients are bounded by the largest slot magnitude (the inverse canonical embedding
 * averages N unit-modulus terms), and q > 2^(Σbits − k) for k data primes, so slot values must stay
 * below 2^(Σbits − k − 1 − scaleBits). The fresh-encryption noise (≈ a few thousand, i.e. ~2^12) and
 * rounding are far below the remaining factor, which is the safety margin.
 */
export function heValueBounds(params: HeParams): HeValueBounds {
  const bits = params.coeffModulusBits;
  const dataPrimeBits = bits.length === 1 ? [...bits] : bits.slice(0, -1);
  const dataBits = dataPrimeBits.reduce((a, b) => a + b, 0);
  const exponent = dataBits - dataPrimeBits.length - 1 - params.scaleBits;
  const maxSummands = params.maxSummands ?? DEFAULT_MAX_SUMMANDS;
  const maxAbsSlotValue = 2 ** exponent;
  return { dataPrimeBits, maxAbsSlotValue, maxSummands, maxAbsInputValue: maxAbsSlotValue / maxSummands };
}

/** Validates and normalises HE parameters (fills maxSummands), refusing sets below 128-bit security. */
export function validateHeParams(input: unknown): HeParams {
  const parsed = heParamsSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError(
      'HE_BAD_PARAMS',
      `invalid HE parameters at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const params: HeParams = {
    ...parsed.data,
    coeffModulusBits: [...parsed.data.coeffModulusBits],
    maxSummands: parsed.data.maxSummands ?? DEFAULT_MAX_SUMMANDS,
  };
  const total = params.coeffModulusBits.reduce((a, b) => a + b, 0);
  const limit = HE_STANDARD_MAX_COEFF_BITS[params.polyModulusDegree];
  if (total > limit) {
    throw new FedmarkError(
      'HE_INSECURE_PARAMS',
      `HE parameters below 128-bit security: coefficient modulus has ${total} bits but N=${params.polyModulusDegree} allows at most ${limit} (HE standard, ternary secret)`,
      { totalBits: total, limit },
    );
  }
  const bounds = heValueBounds(params);
  if (bounds.maxAbsInputValue < 1) {
    throw new FedmarkError(
      'HE_BAD_PARAMS',
      `HE parameters leave no headroom: data primes ${bounds.dataPrimeBits.join('+')} bits with scale 2^${params.scaleBits} allow |sum| < ${bounds.maxAbsSlotValue}, i.e. |value| < ${bounds.maxAbsInputValue} per partner for ${bounds.maxSummands} summands (need ≥ 1)`,
    );
  }
  return params;
}

// ---------------------------------------------------------------------------------------------
// SEAL serialization layout (SEAL 4.1, compr_mode none), checked against live templates at start-up

const SEAL_MAGIC = 0xa15e;
const SEAL_HEADER_SIZE = 16;
/** Ciphertext: header, parms_id(32), is_ntt(1), size(8), degree(8), coeff_mod_size(8), scale(8), correction(8). */
const CT_META_END = SEAL_HEADER_SIZE + 73;
/** Then a DynArray: its own header and a u64 element count. */
const CT_DATA_START = CT_META_END + SEAL_HEADER_SIZE + 8;
/** SecretKey = Plaintext: header, parms_id(32), coeff_count(8), scale(8), then a DynArray. */
const SK_DATA_START = SEAL_HEADER_SIZE + 48 + SEAL_HEADER_SIZE + 8;
/** UniformRandomGeneratorInfo: header, prng type(1), then the seed. */
const SEED_INFO_FIXED = SEAL_HEADER_SIZE + 1;

interface Modulus {
  lo: number;
  hi: number;
  bits: number;
}

interface Layout {
  /** Exact SEAL bytes before the coefficient data (metadata we vouch for). */
  prefix: Uint8Array;
  polyCount: number;
  /** Fixed bytes after the data (seed-info header + PRNG type) for seeded ciphertexts. */
  seedPrefix: Uint8Array | undefined;
  seedLength: number;
  sealLength: number;
  packedLength: number;
}

function readSealHeader(bytes: Uint8Array, what: string): { major: number; minor: number } {
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

function u64At(bytes: Uint8Array, offset: number): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, true));
}

function toModulus(q: bigint): Modulus {
  return { lo: Number(q & 0xffffffffn), hi: Number(q >> 32n), bits: q.toString(2).length };
}

/** Bytes needed to bit-pack one polynomial: N coefficients per prime at that prime's width. */
function polyPackedBytes(n: number, moduli: Modulus[]): number {
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
function u32View(bytes: Uint8Array): Uint32Array {
  const src = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Uint32Array(src.buffer, src.byteOffset, src.byteLength / 4);
}

/** JSON with object keys sorted at every level (RFC 8785 ordering for our ASCII-keyed, integer-valued params). */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Context

export class CkksContext {
  readonly params: HeParams;
  /** sha256 over the canonical parameters and the SEAL serialization version. */
  readonly paramsId: string;
  readonly slotCount: number;
  readonly maxAbsSlotValue: number;
  readonly maxAbsInputValue: number;
  readonly maxSummands: number;
  /** SEAL serialization version, e.g. "4.1". */
  readonly sealVersion: string;

  /** @internal */ readonly seal: SEALLibrary;
  /** @internal */ readonly context: Context;
  /** @internal */ readonly encoder: CKKSEncoder;
  /** @internal */ readonly evaluator: Evaluator;
  /** @internal */ readonly scale: number;
  /** @internal */ readonly dataModuli: Modulus[];
  /** @internal */ readonly keyModuli: Modulus[];
  /** @internal */ readonly seeded: Layout;
  /** @internal */ readonly full: Layout;
  /** @internal */ readonly secretKeyLayout: Layout;
  /** @internal */ readonly paramsIdBytes: Uint8Array;
  /** @internal */ readonly sealMajor: number;
  /** @internal */ readonly sealMinor: number;
  private disposed = false;

  private constructor(init: {
    params: HeParams;
    seal: SEALLibrary;
    context: Context;
    encoder: CKKSEncoder;
    evaluator: Evaluator;
    dataModuli: Modulus[];
    keyModuli: Modulus[];
    seeded: Layout;
    full: Layout;
    secretKeyLayout: Layout;
    sealMajor: number;
    sealMinor: number;
  }) {
    this.params = init.params;
    this.seal = init.seal;
    this.context = init.context;
    this.encoder = init.encoder;
    this.evaluator = init.evaluator;
    this.dataModuli = init.dataModuli;
    this.keyModuli = init.keyModuli;
    this.seeded = init.seeded;
    this.full = init.full;
    this.secretKeyLayout = init.secretKeyLayout;
    this.sealMajor = init.sealMajor;
    this.sealMinor = init.sealMinor;
    this.sealVersion = `${init.sealMajor}.${init.sealMinor}`;
    this.scale = 2 ** init.params.scaleBits;
    this.slotCount = init.params.polyModulusDegree / 2;
    const bounds = heValueBounds(init.params);
    this.maxAbsSlotValue = bounds.maxAbsSlotValue;
    this.maxAbsInputValue = bounds.maxAbsInputValue;
    this.maxSummands = bounds.maxSummands;
    this.paramsId = sha256Hex(
      canonicalJson({ params: init.params, seal: this.sealVersion, format: 'fedmark-ckks-1' }),
    );
    this.paramsIdBytes = Uint8Array.from(Buffer.from(this.paramsId, 'hex'));
  }

  static async create(input: HeParams): Promise<CkksContext> {
    const params = validateHeParams(input);
    if (endianness() !== 'LE') {
      throw new FedmarkError('HE_UNSUPPORTED_PLATFORM', 'the CKKS wire format assumes a little-endian host');
    }
    const { seal } = await loadSeal();
    const n = params.polyModulusDegree;
    if (seal.CoeffModulus.MaxBitCount(n, seal.SecurityLevel.tc128) !== HE_STANDARD_MAX_COEFF_BITS[n]) {
      throw new FedmarkError('HE_UNSUPPORTED_SEAL', 'SEAL disagrees with the HE standard security table');
    }
    const owned = new SealScope();
    try {
      const parms = owned.track(seal.EncryptionParameters(seal.SchemeType.ckks));
      parms.setPolyModulusDegree(n);
      let allModuli: bigint[];
      try {
        withScope((s) => {
          const vec = s.track(seal.CoeffModulus.Create(n, Int32Array.from(params.coeffModulusBits)));
          parms.setCoeffModulus(vec);
        });
        allModuli = Array.from(parms.coeffModulus);
      } catch (err) {
        throw new FedmarkError('HE_BAD_PARAMS', `SEAL cannot create primes of ${params.coeffModulusBits.join(',')} bits for N=${n}: ${(err as Error).message}`);
      }
      const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
      if (!context.parametersSet()) {
        context.delete();
        throw new FedmarkError('HE_INSECURE_PARAMS', `SEAL rejects HE parameters N=${n}, primes ${params.coeffModulusBits.join(',')} bits at 128-bit security`);
      }
      owned.track(context);
      const keyModuli = allModuli.map(toModulus);
      const dataModuli = (allModuli.length === 1 ? allModuli : allModuli.slice(0, -1)).map(toModulus);
      const encoder = owned.track(seal.CKKSEncoder(context));
      const evaluator = owned.track(seal.Evaluator(context));

      // Reference serializations give us the exact metadata bytes SEAL writes for these parameters.
      const refs = withScope((s) => {
        const kg = s.track(seal.KeyGenerator(context));
        const sk = s.track(kg.secretKey());
        const pk = s.track(kg.createPublicKey());
        const enc = s.track(seal.Encryptor(context, pk, sk));
        const pt = s.track(encoder.encode(Float64Array.from([1]), 2 ** params.scaleBits) as ReturnType<CKKSEncoder['encode']> & { delete(): void });
        const ser = s.track(enc.encryptSymmetricSerializable(pt as never));
        const seededBytes = ser.saveArray(seal.ComprModeType.none);
        const ct = s.track(enc.encryptSymmetric(pt as never) as CipherText);
        const fullBytes = ct.saveArray(seal.ComprModeType.none);
        const skBytes = sk.saveArray(seal.ComprModeType.none);
        return { seededBytes, fullBytes, skBytes };
      });
      const ver = readSealHeader(refs.seededBytes, 'ciphertext');
      readSealHeader(refs.fullBytes, 'ciphertext');
      readSealHeader(refs.skBytes, 'secret key');
      const k = dataModuli.length;
      const polyBytes = polyPackedBytes(n, dataModuli);
      const seededData = CT_DATA_START + k * n * 8;
      const seedLength = refs.seededBytes.length - seededData - SEED_INFO_FIXED;
      const layoutOk =
        u64At(refs.seededBytes, CT_DATA_START - 8) === k * n &&
        seedLength > 0 &&
        u64At(refs.fullBytes, CT_DATA_START - 8) === 2 * k * n &&
        refs.fullBytes.length === CT_DATA_START + 2 * k * n * 8 &&
        u64At(refs.skBytes, SK_DATA_START - 8) === keyModuli.length * n &&
        refs.skBytes.length === SK_DATA_START + keyModuli.length * n * 8;
      if (!layoutOk) {
        throw new FedmarkError('HE_UNSUPPORTED_SEAL', `unexpected SEAL ${ver.major}.${ver.minor} serialization layout`);
      }
      const seeded: Layout = {
        prefix: refs.seededBytes.slice(0, CT_DATA_START),
        polyCount: 1,
        seedPrefix: refs.seededBytes.slice(seededData, seededData + SEED_INFO_FIXED),
        seedLength,
        sealLength: refs.seededBytes.length,
        packedLength: seedLength + polyBytes,
      };
      const full: Layout = {
        prefix: refs.fullBytes.slice(0, CT_DATA_START),
        polyCount: 2,
        seedPrefix: undefined,
        seedLength: 0,
        sealLength: refs.fullBytes.length,
        packedLength: 2 * polyBytes,
      };
      const secretKeyLayout: Layout = {
        prefix: refs.skBytes.slice(0, SK_DATA_START),
        polyCount: 1,
        seedPrefix: undefined,
        seedLength: 0,
        sealLength: refs.skBytes.length,
        packedLength: polyPackedBytes(n, keyModuli),
      };
      const ctx = new CkksContext({
        params,
        seal,
        context,
        encoder,
        evaluator,
        dataModuli,
        keyModuli,
        seeded,
        full,
        secretKeyLayout,
        sealMajor: ver.major,
        sealMinor: ver.minor,
      });
      // SEAL's Context keeps its own copy of the parameters.
      parms.delete();
      return ctx;
    } catch (err) {
      owned.dispose();
      throw err;
    }
  }

  /** @internal */
  assertLive(): void {
    if (this.disposed) throw new FedmarkError('HE_DISPOSED', 'CKKS context has been disposed');
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const obj of [this.evaluator, this.encoder, this.context]) {
      try {
        obj.delete();
      } catch {
        // keep freeing the rest
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Ciphertext <-> packed bytes

/** SEAL uncompressed ciphertext bytes → our packed form (metadata checked against the template). */
function packSealCiphertext(ctx: CkksContext, layout: Layout, sealBytes: Uint8Array): Uint8Array {
  if (sealBytes.length !== layout.sealLength || !equalBytes(sealBytes.subarray(0, layout.prefix.length), layout.prefix)) {
    throw new FedmarkError('HE_BAD_CIPHERTEXT', 'ciphertext metadata does not match the context (level, scale or size)');
  }
  const n = ctx.params.polyModulusDegree;
  const moduli = layout === ctx.secretKeyLayout ? ctx.keyModuli : ctx.dataModuli;
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
function unpackToSeal(ctx: CkksContext, layout: Layout, packed: Uint8Array): Uint8Array {
  if (packed.length !== layout.packedLength) {
    throw new FedmarkError('HE_BAD_CIPHERTEXT', `ciphertext has ${packed.length} bytes, expected ${layout.packedLength}`);
  }
  const n = ctx.params.polyModulusDegree;
  const moduli = layout === ctx.secretKeyLayout ? ctx.keyModuli : ctx.dataModuli;
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

function loadCiphertext(ctx: CkksContext, layout: Layout, packed: Uint8Array): CipherText {
  const sealBytes = unpackToSeal(ctx, layout, packed);
  const ct = ctx.seal.CipherText();
  try {
    ct.loadArray(ctx.context, sealBytes);
  } catch (err) {
    ct.delete();
    throw new FedmarkError('HE_BAD_CIPHERTEXT', `SEAL rejected the ciphertext: ${(err as Error).message ?? String(err)}`);
  }
  return ct;
}

// ---------------------------------------------------------------------------------------------
// Blob wire format

/**
 * Blob layout (all integers little-endian):
 *   0  4  magic "FMHE"
 *   4  1  format version (1)
 *   5  1  kind: 1 = fresh (seeded) ciphertexts from one partner, 2 = sum (full ciphertexts)
 *   6  1  SEAL serialization major version
 *   7  1  SEAL serialization minor version
 *   8 32  paramsId (raw sha256)
 *  40  4  summands (1 for a fresh blob; number of fresh blobs added for a sum)
 *  44  4  ciphertext count c
 *  48     c × (u32 length + packed ciphertext)
 * end 32  sha256 of everything before it (detects truncation and corruption; authenticity comes
 *         from the signed request that carries the blob)
 */
const BLOB_MAGIC = Uint8Array.from([0x46, 0x4d, 0x48, 0x45]);
const BLOB_VERSION = 1;
const BLOB_HEADER = 48;
const BLOB_TRAILER = 32;

export type BlobKind = 'fresh' | 'sum';

export interface BlobInfo {
  kind: BlobKind;
  summands: number;
  count: number;
  sealVersion: string;
  paramsId: string;
}

interface ParsedBlob extends BlobInfo {
  layout: Layout;
  entries: Uint8Array[];
}

function writeBlob(ctx: CkksContext, kind: BlobKind, summands: number, packed: Uint8Array[]): Uint8Array {
  const total = BLOB_HEADER + packed.reduce((a, p) => a + 4 + p.length, 0) + BLOB_TRAILER;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(BLOB_MAGIC, 0);
  out[4] = BLOB_VERSION;
  out[5] = kind === 'fresh' ? 1 : 2;
  out[6] = ctx.sealMajor;
  out[7] = ctx.sealMinor;
  out.set(ctx.paramsIdBytes, 8);
  dv.setUint32(40, summands, true);
  dv.setUint32(44, packed.length, true);
  let pos = BLOB_HEADER;
  for (const p of packed) {
    dv.setUint32(pos, p.length, true);
    out.set(p, pos + 4);
    pos += 4 + p.length;
  }
  out.set(createHash('sha256').update(out.subarray(0, pos)).digest(), pos);
  return out;
}

function bad(message: string): FedmarkError {
  return new FedmarkError('HE_BAD_CIPHERTEXT', message);
}

/** Structural validation without touching SEAL. */
function parseBlob(ctx: CkksContext, blob: Uint8Array, expectedCount?: number): ParsedBlob {
  ctx.assertLive();
  if (!(blob instanceof Uint8Array)) throw bad('ciphertext blob must be a Uint8Array');
  if (blob.length < BLOB_HEADER + BLOB_TRAILER) throw bad(`ciphertext blob truncated: ${blob.length} bytes`);
  if (!equalBytes(blob.subarray(0, 4), BLOB_MAGIC)) throw bad('not a fedmark CKKS blob (bad magic)');
  const body = blob.subarray(0, blob.length - BLOB_TRAILER);
  const digest = createHash('sha256').update(body).digest();
  if (!equalBytes(digest, blob.subarray(blob.length - BLOB_TRAILER))) {
    throw bad('ciphertext blob checksum mismatch: truncated or corrupted');
  }
  if (blob[4] !== BLOB_VERSION) throw bad(`unsupported ciphertext blob format version ${blob[4]}`);
  const kindByte = blob[5];
  if (kindByte !== 1 && kindByte !== 2) throw bad(`unknown ciphertext blob kind ${kindByte}`);
  const kind: BlobKind = kindByte === 1 ? 'fresh' : 'sum';
  const sealVersion = `${blob[6]}.${blob[7]}`;
  if (sealVersion !== ctx.sealVersion) {
    throw new FedmarkError('HE_PARAMS_MISMATCH', `ciphertext was serialized by SEAL ${sealVersion}, this node uses SEAL ${ctx.sealVersion}`);
  }
  const paramsId = Buffer.from(blob.subarray(8, 40)).toString('hex');
  if (paramsId !== ctx.paramsId) {
    throw new FedmarkError('HE_PARAMS_MISMATCH', `ciphertext was made under HE params ${paramsId.slice(0, 16)}…, expected ${ctx.paramsId.slice(0, 16)}…`);
  }
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const summands = dv.getUint32(40, true);
  const count = dv.getUint32(44, true);
  if (kind === 'fresh' && summands !== 1) throw bad(`fresh ciphertext blob claims ${summands} summands`);
  if (summands > ctx.maxSummands) throw bad(`ciphertext blob holds ${summands} summands, more than maxSummands ${ctx.maxSummands}`);
  if (count === 0 && (kind === 'fresh' || summands !== 0)) throw bad('ciphertext blob holds no ciphertexts');
  if (expectedCount !== undefined && count !== expectedCount) {
    throw bad(`ciphertext blob holds ${count} ciphertexts, expected ${expectedCount}`);
  }
  const layout = kind === 'fresh' ? ctx.seeded : ctx.full;
  const entries: Uint8Array[] = [];
  let pos = BLOB_HEADER;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > body.length) throw bad(`ciphertext blob truncated at ciphertext ${i}`);
    const len = dv.getUint32(pos, true);
    if (len !== layout.packedLength) throw bad(`ciphertext ${i} has ${len} bytes, expected ${layout.packedLength}`);
    if (pos + 4 + len > body.length) throw bad(`ciphertext blob truncated in ciphertext ${i}`);
    entries.push(blob.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  if (pos !== body.length) throw bad(`ciphertext blob has ${body.length - pos} unexpected trailing bytes`);
  return { kind, summands, count, sealVersion, paramsId, layout, entries };
}

/** Loads every ciphertext of a parsed blob; on any failure frees what was loaded and throws. */
function loadAll(ctx: CkksContext, parsed: ParsedBlob): CipherText[] {
  const loaded: CipherText[] = [];
  try {
    for (const entry of parsed.entries) loaded.push(loadCiphertext(ctx, parsed.layout, entry));
    return loaded;
  } catch (err) {
    for (const ct of loaded) ct.delete();
    throw err;
  }
}

/**
 * Validates a blob completely — header, checksum, params, SEAL version, count, lengths, coefficient
 * ranges, and that SEAL loads every ciphertext — without needing any key. Throws
 * FedmarkError('HE_BAD_CIPHERTEXT' | 'HE_PARAMS_MISMATCH').
 */
export function inspectBlob(ctx: CkksContext, blob: Uint8Array, expectedCount?: number): BlobInfo {
  const parsed = parseBlob(ctx, blob, expectedCount);
  for (const entry of parsed.entries) loadCiphertext(ctx, parsed.layout, entry).delete();
  const { kind, summands, count, sealVersion, paramsId } = parsed;
  return { kind, summands, count, sealVersion, paramsId };
}

/** Number of ciphertexts needed for a vector of this length. */
export function ciphertextCount(ctx: CkksContext, length: number): number {
  return Math.ceil(length / ctx.slotCount);
}

// ---------------------------------------------------------------------------------------------
// Keys

const SK_MAGIC = Uint8Array.from([0x46, 0x4d, 0x53, 0x4b]); // "FMSK"
const SK_HEADER = 4 + 1 + 32;

/**
 * Generates a fresh CKKS secret key, serialized as: "FMSK", version 1, paramsId (32 bytes), the
 * bit-packed key coefficients, sha256 of all of that. The coordinator needs no key material at all
 * (partners encrypt symmetrically, the coordinator only adds), so there is no public key to publish.
 */
export function generateSecretKey(ctx: CkksContext): Uint8Array {
  ctx.assertLive();
  return withScope((s) => {
    const kg = s.track(ctx.seal.KeyGenerator(ctx.context));
    const sk = s.track(kg.secretKey());
    const packed = packSealCiphertext(ctx, ctx.secretKeyLayout, sk.saveArray(ctx.seal.ComprModeType.none));
    const out = new Uint8Array(SK_HEADER + packed.length + 32);
    out.set(SK_MAGIC, 0);
    out[4] = 1;
    out.set(ctx.paramsIdBytes, 5);
    out.set(packed, SK_HEADER);
    out.set(createHash('sha256').update(out.subarray(0, SK_HEADER + packed.length)).digest(), SK_HEADER + packed.length);
    packed.fill(0);
    return out;
  });
}

function loadSecretKey(ctx: CkksContext, bytes: Uint8Array): SecretKey {
  const expected = SK_HEADER + ctx.secretKeyLayout.packedLength + 32;
  if (!(bytes instanceof Uint8Array) || bytes.length !== expected || !equalBytes(bytes.subarray(0, 4), SK_MAGIC) || bytes[4] !== 1) {
    throw new FedmarkError('HE_BAD_SECRET_KEY', 'not a fedmark CKKS secret key for these parameters (bad magic, version or length)');
  }
  const digest = createHash('sha256').update(bytes.subarray(0, expected - 32)).digest();
  if (!equalBytes(digest, bytes.subarray(expected - 32))) {
    throw new FedmarkError('HE_BAD_SECRET_KEY', 'CKKS secret key checksum mismatch: corrupted');
  }
  if (!equalBytes(bytes.subarray(5, 37), ctx.paramsIdBytes)) {
    throw new FedmarkError('HE_PARAMS_MISMATCH', 'CKKS secret key was generated for other HE parameters');
  }
  let sealBytes: Uint8Array;
  try {
    sealBytes = unpackToSeal(ctx, ctx.secretKeyLayout, bytes.subarray(SK_HEADER, expected - 32));
  } catch {
    throw new FedmarkError('HE_BAD_SECRET_KEY', 'CKKS secret key coefficients out of range');
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

// ---------------------------------------------------------------------------------------------
// Partner side: encrypt / decrypt

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
      packed.push(packSealCiphertext(ctx, ctx.seeded, sealBytes));
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

// ---------------------------------------------------------------------------------------------
// Coordinator side: add ciphertexts, no key

export class CkksAggregator {
  private readonly ctx: CkksContext;
  private sums: CipherText[] = [];
  private summands = 0;
  private disposed = false;

  constructor(ctx: CkksContext) {
    ctx.assertLive();
    this.ctx = ctx;
  }

  /** Restores a running sum persisted with toBytes() (or starts from a single fresh blob). */
  static fromBytes(ctx: CkksContext, bytes: Uint8Array): CkksAggregator {
    const agg = new CkksAggregator(ctx);
    const parsed = parseBlob(ctx, bytes);
    agg.sums = loadAll(ctx, parsed);
    agg.summands = parsed.summands;
    return agg;
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
    if (this.disposed) throw new FedmarkError('HE_DISPOSED', 'CKKS aggregator has been disposed');
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
    if (this.disposed) throw new FedmarkError('HE_DISPOSED', 'CKKS aggregator has been disposed');
    const ctx = this.ctx;
    const packed = this.sums.map((ct) => packSealCiphertext(ctx, ctx.full, ct.saveArray(ctx.seal.ComprModeType.none)));
    return writeBlob(ctx, 'sum', this.summands, packed);
  }

  dispose(): void {
    for (const ct of this.sums) ct.delete();
    this.sums = [];
    this.disposed = true;
  }
}
