/**
 * The SEAL context of vertical SecureBoost: BFV with a chain of ciphertext primes, coefficient-encoded
 * plaintexts built from hand-written bytes (node-seal has no polynomial API), and the serialization
 * templates of the three wire objects — the label holder's seeded gradient ciphertexts (top level),
 * the feature holder's results (switched to the last prime) and the public key. Everything on the wire
 * goes through seal-wire's validated container (checksum, parameter id, every coefficient range-checked
 * before SEAL sees it).
 */
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import type { PlainText } from 'node-seal/implementation/plain-text.js';
import type { PublicKey } from 'node-seal/implementation/public-key.js';
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { HE_STANDARD_MAX_COEFF_BITS } from '../../crypto/ckks/params.ts';
import { loadSeal, SealScope, withScope, type SEALLibrary } from '../../crypto/seal.ts';
import { captureLayouts, openSealContext, type SealWireContext, type WireFormat } from '../../crypto/seal-wire/context.ts';
import { CT_DATA_START, SK_DATA_START, polyPackedBytes, u64At, type Layout, type Modulus } from '../../crypto/seal-wire/wire-coding.ts';
import { parseVerticalHeParams, type VerticalHeParams, type VerticalHeParamsInput } from './params.ts';

/** Gradient ciphertexts ("FMVG") and results ("FMVR") have their own magics: one is never read as the other. */
const GRADIENT_WIRE: WireFormat = Object.freeze({
  label: 'vertical gradient',
  blobMagic: Uint8Array.from([0x46, 0x4d, 0x56, 0x47]),
  keyMagic: Uint8Array.from([0x46, 0x4d, 0x56, 0x4b]),
});
const RESULT_WIRE: WireFormat = Object.freeze({
  label: 'vertical result',
  blobMagic: Uint8Array.from([0x46, 0x4d, 0x56, 0x52]),
  keyMagic: Uint8Array.from([0x46, 0x4d, 0x56, 0x4b]),
});

/** A plaintext is serialized like a secret key: header, parms_id, coeff_count, scale, then a DynArray. */
const PT_DATA_START = SK_DATA_START;

export class VerticalHeContext {
  readonly params: VerticalHeParams;
  readonly n: number;
  /** The plain modulus t. */
  readonly t: bigint;
  /** Product of the ciphertext primes, and the first prime (what results are switched to). */
  readonly q: bigint;
  readonly q1: bigint;
  readonly paramsId: string;
  /** @internal */ readonly seal: SEALLibrary;
  /** @internal views for seal-wire's container: gradients at the top level, results at the last. */
  readonly gradients: SealWireContext;
  readonly results: SealWireContext;
  /** @internal */ readonly publicKeyLayout: Layout;
  /** @internal */ readonly topModuli: Modulus[];
  private readonly ptTemplate: Uint8Array;
  private readonly owned: SealScope;
  private disposed = false;

  private constructor(init: {
    params: VerticalHeParams;
    seal: SEALLibrary;
    t: bigint;
    q: bigint;
    q1: bigint;
    gradients: SealWireContext;
    results: SealWireContext;
    publicKeyLayout: Layout;
    topModuli: Modulus[];
    ptTemplate: Uint8Array;
    owned: SealScope;
    paramsId: string;
  }) {
    this.params = init.params;
    this.n = init.params.polyModulusDegree;
    this.seal = init.seal;
    this.t = init.t;
    this.q = init.q;
    this.q1 = init.q1;
    this.gradients = init.gradients;
    this.results = init.results;
    this.publicKeyLayout = init.publicKeyLayout;
    this.topModuli = init.topModuli;
    this.ptTemplate = init.ptTemplate;
    this.owned = init.owned;
    this.paramsId = init.paramsId;
  }

