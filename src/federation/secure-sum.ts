import { CkksAggregator, CkksCipher, CkksContext, freshBlobBytes, generateSecretKey, inspectBlob } from '../crypto/ckks/index.ts';
import { FedmarkError } from '../errors.ts';
import { toGridInPlace } from './release-grid.ts';
import { openSecaggScheme } from './secagg/scheme.ts';
import type { EncryptionSpec } from './manifest.ts';

/**
 * The one seam between the federation and the encryption scheme. Partners encrypt and decrypt
 * vectors; the coordinator only validates and adds blobs. With CKKS the coordinator never holds a
 * secret key, so it has no way to read what it adds.
 */
export interface VectorCipher {
  encrypt(values: Float64Array): Uint8Array;
  /** CKKS: rounded to the release grid (REAL_QUANTUM), never the raw approximate decryption. */
  decrypt(blob: Uint8Array, length: number): Float64Array;
  dispose(): void;
}

export interface VectorSum {
  /** Validates, then adds; on any error the running sum is unchanged. */
  add(blob: Uint8Array): void;
  toBytes(): Uint8Array;
  readonly count: number;
  dispose(): void;
}

export interface SecureSumScheme {
  readonly scheme: 'ckks' | 'secagg-bfv' | 'plain-insecure' | 'none';
  readonly paramsId: string;
  /** Masked aggregation only: the BFV parameters every attempt's secure-aggregation config binds (secagg/round-config.ts). */
  readonly masking?: { paramsId: string; plainModulus: number; maxSummands: number };
  /** Largest |value| one partner may encrypt so that any allowed sum decrypts (null: plaintext, no bound); part-encoding.ts scales parts to it. */
  readonly maxAbsInput: number | null;
  /** Throws FedmarkError naming the problem when the blob cannot be a vector of `length` values under this scheme. */
  inspect(blob: Uint8Array, length: number): void;
  /** The size of one partner's encryption of a vector of `length` values (a server's body limit). */
  uploadBytes(length: number): number;
  /** How many partners' vectors a published sum holds (null when the scheme cannot say). */
  summands(blob: Uint8Array, length: number): number | null;
  cipher(secretKey: Uint8Array | null): VectorCipher;
  sum(existing?: Uint8Array | null): VectorSum;
  /** Partner/owner side only. */
  generateSecretKey(): Uint8Array;
  dispose(): void;
}

export async function openSecureSum(spec: EncryptionSpec): Promise<SecureSumScheme> {
  if (spec.scheme === 'plain-insecure') return plainScheme;
  if (spec.scheme === 'none') return noAggregation;
  if (spec.scheme === 'secagg-bfv') return openSecaggScheme(spec);
  const ctx = await CkksContext.create(spec);
  const ciphertextCount = (length: number) => Math.ceil(length / ctx.slotCount);
  return {
    scheme: 'ckks',
    paramsId: ctx.paramsId,
    maxAbsInput: ctx.maxAbsInputValue,
    inspect: (blob, length) => {
      try {
        inspectBlob(ctx, blob, ciphertextCount(length));
      } catch (err) {
        if (err instanceof FedmarkError) throw err;
        // Whatever the parser tripped on, a blob it cannot read is bad input, never a server fault.
        throw new FedmarkError('HE_BAD_CIPHERTEXT', `ciphertext blob cannot be read: ${(err as Error).message}`);
      }
    },
    uploadBytes: (length) => freshBlobBytes(ctx, ciphertextCount(length)),
    summands: (blob, length) => inspectBlob(ctx, blob, ciphertextCount(length)).summands,
    cipher: (secretKey) => {
      if (!secretKey) throw new FedmarkError('HE_NO_SECRET_KEY', 'CKKS: this node holds no secret key for the job (key ceremony not completed)');
      const c = new CkksCipher(ctx, secretKey);
      // Nothing decrypted leaves this function with CKKS's full precision: its low-order bits are a
      // function of the secret key and the encryption noise (src/federation/release-grid.ts).
      return { encrypt: (v) => c.encryptVector(v), decrypt: (blob, length) => toGridInPlace(c.decryptVector(blob, length)), dispose: () => c.dispose() };
    },
    sum: (existing) => (existing ? CkksAggregator.fromBytes(ctx, existing) : new CkksAggregator(ctx)),
    generateSecretKey: () => generateSecretKey(ctx),
    dispose: () => ctx.dispose(),
  };
}

