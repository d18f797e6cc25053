import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Byte-level search of files for the encodings a plaintext vector would have if it were stored or
 * logged: float64 and float32 little-endian bytes, decimal text and base64 of the float64 bytes.
 */

export interface Needle {
  /** Names the vector, the index and the encoding, so a hit says exactly what leaked. */
  label: string;
  bytes: Uint8Array;
}

export interface Hit {
  label: string;
  file: string;
  offset: number;
}

/**
 * A value is only worth searching for when finding it would mean something. Integers (histogram
 * counts, row counts, the update's weight) and near-zero values have short, common encodings that
 * appear in any file by chance, so they are left out: what remains (weighted model deltas, sums of
 * log loss and squared error, model parameters) has 52 bits of mantissa that no file holds by accident.
 */
export function isDistinctive(v: number): boolean {
  return Number.isFinite(v) && Math.abs(v) > 1e-6 && !Number.isInteger(v);
}

/** Digits after the leading zeros: how specific a decimal rendering is. */
function significantDigits(text: string): number {
  return text.replace(/^-/, '').replace('.', '').replace(/^0+/, '').replace(/e.*$/, '').length;
}

function f64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v, true);
  return b;
}

function f32Pair(a: number, b: number): Uint8Array {
  const out = new Uint8Array(8);
  const dv = new DataView(out.buffer);
  dv.setFloat32(0, a, true);
  dv.setFloat32(4, b, true);
  return out;
}

/**
 * Needles for every distinctive value of a vector:
 *  - float64 LE, one value (8 bytes: 2^-64 chance of a random match per position);
 *  - float32 LE, two consecutive values. A single 4-byte float32 would match some position of a few
 *    megabytes of uniformly random ciphertext with probability ≈ size/2^32 per value, i.e. a false
 *    alarm in roughly one run out of four for the hundreds of values scanned here; a leaked Float32Array
 *    stores neighbours next to each other, so pairs find a real leak and no random one;
 *  - decimal text: String(v), String(Math.fround(v)) and v.toFixed(6), when the rendering carries at
 *    least 5 significant digits (shorter ones, like "0.000012", could be part of any number in a log);
 *  - base64 of three consecutive float64 values, at each of the 3 byte alignments base64 can have.
 */
export function vectorNeedles(label: string, values: Float64Array): Needle[] {
  const out: Needle[] = [];
  const text = (s: string) => new TextEncoder().encode(s);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!isDistinctive(v)) continue;
    out.push({ label: `${label}[${i}]=${v} as float64`, bytes: f64(v) });
    const decimals = new Set([String(v), String(Math.fround(v)), v.toFixed(6)]);
    for (const d of decimals) if (significantDigits(d) >= 5) out.push({ label: `${label}[${i}] as text "${d}"`, bytes: text(d) });
    if (i + 1 < values.length && isDistinctive(values[i + 1])) {
      out.push({ label: `${label}[${i}..${i + 1}] as float32`, bytes: f32Pair(v, values[i + 1]) });
    }
    if (i + 2 < values.length && isDistinctive(values[i + 1]) && isDistinctive(values[i + 2])) {
      const run = new Uint8Array(24);
      for (let k = 0; k < 3; k++) run.set(f64(values[i + k]), 8 * k);
      for (let a = 0; a < 3; a++)
        out.push({ label: `${label}[${i}..${i + 2}] as base64 (alignment ${a})`, bytes: text(Buffer.from(run.subarray(a, a + 21)).toString('base64')) });
    }
  }
  return out;
}

/** Every regular file under `dir`, recursively. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    const st = statSync(path);
    if (st.isDirectory()) out.push(...listFiles(path));
    else if (st.isFile()) out.push(path);
  }
  return out;
}

/**
 * Finds every needle in every file. Needles are indexed by their first 4 bytes and the files are
 * read once each with a rolling 32-bit window, so hundreds of needles over megabytes stay fast.
 */
export function scanFiles(files: string[], needles: Needle[]): Hit[] {
  const index = new Map<number, Needle[]>();
  for (const n of needles) {
    if (n.bytes.length < 4) throw new Error(`needle ${n.label} is shorter than 4 bytes`);
    const key = ((n.bytes[0] << 24) | (n.bytes[1] << 16) | (n.bytes[2] << 8) | n.bytes[3]) >>> 0;
    const list = index.get(key);
    if (list) list.push(n);
    else index.set(key, [n]);
  }
  const hits: Hit[] = [];
  for (const file of files) {
    const data = readFileSync(file);
    let key = 0;
    for (let i = 0; i < data.length; i++) {
      key = ((key << 8) | data[i]) >>> 0;
      if (i < 3) continue;
      const list = index.get(key);
      if (!list) continue;
      const start = i - 3;
      for (const n of list) {
        if (start + n.bytes.length > data.length) continue;
        let same = true;
        for (let k = 4; k < n.bytes.length && same; k++) same = data[start + k] === n.bytes[k];
        if (same) hits.push({ label: n.label, file, offset: start });
      }
    }
  }
  return hits;
}