  static async create(input: VerticalHeParamsInput = {}): Promise<VerticalHeContext> {
    const params = parseVerticalHeParams(input);
    const { seal } = await loadSeal();
    const n = params.polyModulusDegree;
    const owned = new SealScope();
    try {
      let t = 0n;
      const { context, keyModuli, dataModuli } = openSealContext(seal, 'bfv', n, { bits: params.coeffModulusBits }, HE_STANDARD_MAX_COEFF_BITS[n], (parms) => {
        withScope((s) => {
          const pm = s.track(seal.PlainModulus.Batching(n, params.plainModulusBits));
          t = BigInt(pm.value);
          parms.setPlainModulus(pm);
        });
      });
      owned.track(context);
      const evaluator = owned.track(seal.Evaluator(context));
      const big = (m: Modulus) => (BigInt(m.hi) << 32n) | BigInt(m.lo);
      const q = dataModuli.reduce((acc, m) => acc * big(m), 1n);
      const q1 = big(dataModuli[0]);
      const lastModuli = [dataModuli[0]];
      const refs = withScope((s) => {
        const encoder = s.track(seal.BatchEncoder(context));
        const kg = s.track(seal.KeyGenerator(context));
        const secretKey = s.track(kg.secretKey());
        const pk = s.track(kg.createPublicKey());
        const encryptor = s.track(seal.Encryptor(context, pk, secretKey));
        const plain = s.track(encoder.encode(BigUint64Array.from([1n])) as PlainText);
        const layouts = captureLayouts(seal, n, dataModuli, keyModuli, () => ({ encryptor, secretKey, plain }));
        const ct = s.track(encryptor.encryptSymmetric(plain) as CipherText);
        const low = s.track(seal.CipherText());
        evaluator.cipherModSwitchTo(ct, context.lastParmsId, low);
        return {
          layouts,
          lowBytes: low.saveArray(seal.ComprModeType.none),
          pkBytes: pk.saveArray(seal.ComprModeType.none),
          ptBytes: plain.saveArray(seal.ComprModeType.none),
        };
      });
      const { layouts } = refs;
      const k = keyModuli.length;
      if (u64At(refs.lowBytes, CT_DATA_START - 8) !== 2 * n || refs.lowBytes.length !== CT_DATA_START + 2 * n * 8) {
        throw new FedmarkError('HE_UNSUPPORTED_SEAL', 'unexpected SEAL layout of a switched BFV ciphertext');
      }
      if (u64At(refs.pkBytes, CT_DATA_START - 8) !== 2 * k * n || refs.pkBytes.length !== CT_DATA_START + 2 * k * n * 8) {
        throw new FedmarkError('HE_UNSUPPORTED_SEAL', 'unexpected SEAL layout of a BFV public key');
      }
      if (refs.ptBytes.length !== PT_DATA_START + n * 8 || u64At(refs.ptBytes, PT_DATA_START - 8) !== n) {
        throw new FedmarkError('HE_UNSUPPORTED_SEAL', 'unexpected SEAL layout of a BFV plaintext');
      }
      const lowLayout: Layout = {
        n,
        moduli: lastModuli,
        prefix: refs.lowBytes.slice(0, CT_DATA_START),
        polyCount: 2,
        seedPrefix: undefined,
        seedLength: 0,
        sealLength: refs.lowBytes.length,
        packedLength: 2 * polyPackedBytes(n, lastModuli),
      };
      const publicKeyLayout: Layout = {
        n,
        moduli: keyModuli,
        prefix: refs.pkBytes.slice(0, CT_DATA_START),
        polyCount: 2,
        seedPrefix: undefined,
        seedLength: 0,
        sealLength: refs.pkBytes.length,
        packedLength: 2 * polyPackedBytes(n, keyModuli),
      };
      const sealVersion = `${layouts.sealMajor}.${layouts.sealMinor}`;
      const paramsId = sha256Canonical({
        format: 'fedmark-vertical-bfv-1',
        params,
        t: t.toString(),
        moduli: keyModuli.map((m) => big(m).toString()),
        seal: sealVersion,
      });
      const view = (wire: WireFormat, level: 'top' | 'last'): SealWireContext => {
        const id = sha256Canonical({ paramsId, level });
        const idBytes = Uint8Array.from(Buffer.from(id, 'hex'));
        return {
          wire,
          paramsId: id,
          slotCount: n,
          maxSummands: 1,
          sealVersion,
          seal,
          context,
          evaluator,
          seeded: layouts.seeded,
          full: level === 'top' ? layouts.full : lowLayout,
          secretKeyLayout: layouts.secretKeyLayout,
          paramsIdBytes: idBytes,
          sealMajor: layouts.sealMajor,
          sealMinor: layouts.sealMinor,
          assertLive: () => ctxRef.assertLive(),
        };
      };
      const ctxRef: VerticalHeContext = new VerticalHeContext({
        params,
        seal,
        t,
        q,
        q1,
        gradients: view(GRADIENT_WIRE, 'top'),
        results: view(RESULT_WIRE, 'last'),
        publicKeyLayout,
        topModuli: dataModuli,
        ptTemplate: refs.ptBytes,
        owned,
        paramsId,
      });
      return ctxRef;
    } catch (err) {
      owned.dispose();
      throw err;
    }
  }

