/**
 * One row's cells, as the dataset builder sees them, whatever the source. A CSV row is byte ranges of
 * the read buffer (numbers and declared values are checked on the bytes, without a string per cell);
 * a Parquet, PostgreSQL or in-memory row is typed JavaScript values. Both give exactly the answers the
 * string rules give: cells are trimmed like String.prototype.trim, numbers follow parseNumber, and a
 * NULL is a blank cell.
 */
import { isAsciiSpace } from './csv-tokenizer.ts';

const NUMBER_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Parses a numeric cell exactly as the encoder does (trimmed; decimal or exponent notation only). */
export function parseNumber(cell: string): number | null {
  const t = cell.trim();
  if (!NUMBER_RE.test(t)) return null;
  const v = Number(t);
  return Number.isFinite(v) ? v : null;
}

/** Declared values of a column, matched against strings or against UTF-8 bytes. */
export class Vocabulary {
  readonly index: Map<string, number>;
  /** Declared values as bytes, bucketed by byte length. */
  private readonly byLength: Map<number, { bytes: Buffer; at: number }[]>;

  constructor(readonly values: readonly string[]) {
    this.index = new Map();
    this.byLength = new Map();
    values.forEach((v, at) => {
      if (this.index.has(v)) return;
      this.index.set(v, at);
      const bytes = Buffer.from(v, 'utf8');
      const list = this.byLength.get(bytes.length) ?? [];
      list.push({ bytes, at });
      this.byLength.set(bytes.length, list);
    });
  }

  /** Position of the value `buf[s, e)` (already trimmed), or −1. */
  matchBytes(buf: Buffer, s: number, e: number): number {
    const list = this.byLength.get(e - s);
    if (!list) return -1;
    outer: for (const { bytes, at } of list) {
      for (let i = 0; i < bytes.length; i++) if (buf[s + i] !== bytes[i]) continue outer;
      return at;
    }
    return -1;
  }
}

export interface Cells {
  /** Trimmed text of schema column i ('' for a NULL). */
  text(i: number): string;
  /** Whether the cell is blank (empty after trimming, or NULL). */
  blank(i: number): boolean;
  /** The cell as a number, or NaN when it is not one (see parseNumber). Call only on non-blank cells. */
  number(i: number): number;
  /** Position of the trimmed cell among the vocabulary's values, or −1. */
  lookup(i: number, vocabulary: Vocabulary): number;
  /** 1 / 0 for a native boolean cell (Parquet BOOLEAN, PostgreSQL boolean), −1 otherwise. */
  bool(i: number): number;
}

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/**
 * A decimal in `buf[s, e)` (trimmed ASCII): the value Number() gives, NaN when the bytes do not match
 * parseNumber's pattern. Fast path after Clinger (1990): a mantissa of at most 15 digits and a power of
 * ten up to 10^22 are both exact doubles, so one IEEE multiplication or division rounds correctly;
 * anything else goes through Number() on the text.
 */
function numberFromBytes(buf: Buffer, s: number, e: number): number {
  let i = s;
  let negative = false;
  if (buf[i] === 0x2b || buf[i] === 0x2d) negative = buf[i++] === 0x2d;
  let mantissa = 0;
  let significant = 0;
  let digits = 0;
  let fraction = 0;
  let c = buf[i];
  while (i < e && c >= 0x30 && c <= 0x39) {
    if (significant > 0 || c !== 0x30) {
      mantissa = mantissa * 10 + (c - 0x30);
      significant++;
    }
    digits++;
    c = buf[++i];
  }
  if (i < e && c === 0x2e) {
    c = buf[++i];
    while (i < e && c >= 0x30 && c <= 0x39) {
      if (significant > 0 || c !== 0x30) {
        mantissa = mantissa * 10 + (c - 0x30);
        significant++;
      }
      digits++;
      fraction++;
      c = buf[++i];
    }
  }
  if (digits === 0) return NaN;
  let exponent = 0;
  if (i < e && (c === 0x65 || c === 0x45)) {
    c = buf[++i];
    let expNegative = false;
    if (i < e && (c === 0x2b || c === 0x2d)) {
      expNegative = c === 0x2d;
      c = buf[++i];
    }
    let expDigits = 0;
    while (i < e && c >= 0x30 && c <= 0x39) {
      if (expDigits < 6) exponent = exponent * 10 + (c - 0x30);
      expDigits++;
      c = buf[++i];
    }
    if (expDigits === 0) return NaN;
    if (expDigits >= 6) return slowNumber(buf, s, e);
    if (expNegative) exponent = -exponent;
  }
  if (i !== e) return NaN;
  if (mantissa === 0) return negative ? -0 : 0;
  const e10 = exponent - fraction;
  if (significant > 15 || e10 < -22 || e10 > 22) return slowNumber(buf, s, e);
  const v = e10 < 0 ? mantissa / POW10[-e10] : mantissa * POW10[e10];
  return negative ? -v : v;
}

