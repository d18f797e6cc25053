/**
 * Byte-level RFC 4180 tokenizer over Buffers: quoted fields, doubled quotes, CRLF / LF / CR line ends
 * (detected from the first one, like csv-parse), a UTF-8 BOM, and newlines inside quoted fields. It
 * replaced csv-parse because parsing was the measured bottleneck of loading (benchmarks/data): it hands
 * out field byte ranges instead of strings, so numeric and vocabulary cells are checked without
 * creating a string per cell.
 *
 * Records are found in the bytes `[from, to)` of a buffer; a record cut off by the end of a chunk is
 * left for the next call (the reader moves it to the front of its buffer), so nothing is ever
 * re-tokenized after it was handed out. Line numbers are the line each record starts on, counting
 * newlines inside quoted fields.
 */
import { FedmarkError } from '../errors.ts';

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/** Guards memory: with an unclosed quote the tokenizer would otherwise buffer the rest of the file. */
export const MAX_RECORD_BYTES = 1 << 20;

/** Receives one complete record: fields are `buf[starts[k], ends[k])`, k < count, quotes already removed. */
export type RecordSink = (buf: Buffer, starts: Int32Array, ends: Int32Array, count: number, line: number) => void;

const enum Mode {
  Unknown,
  /** LF or CRLF ends a record; a lone CR is data. */
  Lf,
  /** CR (or CRLF, or LF) ends a record. */
  Cr,
}

/** Whether a byte is whitespace that String.prototype.trim removes (the ASCII part of it). */
export function isAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

export class CsvTokenizer {
  /** Line the next record starts on. */
  line = 1;
  private mode = Mode.Unknown;
  private starts = new Int32Array(64);
  private ends = new Int32Array(64);
  private escaped = new Uint8Array(64);

  constructor(
    private readonly delimiter: number,
    private readonly file: string,
    /** Appended to malformed-CSV errors on line 1 (e.g. a delimiter hint). */
    private readonly headerHint: () => string = () => '',
  ) {}

  /**
   * Tokenizes the records of `buf[from, to)`, calling `sink` for each non-blank one, and returns where
   * the first incomplete record starts (`to` when everything was consumed). With `final`, the end of
   * the range is the end of the file.
   */
  scan(buf: Buffer, from: number, to: number, final: boolean, sink: RecordSink): number {
    let p = from;
    while (p < to) {
      const next = this.record(buf, p, to, final, sink);
      if (next < 0) {
        if (to - p > MAX_RECORD_BYTES) this.fail(this.line, this.lastInQuote ? 'unclosed' : 'long');
        return p;
      }
      p = next;
    }
    return p;
  }

  private lastInQuote = false;
  private recordStart = 0;

  /** One record starting at p: returns the position after it, or −1 when it is not complete in the range. */
  private record(buf: Buffer, p: number, to: number, final: boolean, sink: RecordSink): number {
    const delim = this.delimiter;
    const line = this.line;
    this.recordStart = p;
    let newlines = 0;
    let k = 0;
    for (;;) {
      if (k === this.starts.length) this.growFields();
      if (p < to && buf[p] === QUOTE) {
        let q = p + 1;
        let escapes = 0;
        for (;;) {
          while (q < to) {
            const c = buf[q];
            if (c === QUOTE) break;
            if (c === LF) {
              if (this.mode !== Mode.Cr || q === 0 || buf[q - 1] !== CR) newlines++;
            } else if (c === CR && this.mode === Mode.Cr) newlines++;
            q++;
          }
          if (q >= to) {
            if (final) this.fail(line, 'unclosed');
            this.lastInQuote = true;
            return -1;
          }
          if (q + 1 >= to && !final) {
            this.lastInQuote = true;
            return -1; // a quote at the end of the chunk: closing or the first half of ""
          }
          if (q + 1 < to && buf[q + 1] === QUOTE) {
            escapes = 1;
            q += 2;
            continue;
          }
          break;
        }
        this.starts[k] = p + 1;
        this.ends[k] = q;
        this.escaped[k] = escapes;
        k++;
        p = q + 1;
        if (p >= to) {
          if (!final) return this.incomplete();
          return this.emit(buf, k, line, newlines, p, sink);
        }
        const c = buf[p];
        if (c === delim) {
          p++;
          continue;
        }
        const end = this.lineEnd(buf, p, to, final);
        if (end === -1) return this.incomplete();
        if (end === -2) {
          this.fail(line, 'malformed', `field ${k} is quoted, but its closing quote is followed by "${printable(c)}" instead of "${String.fromCharCode(delim)}" or a line end`);
        }
        return this.emit(buf, k, line, newlines, end, sink);
      }
      const s = p;
      let end = 0;
      while (p < to) {
        const c = buf[p];
        if (c === delim || c === LF || c === QUOTE) break;
        if (c === CR) {
          end = this.lineEnd(buf, p, to, final);
          if (end !== -2) break; // a line end, or undecidable at the end of the chunk
        }
        p++;
      }
      if (p >= to) {
        if (!final) return this.incomplete();
        this.starts[k] = s;
        this.ends[k] = p;
        this.escaped[k] = 0;
        return this.emit(buf, k + 1, line, newlines, p, sink);
      }
      const c = buf[p];
      if (c === QUOTE) {
        this.fail(line, 'malformed', `a quote inside unquoted field ${k + 1} (quote the whole field and double the quotes inside it)`);
      }
      this.starts[k] = s;
      this.ends[k] = p;
      this.escaped[k] = 0;
      k++;
      if (c === delim) {
        p++;
        continue;
      }
      if (c === LF) end = this.lineEnd(buf, p, to, final);
      if (end === -1) return this.incomplete();
      return this.emit(buf, k, line, newlines, end, sink);
    }
  }

