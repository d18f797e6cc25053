/**
 * A party's rows as a vertical job sees them: its own encoded columns of the PSI-aligned customers
 * (row i is the i-th customer of the common order at every party), and the hold-out split every party
 * draws identically from the job's seed. Sections of messages are encoded and checked here too.
 */
import { FedmarkError } from '../../errors.ts';
import { createRng, deriveSeed, permutation } from '../../util/rng.ts';
import type { FeatureLayout } from '../../trees/layout.ts';

export interface PartyRows {
  layout: FeatureLayout;
  /** Row-major aligned rows × layout.d. */
  X: Float32Array;
  n: number;
}

export interface DataSplit {
  /** Aligned row indices, ascending. */
  train: Int32Array;
  test: Int32Array;
}

/** The same split at every party: a seeded permutation of the aligned rows, the first share held out. */
export function alignedSplit(n: number, testFraction: number, seed: number): DataSplit {
  if (!(Number.isInteger(n) && n >= 2)) throw new FedmarkError('VERTICAL_BAD_DATA', `a vertical job needs at least 2 aligned rows, got ${n}`);
  const perm = permutation(n, createRng(deriveSeed(seed, 'vertical-split')));
  const k = Math.round(n * testFraction);
  if (n - k < 1) throw new FedmarkError('VERTICAL_BAD_DATA', `testFraction ${testFraction} leaves no training row of ${n}`);
  const test = Int32Array.from(perm.subarray(0, k)).sort();
  const train = Int32Array.from(perm.subarray(k)).sort();
  return { train, test };
}

export const NO_NODE = 0xffff;

export function u16Bytes(a: Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function i32Bytes(a: Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function section(sections: Map<string, Uint8Array>, name: string, what: string): Uint8Array {
  const s = sections.get(name);
  if (!s) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: section "${name}" is missing`);
  return s;
}

export function readU16(sections: Map<string, Uint8Array>, name: string, what: string, count?: number): Uint16Array {
  const s = section(sections, name, what);
  if (s.length % 2 !== 0 || (count !== undefined && s.length !== 2 * count))
    throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: section "${name}" has ${s.length} bytes${count !== undefined ? `, expected ${2 * count}` : ''}`);
  return new Uint16Array(s.slice().buffer);
}

export function readI32(sections: Map<string, Uint8Array>, name: string, what: string, count?: number): Int32Array {
  const s = section(sections, name, what);
  if (s.length % 4 !== 0 || (count !== undefined && s.length !== 4 * count))
    throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: section "${name}" has ${s.length} bytes${count !== undefined ? `, expected ${4 * count}` : ''}`);
  return new Int32Array(s.slice().buffer);
}

export function readBytes(sections: Map<string, Uint8Array>, name: string, what: string, length?: number): Uint8Array {
  const s = section(sections, name, what);
  if (length !== undefined && s.length !== length)
    throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: section "${name}" has ${s.length} bytes, expected ${length}`);
  return s;
}

export function readJson<T>(sections: Map<string, Uint8Array>, name: string, what: string): T {
  try {
    return JSON.parse(Buffer.from(section(sections, name, what)).toString('utf8')) as T;
  } catch (err) {
    if (err instanceof FedmarkError) throw err;
    throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: section "${name}" is not JSON`);
  }
}

export function jsonBytes(v: unknown): Uint8Array {
  return new Uint8Array(Buffer.from(JSON.stringify(v), 'utf8'));
}

/** Bit sets over rows, one after the other (each ⌈rows/8⌉ bytes). */
export function bitmapBytes(rows: number): number {
  return Math.ceil(rows / 8);
}

export function setBit(bits: Uint8Array, at: number, i: number): void {
  bits[at + (i >> 3)] |= 1 << (i & 7);
}

export function getBit(bits: Uint8Array, at: number, i: number): boolean {
  return (bits[at + (i >> 3)] & (1 << (i & 7))) !== 0;
}