  /** @internal */
  get context() {
    return this.gradients.context;
  }

  /** @internal */
  get evaluator() {
    return this.gradients.evaluator;
  }

  assertLive(): void {
    if (this.disposed) throw new FedmarkError('HE_DISPOSED', 'the vertical HE context has been disposed');
  }

  /**
   * A plaintext polynomial from coefficients mod t (`coeffs[i]` is the coefficient of X^i, each in
   * [0, t) as a pair of u32 words little-endian). SEAL lifts coefficients ≥ (t+1)/2 to negative values
   * when it multiplies, so t − 1 acts as −1.
   */
  plaintext(words: Uint32Array): PlainText {
    this.assertLive();
    if (words.length !== 2 * this.n) throw new FedmarkError('HE_BAD_INPUT', `a plaintext has ${this.n} coefficients`);
    const bytes = new Uint8Array(this.ptTemplate.length);
    bytes.set(this.ptTemplate.subarray(0, PT_DATA_START), 0);
    bytes.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), PT_DATA_START);
    const pt = this.seal.PlainText();
    try {
      pt.loadArray(this.context, bytes);
    } catch (err) {
      pt.delete();
      throw new FedmarkError('HE_BAD_INPUT', `SEAL rejected a plaintext: ${(err as Error).message ?? String(err)}`);
    }
    return pt;
  }

  /** Coefficients of a decrypted plaintext as u32 word pairs (zero-padded to N). */
  coefficients(pt: PlainText): Uint32Array {
    const bytes = pt.saveArray(this.seal.ComprModeType.none);
    const count = u64At(bytes, PT_DATA_START - 8);
    const out = new Uint32Array(2 * this.n);
    out.set(new Uint32Array(bytes.slice(PT_DATA_START, PT_DATA_START + count * 8).buffer));
    return out;
  }

  /** @internal A public key from untrusted bytes: exact layout, every coefficient below its prime, then SEAL's own checks. */
  loadPublicKey(bytes: Uint8Array): PublicKey {
    this.assertLive();
    const L = this.publicKeyLayout;
    if (!(bytes instanceof Uint8Array) || bytes.length !== L.sealLength)
      throw new FedmarkError('HE_BAD_PUBLIC_KEY', `a public key for these parameters has ${L.sealLength} bytes, got ${bytes?.length}`);
    for (let i = 0; i < L.prefix.length; i++) {
      if (bytes[i] !== L.prefix[i]) throw new FedmarkError('HE_BAD_PUBLIC_KEY', 'public key metadata does not match these HE parameters');
    }
    const words = new Uint32Array(bytes.slice(L.prefix.length).buffer);
    let w = 0;
    for (let p = 0; p < 2; p++) {
      for (const m of L.moduli) {
        for (let i = 0; i < this.n; i++, w += 2) {
          const lo = words[w];
          const hi = words[w + 1];
          if (hi > m.hi || (hi === m.hi && lo >= m.lo)) throw new FedmarkError('HE_BAD_PUBLIC_KEY', 'public key coefficient is not reduced modulo its prime');
        }
      }
    }
    const pk = this.seal.PublicKey();
    try {
      pk.loadArray(this.context, bytes);
    } catch (err) {
      pk.delete();
      throw new FedmarkError('HE_BAD_PUBLIC_KEY', `SEAL rejected the public key: ${(err as Error).message ?? String(err)}`);
    }
    return pk;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.owned.dispose();
  }
}
