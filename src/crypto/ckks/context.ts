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
 * - Untrusted bytes never reach SEAL's deserializer unvalidated (see ../seal-wire/wire-coding.ts).
 */
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { loadSeal, SealScope, type SEALLibrary } from '../seal.ts';
import { captureLayouts, CKKS_WIRE, openSealContext, type SealWireContext } from '../seal-wire/context.ts';
import type { Layout } from '../seal-wire/wire-coding.ts';
import { HE_STANDARD_MAX_COEFF_BITS, heValueBounds, validateHeParams, type HeParams } from './params.ts';
import type { Context } from 'node-seal/implementation/context.js';
import type { CKKSEncoder } from 'node-seal/implementation/ckks-encoder.js';
import type { Evaluator } from 'node-seal/implementation/evaluator.js';
import type { PlainText } from 'node-seal/implementation/plain-text.js';
import { endianness } from 'node:os';

export class CkksContext implements SealWireContext {
  readonly wire = CKKS_WIRE;
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
    const owned = new SealScope();
    try {
      const { context, keyModuli, dataModuli } = openSealContext(seal, 'ckks', n, { bits: params.coeffModulusBits }, HE_STANDARD_MAX_COEFF_BITS[n]);
      owned.track(context);
      const encoder = owned.track(seal.CKKSEncoder(context));
      const evaluator = owned.track(seal.Evaluator(context));
      const layouts = captureLayouts(seal, n, dataModuli, keyModuli, (s) => {
        const kg = s.track(seal.KeyGenerator(context));
        const secretKey = s.track(kg.secretKey());
        const pk = s.track(kg.createPublicKey());
        const encryptor = s.track(seal.Encryptor(context, pk, secretKey));
        const plain = s.track(encoder.encode(Float64Array.from([1]), 2 ** params.scaleBits) as PlainText);
        return { encryptor, secretKey, plain };
      });
      return new CkksContext({ params, seal, context, encoder, evaluator, ...layouts });
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
