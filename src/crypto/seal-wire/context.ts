/**
 * What the scheme-independent SEAL wire code needs from a context (CKKS or BFV), and the capture of
 * the serialization templates every packed ciphertext is rebuilt on.
 */
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import type { Context } from 'node-seal/implementation/context.js';
import type { Encryptor } from 'node-seal/implementation/encryptor.js';
import type { Evaluator } from 'node-seal/implementation/evaluator.js';
import type { PlainText } from 'node-seal/implementation/plain-text.js';
import type { SecretKey } from 'node-seal/implementation/secret-key.js';
import { endianness } from 'node:os';
import { FedmarkError } from '../../errors.ts';
import { withScope, type SEALLibrary } from '../seal.ts';
import {
  CT_DATA_START,
  SEED_INFO_FIXED,
  SK_DATA_START,
  polyPackedBytes,
  readSealHeader,
  toModulus,
  u64At,
  unpackToSeal,
  type Layout,
  type Modulus,
} from './wire-coding.ts';

/** Per-scheme constants of the fedmark containers. */
export interface WireFormat {
  /** "CKKS" or "BFV", used in messages. */
  label: string;
  /** 4-byte magic of a ciphertext blob. */
  blobMagic: Uint8Array;
  /** 4-byte magic of a serialized secret key. */
  keyMagic: Uint8Array;
}

export const CKKS_WIRE: WireFormat = Object.freeze({
  label: 'CKKS',
  blobMagic: Uint8Array.from([0x46, 0x4d, 0x48, 0x45]), // "FMHE"
  keyMagic: Uint8Array.from([0x46, 0x4d, 0x53, 0x4b]), // "FMSK"
});

export const BFV_WIRE: WireFormat = Object.freeze({
  label: 'BFV',
  blobMagic: Uint8Array.from([0x46, 0x4d, 0x42, 0x56]), // "FMBV"
  keyMagic: Uint8Array.from([0x46, 0x4d, 0x42, 0x4b]), // "FMBK"
});

export const WIRE_FORMATS: readonly WireFormat[] = [CKKS_WIRE, BFV_WIRE];

export interface SealWireContext {
  readonly wire: WireFormat;
  readonly paramsId: string;
  readonly slotCount: number;
  readonly maxSummands: number;
  readonly sealVersion: string;
  /** @internal */ readonly seal: SEALLibrary;
  /** @internal */ readonly context: Context;
  /** @internal */ readonly evaluator: Evaluator;
  /** @internal */ readonly seeded: Layout;
  /** @internal */ readonly full: Layout;
  /** @internal */ readonly secretKeyLayout: Layout;
  /** @internal */ readonly paramsIdBytes: Uint8Array;
  /** @internal */ readonly sealMajor: number;
  /** @internal */ readonly sealMinor: number;
  assertLive(): void;
}

export interface CapturedLayouts {
  seeded: Layout;
  full: Layout;
  secretKeyLayout: Layout;
  sealMajor: number;
  sealMinor: number;
}

/**
 * Reference serializations give the exact metadata bytes SEAL writes for these parameters: one seeded
 * and one full encryption of `plain`, and the secret key. They are checked against the SEAL 4.1
 * layout (HE_UNSUPPORTED_SEAL on anything else) and become the templates of every later load.
 */