// --- plaintext: benchmarks and explicitly insecure runs only ---------------------------------------

const PLAIN_MAGIC = 0x464d504c; // "FMPL"

function plainEncode(values: Float64Array): Uint8Array {
  const out = new Uint8Array(8 + values.length * 8);
  const view = new DataView(out.buffer);
  view.setUint32(0, PLAIN_MAGIC, false);
  view.setUint32(4, values.length, false);
  for (let i = 0; i < values.length; i++) view.setFloat64(8 + i * 8, values[i], true);
  return out;
}

function plainDecode(blob: Uint8Array, length?: number): Float64Array {
  if (blob.length < 8) throw new FedmarkError('PLAIN_BAD_BLOB', `plaintext vector: ${blob.length} bytes is shorter than its header`);
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (view.getUint32(0, false) !== PLAIN_MAGIC) throw new FedmarkError('PLAIN_BAD_BLOB', 'plaintext vector: bad magic');
  const n = view.getUint32(4, false);
  if (length !== undefined && n !== length) throw new FedmarkError('PLAIN_BAD_BLOB', `plaintext vector: holds ${n} values, expected ${length}`);
  if (blob.length !== 8 + n * 8) throw new FedmarkError('PLAIN_BAD_BLOB', `plaintext vector: ${blob.length} bytes, expected ${8 + n * 8}`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = view.getFloat64(8 + i * 8, true);
    if (!Number.isFinite(out[i])) throw new FedmarkError('PLAIN_BAD_BLOB', `plaintext vector: value ${i} is not finite`);
  }
  return out;
}

const plainScheme: SecureSumScheme = {
  scheme: 'plain-insecure',
  paramsId: 'plain-insecure',
  maxAbsInput: null,
  inspect: (blob, length) => void plainDecode(blob, length),
  uploadBytes: (length) => 8 + length * 8,
  summands: () => null,
  cipher: () => ({ encrypt: plainEncode, decrypt: (blob, length) => plainDecode(blob, length), dispose: () => {} }),
  sum: (existing) => {
    let acc: Float64Array | null = existing ? plainDecode(existing) : null;
    let count = 0;
    return {
      add(blob) {
        const v = plainDecode(blob, acc?.length);
        if (!acc) acc = v;
        else for (let i = 0; i < v.length; i++) acc[i] += v[i];
        count++;
      },
      toBytes() {
        if (!acc) throw new FedmarkError('SUM_EMPTY', 'no vector has been added yet');
        return plainEncode(acc);
      },
      get count() {
        return count;
      },
      dispose() {},
    };
  },
  generateSecretKey: () => new Uint8Array(0),
  dispose: () => {},
};

// --- none: jobs whose workload sums nothing at the coordinator (vertical learning) ----------------

const nothingToSum = (): never => {
  throw new FedmarkError('NO_AGGREGATION', 'this job sums nothing at the coordinator (encryption "none"): it has no encrypted parts to read, add or decrypt');
};

const noAggregation: SecureSumScheme = {
  scheme: 'none',
  paramsId: 'none',
  maxAbsInput: null,
  uploadBytes: () => 0,
  inspect: nothingToSum,
  summands: nothingToSum,
  cipher: nothingToSum,
  sum: nothingToSum,
  generateSecretKey: nothingToSum,
  dispose: () => {},
};

/** Schemes whose partners share one HE secret key from the owner's key ceremony (CKKS; BFV under the masks). */
export function usesJobKey(scheme: SecureSumScheme['scheme']): boolean {
  return scheme === 'ckks' || scheme === 'secagg-bfv';
}
