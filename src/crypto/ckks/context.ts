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
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { loadSeal, SealScope } from '../seal.ts';
import { captureLayouts, CKKS_WIRE, openSealContext, SealContextBase, type SealContextParts } from '../seal-wire/context.ts';
import { HE_STANDARD_MAX_COEFF_BITS, heValueBounds, validateHeParams, type HeParams } from './params.ts';
import type { CKKSEncoder } from 'node-seal/implementation/ckks-encoder.js';
import type { PlainText } from 'node-seal/implementation/plain-text.js';

export class CkksContext extends SealContextBase {
  readonly wire = CKKS_WIRE;
  readonly params: HeParams;
  /** sha256 over the canonical parameters and the SEAL serialization version. */
  readonly paramsId: string;
  readonly slotCount: number;
  readonly maxAbsSlotValue: number;
  readonly maxAbsInputValue: number;
  readonly maxSummands: number;
  /** @internal */ readonly encoder: CKKSEncoder;
  /** @internal */ readonly scale: number;

  private constructor(init: SealContextParts & { params: HeParams; encoder: CKKSEncoder }) {
    super(init);
    this.params = init.params;
    this.encoder = init.encoder;
    this.scale = 2 ** init.params.scaleBits;
    this.slotCount = init.params.polyModulusDegree / 2;
    const bounds = heValueBounds(init.params);
    this.maxAbsSlotValue = bounds.maxAbsSlotValue;
    this.maxAbsInputValue = bounds.maxAbsInputValue;
    this.maxSummands = bounds.maxSummands;
    // RFC 8785 canonical JSON, shared with the ledger: the id is the same whichever program computes it.
    this.paramsId = sha256Canonical({ params: init.params, seal: this.sealVersion, format: 'fedmark-ckks-1' });
  }

  static async create(input: HeParams): Promise<CkksContext> {
    const params = validateHeParams(input);
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
      return new CkksContext({ params, seal, context, encoder, evaluator, owned: [encoder], ...layouts });
    } catch (err) {
      owned.dispose();
      throw err;
    }
  }
}