export function captureLayouts(
  seal: SEALLibrary,
  n: number,
  dataModuli: Modulus[],
  keyModuli: Modulus[],
  make: (s: { track<T extends { delete(): void }>(x: T): T }) => { encryptor: Encryptor; secretKey: SecretKey; plain: PlainText },
): CapturedLayouts {
  const refs = withScope((s) => {
    const { encryptor, secretKey, plain } = make(s);
    const ser = s.track(encryptor.encryptSymmetricSerializable(plain));
    const seededBytes = ser.saveArray(seal.ComprModeType.none);
    const ct = s.track(encryptor.encryptSymmetric(plain) as CipherText);
    const fullBytes = ct.saveArray(seal.ComprModeType.none);
    const skBytes = secretKey.saveArray(seal.ComprModeType.none);
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
  return {
    seeded: {
      n,
      moduli: dataModuli,
      prefix: refs.seededBytes.slice(0, CT_DATA_START),
      polyCount: 1,
      seedPrefix: refs.seededBytes.slice(seededData, seededData + SEED_INFO_FIXED),
      seedLength,
      sealLength: refs.seededBytes.length,
      packedLength: seedLength + polyBytes,
    },
    full: {
      n,
      moduli: dataModuli,
      prefix: refs.fullBytes.slice(0, CT_DATA_START),
      polyCount: 2,
      seedPrefix: undefined,
      seedLength: 0,
      sealLength: refs.fullBytes.length,
      packedLength: 2 * polyBytes,
    },
    secretKeyLayout: {
      n,
      moduli: keyModuli,
      prefix: refs.skBytes.slice(0, SK_DATA_START),
      polyCount: 1,
      seedPrefix: undefined,
      seedLength: 0,
      sealLength: refs.skBytes.length,
      packedLength: polyPackedBytes(n, keyModuli),
    },
    sealMajor: ver.major,
    sealMinor: ver.minor,
  };
}

/** Rebuilds SEAL bytes from a validated packed ciphertext and loads them (SEAL's own checks run too). */
export function loadCiphertext(ctx: SealWireContext, layout: Layout, packed: Uint8Array): CipherText {
  const sealBytes = unpackToSeal(layout, packed);
  const ct = ctx.seal.CipherText();
  try {
    ct.loadArray(ctx.context, sealBytes);
  } catch (err) {
    ct.delete();
    throw new FedmarkError('HE_BAD_CIPHERTEXT', `SEAL rejected the ciphertext: ${(err as Error).message ?? String(err)}`);
  }
  return ct;
}

export interface OpenedSealContext {
  context: Context;
  /** Every RNS prime, the special prime last when there are several. */
  keyModuli: Modulus[];
  /** The primes ciphertexts live under: all of them when there is one, else all but the special prime. */
  dataModuli: Modulus[];
}

/**
 * Builds a SEAL context at 128-bit security (SEAL's own `tc128` check on top of the HE-standard table
 * the caller already applied). `configure` sets scheme-specific parameters (BFV's plain modulus).
 * Throws HE_BAD_PARAMS when SEAL cannot create the primes, HE_INSECURE_PARAMS when it rejects the set.
 */
export function openSealContext(
  seal: SEALLibrary,
  scheme: 'ckks' | 'bfv',
  n: number,
  moduli: { bits: number[] } | { primes: bigint[] },
  maxCoeffBits: number,
  configure?: (parms: ReturnType<SEALLibrary['EncryptionParameters']>) => void,
): OpenedSealContext {
  if (endianness() !== 'LE') {
    throw new FedmarkError('HE_UNSUPPORTED_PLATFORM', `the ${scheme.toUpperCase()} wire format assumes a little-endian host`);
  }
  const coeffModulusBits = 'bits' in moduli ? moduli.bits : moduli.primes.map((q) => q.toString(2).length);
  if (seal.CoeffModulus.MaxBitCount(n, seal.SecurityLevel.tc128) !== maxCoeffBits) {
    throw new FedmarkError('HE_UNSUPPORTED_SEAL', 'SEAL disagrees with the HE standard security table');
  }
  return withScope((s) => {
    const parms = s.track(seal.EncryptionParameters(scheme === 'ckks' ? seal.SchemeType.ckks : seal.SchemeType.bfv));
    parms.setPolyModulusDegree(n);
    let allModuli: bigint[];
    try {
      if ('bits' in moduli) {
        parms.setCoeffModulus(s.track(seal.CoeffModulus.Create(n, Int32Array.from(moduli.bits))));
      } else {
        // Explicit primes: node-seal builds a vector of Modulus objects from their instances.
        const mods = moduli.primes.map((q) => s.track(seal.Modulus(q)));
        const vec = s.track(seal.Vector());
        vec.from(mods.map((m) => m.instance) as unknown as BigUint64Array, 'Modulus');
        parms.setCoeffModulus(vec);
      }
      allModuli = Array.from(parms.coeffModulus);
      configure?.(parms);
    } catch (err) {
      if (err instanceof FedmarkError) throw err;
      throw new FedmarkError('HE_BAD_PARAMS', `SEAL cannot create primes of ${coeffModulusBits.join(',')} bits for N=${n}: ${(err as Error).message}`);
    }
    // SEAL's Context keeps its own copy of the parameters, so `parms` is freed with the scope.
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
    if (!context.parametersSet()) {
      context.delete();
      throw new FedmarkError(
        'HE_INSECURE_PARAMS',
        `SEAL rejects ${scheme.toUpperCase()} parameters N=${n}, primes ${coeffModulusBits.join(',')} bits at 128-bit security`,
      );
    }
    const keyModuli = allModuli.map(toModulus);
    const dataModuli = (allModuli.length === 1 ? allModuli : allModuli.slice(0, -1)).map(toModulus);
    return { context, keyModuli, dataModuli };
  });
}

export interface SealContextParts extends CapturedLayouts {
  seal: SEALLibrary;
  context: Context;
  evaluator: Evaluator;
  /** Further scheme objects (the encoder) freed with the context. */
  owned: { delete(): void }[];
}

/** The SEAL objects and templates every scheme's context holds, and their disposal. */
export abstract class SealContextBase implements SealWireContext {
  abstract readonly wire: WireFormat;
  abstract readonly paramsId: string;
  abstract readonly slotCount: number;
  abstract readonly maxSummands: number;
  /** SEAL serialization version, e.g. "4.1". */
  readonly sealVersion: string;
  /** @internal */ readonly seal: SEALLibrary;
  /** @internal */ readonly context: Context;
  /** @internal */ readonly evaluator: Evaluator;
  /** @internal */ readonly seeded: Layout;
  /** @internal */ readonly full: Layout;
  /** @internal */ readonly secretKeyLayout: Layout;
  /** @internal */ readonly sealMajor: number;
  /** @internal */ readonly sealMinor: number;
  private readonly owned: { delete(): void }[];
  private idBytes: Uint8Array | undefined;
  private disposed = false;

  protected constructor(parts: SealContextParts) {
    this.seal = parts.seal;
    this.context = parts.context;
    this.evaluator = parts.evaluator;
    this.seeded = parts.seeded;
    this.full = parts.full;
    this.secretKeyLayout = parts.secretKeyLayout;
    this.sealMajor = parts.sealMajor;
    this.sealMinor = parts.sealMinor;
    this.sealVersion = `${parts.sealMajor}.${parts.sealMinor}`;
    this.owned = [parts.evaluator, ...parts.owned, parts.context];
  }

  /** @internal */
  get paramsIdBytes(): Uint8Array {
    this.idBytes ??= Uint8Array.from(Buffer.from(this.paramsId, 'hex'));
    return this.idBytes;
  }

  /** @internal */
  assertLive(): void {
    if (this.disposed) throw new FedmarkError('HE_DISPOSED', `${this.wire.label} context has been disposed`);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const obj of this.owned) {
      try {
        obj.delete();
      } catch {
        // keep freeing the rest
      }
    }
  }
}