  private incomplete(): number {
    this.lastInQuote = false;
    return -1;
  }

  /**
   * At a CR or LF (or anything else) at p: the position after the line end, −1 when the chunk ends
   * before that can be told, −2 when p is not a line end (a lone CR in LF mode is data). Detects the
   * file's line-end mode from the first one.
   */
  private lineEnd(buf: Buffer, p: number, to: number, final: boolean): number {
    const c = buf[p];
    if (c === LF) {
      if (this.mode === Mode.Unknown) this.mode = Mode.Lf;
      return p + 1;
    }
    if (c !== CR) return -2;
    if (p + 1 >= to) {
      if (!final) return -1;
    } else if (buf[p + 1] === LF) {
      if (this.mode === Mode.Unknown) this.mode = Mode.Lf;
      return p + 2;
    }
    if (this.mode === Mode.Unknown) this.mode = Mode.Cr;
    return this.mode === Mode.Cr ? p + 1 : -2;
  }

  private emit(buf: Buffer, count: number, line: number, newlines: number, next: number, sink: RecordSink): number {
    if (next - this.recordStart > MAX_RECORD_BYTES) this.fail(line, 'long');
    this.line = line + 1 + newlines;
    for (let k = 0; k < count; k++) if (this.escaped[k]) this.ends[k] = unescapeInPlace(buf, this.starts[k], this.ends[k]);
    if (!(count === 1 && isBlank(buf, this.starts[0], this.ends[0]))) sink(buf, this.starts, this.ends, count, line);
    return next;
  }

  private growFields(): void {
    const n = this.starts.length * 2;
    const grow = <T extends Int32Array | Uint8Array>(a: T, b: T): T => (b.set(a), b);
    this.starts = grow(this.starts, new Int32Array(n));
    this.ends = grow(this.ends, new Int32Array(n));
    this.escaped = grow(this.escaped, new Uint8Array(n));
  }

  /** Throws the file-level error for a record starting at `line`. */
  fail(line: number, kind: 'unclosed' | 'long' | 'malformed', detail = ''): never {
    const at = `${this.file}:${line}`;
    if (kind === 'unclosed') {
      throw new FedmarkError(
        'DATA_CSV_MALFORMED',
        `${at}: unclosed quote: the record starting at line ${line} opens a quoted field that is never closed`,
        { line },
      );
    }
    if (kind === 'long') {
      throw new FedmarkError('DATA_CSV_MALFORMED', `${at}: the record starting at line ${line} is longer than ${MAX_RECORD_BYTES} bytes`, { line });
    }
    throw new FedmarkError(
      'DATA_CSV_MALFORMED',
      `${at}: malformed CSV in the record starting at line ${line}: ${detail}${line === 1 ? this.headerHint() : ''}`,
      { line },
    );
  }
}

function printable(c: number): string {
  return c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
}

/** Removes one quote of every doubled pair in `buf[s, e)`, in place; returns the new end. */
function unescapeInPlace(buf: Buffer, s: number, e: number): number {
  let w = s;
  for (let r = s; r < e; r++, w++) {
    buf[w] = buf[r];
    if (buf[r] === QUOTE) r++;
  }
  return w;
}

function isBlank(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) {
    const c = buf[i];
    if (c >= 0x80) return buf.toString('utf8', s, e).trim() === '';
    if (!isAsciiSpace(c)) return false;
  }
  return true;
}
