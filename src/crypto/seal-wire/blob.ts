/**
 * The fedmark ciphertext blob (CKKS and BFV alike): a checksummed, parameter-bound container of
 * packed ciphertexts, and its validation — all of it before SEAL sees a byte.
 */
import { createHash } from 'node:crypto';
import type { CipherText } from 'node-seal/implementation/cipher-text.js';
import { FedmarkError } from '../../errors.ts';
import { loadCiphertext, WIRE_FORMATS, type SealWireContext } from './context.ts';
import { equalBytes, type Layout } from './wire-coding.ts';

/**
 * Blob layout (all integers little-endian):
 *   0  4  magic: "FMHE" (CKKS) or "FMBV" (BFV)
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

export interface ParsedBlob extends BlobInfo {
  layout: Layout;
  entries: Uint8Array[];
}

export function writeBlob(ctx: SealWireContext, kind: BlobKind, summands: number, packed: Uint8Array[]): Uint8Array {
  const total = BLOB_HEADER + packed.reduce((a, p) => a + 4 + p.length, 0) + BLOB_TRAILER;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(ctx.wire.blobMagic, 0);
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
export function parseBlob(ctx: SealWireContext, blob: Uint8Array, expectedCount?: number): ParsedBlob {
  ctx.assertLive();
  if (!(blob instanceof Uint8Array)) throw bad('ciphertext blob must be a Uint8Array');
  if (blob.length < BLOB_HEADER + BLOB_TRAILER) throw bad(`ciphertext blob truncated: ${blob.length} bytes`);
  const magic = blob.subarray(0, 4);
  if (!equalBytes(magic, ctx.wire.blobMagic)) {
    const other = WIRE_FORMATS.find((w) => equalBytes(magic, w.blobMagic));
    if (other) {
      throw new FedmarkError('HE_PARAMS_MISMATCH', `this is a fedmark ${other.label} ciphertext blob, expected ${ctx.wire.label}`);
    }
    throw bad(`not a fedmark ${ctx.wire.label} blob (bad magic)`);
  }
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
export function loadAll(ctx: SealWireContext, parsed: ParsedBlob): CipherText[] {
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
export function inspectBlob(ctx: SealWireContext, blob: Uint8Array, expectedCount?: number): BlobInfo {
  const parsed = parseBlob(ctx, blob, expectedCount);
  for (const entry of parsed.entries) loadCiphertext(ctx, parsed.layout, entry).delete();
  const { kind, summands, count, sealVersion, paramsId } = parsed;
  return { kind, summands, count, sealVersion, paramsId };
}

/** The exact size of one partner's fresh (seeded) blob of `count` ciphertexts: what a server may accept before reading it. */
export function freshBlobBytes(ctx: SealWireContext, count: number): number {
  return BLOB_HEADER + count * (4 + ctx.seeded.packedLength) + BLOB_TRAILER;
}

/** Number of ciphertexts needed for a vector of this length. */
export function ciphertextCount(ctx: SealWireContext, length: number): number {
  return Math.ceil(length / ctx.slotCount);
}