function slowNumber(buf: Buffer, s: number, e: number): number {
  const v = Number(buf.toString('latin1', s, e));
  return Number.isFinite(v) ? v : NaN;
}

/** A CSV row: byte ranges of the read buffer, positioned with `set` before each row. */
export class ByteCells implements Cells {
  private buf: Buffer = Buffer.alloc(0);
  private starts: Int32Array = new Int32Array(0);
  private ends: Int32Array = new Int32Array(0);

  /** `map[i]`: the field holding schema column i. */
  constructor(private readonly map: Int32Array) {}

  set(buf: Buffer, starts: Int32Array, ends: Int32Array): void {
    this.buf = buf;
    this.starts = starts;
    this.ends = ends;
  }

  /** End of the range `trimmed` returned last. */
  private e = 0;

  /**
   * Start of schema column i's field without its ASCII whitespace (the end goes to `this.e`), or −1
   * when a trimmed edge is non-ASCII: then the string rules decide, since trim() also strips Unicode
   * spaces.
   */
  private trimmed(i: number): number {
    const f = this.map[i];
    const buf = this.buf;
    let s = this.starts[f];
    let e = this.ends[f];
    while (s < e && isAsciiSpace(buf[s])) s++;
    while (e > s && isAsciiSpace(buf[e - 1])) e--;
    if (s < e && (buf[s] >= 0x80 || buf[e - 1] >= 0x80)) return -1;
    this.e = e;
    return s;
  }

  text(i: number): string {
    const f = this.map[i];
    return this.buf.toString('utf8', this.starts[f], this.ends[f]).trim();
  }

  blank(i: number): boolean {
    const s = this.trimmed(i);
    return s < 0 ? this.text(i) === '' : s === this.e;
  }

  number(i: number): number {
    const s = this.trimmed(i);
    if (s < 0) return parseNumber(this.text(i)) ?? NaN;
    return numberFromBytes(this.buf, s, this.e);
  }

  lookup(i: number, vocabulary: Vocabulary): number {
    const s = this.trimmed(i);
    if (s >= 0) {
      const at = vocabulary.matchBytes(this.buf, s, this.e);
      if (at >= 0 || isAscii(this.buf, s, this.e)) return at;
    }
    // Non-ASCII edges or bytes that are not valid UTF-8: let the decoded string decide.
    return vocabulary.index.get(this.text(i)) ?? -1;
  }

  bool(): number {
    return -1;
  }
}

function isAscii(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (buf[i] >= 0x80) return false;
  return true;
}

/**
 * A row of typed values (Parquet, PostgreSQL, in-memory records): `row[map[i]]` is schema column i.
 * Numbers are taken as stored; strings follow the CSV rules; booleans are native truth values.
 */
export class ValueCells implements Cells {
  private row: ArrayLike<unknown> = [];

  constructor(private readonly map: Int32Array) {}

  set(row: ArrayLike<unknown>): void {
    this.row = row;
  }

  private value(i: number): unknown {
    return this.row[this.map[i]];
  }

  text(i: number): string {
    return valueText(this.value(i));
  }

  blank(i: number): boolean {
    const v = this.value(i);
    if (v === null || v === undefined) return true;
    if (typeof v !== 'string') return false;
    // No character in (32, 0x1680) other than U+00A0 is whitespace to trim(): most cells stop here.
    const c = v.charCodeAt(0);
    return v.length === 0 || ((c <= 32 || c === 160 || c >= 0x1680) && v.trim() === '');
  }

  number(i: number): number {
    const v = this.value(i);
    if (typeof v === 'number') return Number.isFinite(v) ? v : NaN;
    if (typeof v === 'bigint') return Number(v);
    if (typeof v === 'string') return parseNumber(v) ?? NaN;
    return NaN;
  }

  lookup(i: number, vocabulary: Vocabulary): number {
    const v = this.value(i);
    if (typeof v === 'string') {
      // Declared values have no outer whitespace, so an exact hit is the trimmed hit.
      const hit = vocabulary.index.get(v);
      if (hit !== undefined) return hit;
    }
    return vocabulary.index.get(valueText(v)) ?? -1;
  }

  bool(i: number): number {
    const v = this.value(i);
    return typeof v === 'boolean' ? (v ? 1 : 0) : -1;
  }
}

/** The text a typed value stands for: numbers as JavaScript prints them, booleans as "true"/"false". */
export function valueText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v.trim();
  if (v instanceof Date) return v.toISOString();
  return String(v);
}
