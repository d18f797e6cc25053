/**
 * BFV context via node-seal 6.0.3 (Microsoft SEAL 4.1), used for exact aggregation of integers modulo
 * the plaintext modulus t: partners encrypt (seeded, symmetric), the coordinator adds, key holders
 * decrypt. It shares the validated wire coding, blob format and key format with CKKS (../seal-wire),
 * under its own magics ("FMBV", "FMBK") and paramsId, so a blob or key of one scheme or parameter set
 * is refused by the other with HE_PARAMS_MISMATCH.
 */
import type { BatchEncoder } from 'node-seal/implementation/batch-encoder.js';
import type { PlainText } from 'node-seal/implementation/plain-text.js';
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { HE_STANDARD_MAX_COEFF_BITS } from '../ckks/params.ts';
import { loadSeal, SealScope, withScope } from '../seal.ts';
import { BFV_WIRE, captureLayouts, openSealContext, SealContextBase, type SealContextParts } from '../seal-wire/context.ts';
import { bfvCoeffPrime, bfvNoiseMaxSummands, isPrime, validateBfvParams, type BfvParams } from './params.ts';

export class BfvContext extends SealContextBase {
  readonly wire = BFV_WIRE;
  readonly params: BfvParams;
  /** sha256 over the canonical parameters, the actual primes and the SEAL serialization version. */
  readonly paramsId: string;
  /** Values per ciphertext: N (batching fills every coefficient). */
  readonly slotCount: number;
  /** The plaintext modulus t (prime, ≡ 1 mod 2N, < 2^50 so residues are exact float64 integers). */
  readonly plainModulus: number;
  /** The ciphertext modulus q (product of the data primes), as decimal text for records. */
  readonly coeffModulus: string;
  /** Worst-case summands whose sum still decrypts exactly (bfvNoiseMaxSummands). */
  readonly noiseMaxSummands: number;
  readonly maxSummands: number;
  /** @internal */ readonly encoder: BatchEncoder;

  private constructor(init: SealContextParts & { params: BfvParams; plainModulus: bigint; dataModulus: bigint; encoder: BatchEncoder }) {
    super(init);
    this.encoder = init.encoder;
    this.slotCount = init.params.polyModulusDegree;
    this.plainModulus = Number(init.plainModulus);
    this.coeffModulus = init.dataModulus.toString();
    this.noiseMaxSummands = bfvNoiseMaxSummands(init.dataModulus, init.plainModulus);
    const maxSummands = init.params.maxSummands ?? this.noiseMaxSummands;
    if (maxSummands > this.noiseMaxSummands || this.noiseMaxSummands < 1) {
      throw new FedmarkError(
        'HE_BAD_PARAMS',
        `BFV maxSummands ${maxSummands} exceeds the noise bound: a ${init.params.plainModulusBits}-bit plain modulus under q ≈ 2^${init.dataModulus.toString(2).length} decrypts sums of at most ${this.noiseMaxSummands} ciphertexts exactly`,
      );
    }
    this.maxSummands = maxSummands;
    this.params = { ...init.params, maxSummands };
    this.paramsId = sha256Canonical({
      format: 'fedmark-bfv-1',
      params: this.params,
      plainModulus: init.plainModulus.toString(),
      coeffModulus: this.coeffModulus,
      seal: this.sealVersion,
    });
  }

  static async create(input: BfvParams): Promise<BfvContext> {
    const params = validateBfvParams(input);
    const { seal } = await loadSeal();
    const n = params.polyModulusDegree;
    const tModulus = seal.PlainModulus.Batching(n, params.plainModulusBits);
    let plainModulus: bigint;
    try {
      plainModulus = BigInt(tModulus.value);
    } finally {
      tModulus.delete();
    }
    // Batching needs t prime and t ≡ 1 (mod 2N) (the slots are the CRT factors of x^N + 1 mod t).
    if (!isPrime(plainModulus) || (plainModulus - 1n) % BigInt(2 * n) !== 0n || plainModulus.toString(2).length !== params.plainModulusBits) {
      throw new FedmarkError('HE_BAD_PARAMS', `SEAL returned plain modulus ${plainModulus}, not a ${params.plainModulusBits}-bit prime ≡ 1 mod ${2 * n}`);
    }
    const q = bfvCoeffPrime(params.coeffModulusBits[0], plainModulus, n);
    const owned = new SealScope();
    try {
      const { context, keyModuli, dataModuli } = openSealContext(seal, 'bfv', n, { primes: [q] }, HE_STANDARD_MAX_COEFF_BITS[n], (parms) => {
        withScope((s) => parms.setPlainModulus(s.track(seal.Modulus(plainModulus))));
      });
      owned.track(context);
      const dataModulus = dataModuli.reduce((acc, m) => acc * ((BigInt(m.hi) << 32n) | BigInt(m.lo)), 1n);
      const encoder = owned.track(seal.BatchEncoder(context));
      const evaluator = owned.track(seal.Evaluator(context));
      const layouts = captureLayouts(seal, n, dataModuli, keyModuli, (s) => {
        const kg = s.track(seal.KeyGenerator(context));
        const secretKey = s.track(kg.secretKey());
        const pk = s.track(kg.createPublicKey());
        const encryptor = s.track(seal.Encryptor(context, pk, secretKey));
        const plain = s.track(encoder.encode(Uint32Array.from([1])) as PlainText);
        return { encryptor, secretKey, plain };
      });
      return new BfvContext({ params, plainModulus, dataModulus, seal, context, encoder, evaluator, owned: [encoder], ...layouts });
    } catch (err) {
      owned.dispose();
      throw err;
    }
  }
}
