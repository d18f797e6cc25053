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
 * - Untrusted bytes never reach SEAL's deserializer unvalidated (see wire-coding.ts).
 */
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { loadSeal, SealScope, withScope, type SEALLibrary } from '../seal.ts';
import { HE_STANDARD_MAX_COEFF_BITS, heValueBounds, validateHeParams, type HeParams } from './params.ts';
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
} from './wire-coding.ts';
import type { Context } from 'node-seal/implementation/context.js';
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import type { CKKSEncoder } from 'node-seal/implementation/ckks-encoder.js';
import type { Evaluator } from 'node-seal/implementation/evaluator.js';
import { endianness } from 'node:os';

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
    // RFC 8785 canonical JSON, shared with the ledger: the id is the same whichever program computes it.
    this.paramsId = sha256Canonical({ params: init.params, seal: this.sealVersion, format: 'fedmark-ckks-1' });
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
        n,
        moduli: dataModuli,
        prefix: refs.seededBytes.slice(0, CT_DATA_START),
        polyCount: 1,
        seedPrefix: refs.seededBytes.slice(seededData, seededData + SEED_INFO_FIXED),
        seedLength,
        sealLength: refs.seededBytes.length,
        packedLength: seedLength + polyBytes,
      };
      const full: Layout = {
        n,
        moduli: dataModuli,
        prefix: refs.fullBytes.slice(0, CT_DATA_START),
        polyCount: 2,
        seedPrefix: undefined,
        seedLength: 0,
        sealLength: refs.fullBytes.length,
        packedLength: 2 * polyBytes,
      };
      const secretKeyLayout: Layout = {
        n,
        moduli: keyModuli,
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

/** Rebuilds SEAL bytes from a validated packed ciphertext and loads them (SEAL's own checks run too). */
export function loadCiphertext(ctx: CkksContext, layout: Layout, packed: Uint8Array): CipherText {
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
