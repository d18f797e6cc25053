/**
 * Streaming CSV reading (the byte-level tokenizer in csv-tokenizer.ts: quotes, CRLF, BOM) with the
 * header checked against the schema. This layer only deals with structure: it yields each data row's
 * cells in schema column order with its line number, or a row issue (wrong field count). Value checks
 * and the skip/strict policy live in the dataset builder, so rows from a CSV, a Parquet file, a
 * database or memory go through the same path.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { FedmarkError } from '../errors.ts';
import { CsvTokenizer, MAX_RECORD_BYTES, type RecordSink } from './csv-tokenizer.ts';
import type { RowIssue } from './dataset.ts';
import type { DatasetSchema } from './schema.ts';
export type { RowIssue } from './dataset.ts';

export type CsvRow = { ok: true; line: number; values: string[] } | { ok: false; issue: RowIssue };

export interface CsvRecord {
  /** Line where the record starts (records with quoted newlines span several lines). */
  line: number;
  fields: string[];
}

const SNIFF_BYTES = 64 * 1024;
const CHUNK_BYTES = 1 << 20;

export function shorten(value: string, max = 60): string {
  const printable = value.replace(/[\u0000-\u001f\u007f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return printable.length > max ? `${printable.slice(0, max)}…` : printable;
}

export function formatIssue(file: string, issue: RowIssue): string {
  return `${file}:${issue.line}: column "${issue.column}": ${issue.message} (value "${shorten(issue.value)}")`;
}

export function delimiterHint(firstLine: string, delimiter: ',' | ';'): string {
  const other = delimiter === ',' ? ';' : ',';
  const count = (d: string) => firstLine.split(d).length - 1;
  return count(other) > 0 && count(delimiter) === 0
    ? ` (the header looks "${other}"-separated but the declared delimiter is "${delimiter}")`
    : '';
}

async function openDataFile(path: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FedmarkError(
      code === 'ENOENT' ? 'DATA_FILE_NOT_FOUND' : 'DATA_FILE_UNREADABLE',
      `${path}: cannot open data file (${(err as Error).message})`,
    );
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new FedmarkError('DATA_FILE_UNREADABLE', `${path}: not a regular file`);
    if (stat.size === 0) throw new FedmarkError('DATA_EMPTY_FILE', `${path}: file is empty (no header row)`);
    return { handle, size: stat.size };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

function readFailure(path: string, err: unknown): FedmarkError {
  if (err instanceof FedmarkError) return err;
  return new FedmarkError('DATA_FILE_UNREADABLE', `${path}: cannot read data file (${(err as Error)?.message ?? String(err)})`);
}

/**
 * A delimited text file read chunk by chunk into one reused buffer and tokenized in place. Each
 * `next(sink)` reads one chunk and hands every record completed by it to `sink` (synchronously, with
 * byte ranges valid only during the call).
 */
export class CsvFileReader {
  /** Bytes of the file read so far. */
  bytesRead = 0;
  private buf: Buffer;
  private carry = 0;
  private done = false;
  private readonly tokenizer: CsvTokenizer;
  private firstLine = '';

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    /** File size in bytes when it was opened. */
    readonly size: number,
    readonly delimiter: ',' | ';',
    private readonly chunk: number,
  ) {
    this.buf = Buffer.allocUnsafe(2 * chunk);
    this.tokenizer = new CsvTokenizer(delimiter.charCodeAt(0), path, () => delimiterHint(this.firstLine, delimiter));
  }

  /** Opens `path`, checking it is a non-empty regular file. `chunkBytes` is for tests of chunk boundaries. */
  static async open(path: string, delimiter: ',' | ';' = ',', chunkBytes = CHUNK_BYTES): Promise<CsvFileReader> {
    const { handle, size } = await openDataFile(path);
    return new CsvFileReader(path, handle, size, delimiter, chunkBytes);
  }

  /** Reads and tokenizes the next chunk; false once the whole file has been handed out. */
  async next(sink: RecordSink): Promise<boolean> {
    if (this.done) return false;
    if (this.buf.length - this.carry < this.chunk) {
      // Only a record longer than a chunk gets here; the tokenizer stops it at MAX_RECORD_BYTES.
      const bigger = Buffer.allocUnsafe(Math.min(this.buf.length * 2, MAX_RECORD_BYTES + 2 * this.chunk));
      this.buf.copy(bigger, 0, 0, this.carry);
      this.buf = bigger;
    }
    let got: number;
    try {
      ({ bytesRead: got } = await this.handle.read(this.buf, this.carry, Math.min(this.chunk, this.buf.length - this.carry), null));
    } catch (err) {
      throw readFailure(this.path, err);
    }
    let from = 0;
    if (this.bytesRead === 0) from = this.sniff(got);
    this.bytesRead += got;
    const filled = this.carry + got;
    const final = got === 0;
    const consumed = this.tokenizer.scan(this.buf, from, filled, final, sink);
    this.carry = filled - consumed;
    if (this.carry > 0) this.buf.copyWithin(0, consumed, filled);
    if (final) this.done = true;
    return !final;
  }

  /** Checks the first chunk is text and notes its first line (for delimiter hints); skips a BOM. */
  private sniff(got: number): number {
    const head = this.buf.subarray(0, Math.min(got, SNIFF_BYTES));
    // Text CSV never contains NUL; without this check a binary file surfaces as a confusing header error.
    const nul = head.indexOf(0);
    if (nul >= 0) {
      throw new FedmarkError('DATA_BINARY_FILE', `${this.path}: file looks binary (NUL byte at offset ${nul}), not a CSV text file`);
    }
    const text = head.toString('utf8');
    const eol = text.search(/\r?\n/);
    this.firstLine = eol >= 0 ? text.slice(0, eol) : text;
    return got >= 3 && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  }

  async close(): Promise<void> {
    this.done = true;
    await this.handle.close().catch(() => undefined);
  }
}

/**
 * Upper bound on the records of a text file: its line feeds plus one. One fast pass over the bytes
 * (memchr) lets the loader size its arrays once instead of growing and copying them.
 */
export async function countLines(path: string): Promise<number> {
  const { handle } = await openDataFile(path);
  const buf = Buffer.allocUnsafe(4 * CHUNK_BYTES);
  let lines = 1;
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return lines;
      for (let i = buf.indexOf(10); i >= 0 && i < bytesRead; i = buf.indexOf(10, i + 1)) lines++;
    }
  } catch (err) {
    throw readFailure(path, err);
  } finally {
    await handle.close();
  }
}

export const decodeFields = (buf: Buffer, starts: Int32Array, ends: Int32Array, count: number): string[] => {
  const fields = new Array<string>(count);
  for (let k = 0; k < count; k++) fields[k] = buf.toString('utf8', starts[k], ends[k]);
  return fields;
};

/**
 * Every record of a delimited file, header included, with the line each starts on. Blank lines are
 * skipped (they still count for line numbers). Malformed CSV becomes a FedmarkError with the line.
 */
export async function* readCsvRecords(path: string, delimiter: ',' | ';' = ','): AsyncGenerator<CsvRecord> {
  for await (const batch of readCsvBatches(path, delimiter)) yield* batch;
}

/** Like readCsvRecords, one batch per chunk read (one await per chunk instead of per record). */
export async function* readCsvBatches(path: string, delimiter: ',' | ';' = ','): AsyncGenerator<CsvRecord[]> {
  const reader = await CsvFileReader.open(path, delimiter);
  let batch: CsvRecord[] = [];
  const sink: RecordSink = (buf, starts, ends, count, line) => batch.push({ line, fields: decodeFields(buf, starts, ends, count) });
  try {
    for (;;) {
      const more = await reader.next(sink);
      if (batch.length) {
        const out = batch;
        batch = [];
        yield out;
      }
      if (!more) return;
    }
  } finally {
    await reader.close();
  }
}

/**
 * Maps header positions to schema columns. Every CSV column must be declared and every declared column
 * present (order free); otherwise the error names each offending column.
 */
export function matchHeader(header: string[], schema: DatasetSchema, file = 'data'): Int32Array {
  return matchColumns(header, schema, `${file}:1`, 'header');
}

/**
 * Maps a source's column names (a CSV header, a Parquet file's or a query's columns) to schema
 * columns: `map[i]` is the position of schema column i. `where` and `what` name the source in errors.
 * `allowUndeclared` is for database tables, whose other columns are simply not selected.
 */
export function matchColumns(columns: string[], schema: DatasetSchema, where: string, what: string, allowUndeclared = false): Int32Array {
  const names = columns.map((h) => h.trim());
  const seen = new Map<string, number>();
  const dup: string[] = [];
  names.forEach((n, i) => (seen.has(n) ? dup.push(n) : seen.set(n, i)));
  if (dup.length) {
    throw new FedmarkError('DATA_HEADER_MISMATCH', `${where}: ${what} repeats column(s) ${dup.map((d) => `"${d}"`).join(', ')}`);
  }
  const declared = new Set(schema.columns.map((c) => c.name));
  const undeclared = allowUndeclared ? [] : names.filter((n) => !declared.has(n));
  const missing = schema.columns.filter((c) => !seen.has(c.name));
  if (undeclared.length || missing.length) {
    const parts: string[] = [];
    if (missing.length) {
      parts.push(
        `missing declared column(s) ${missing.map((c) => `"${c.name}"${c.role === 'label' ? ' (the label column)' : ''}`).join(', ')}`,
      );
    }
    if (undeclared.length) {
      parts.push(`undeclared column(s) ${undeclared.map((n) => `"${shorten(n, 40)}"`).join(', ')} (every column must be declared; use role "ignore" to drop one)`);
    }
    const delimiter = schema.delimiter ?? ',';
    const other = delimiter === ',' ? ';' : ',';
    if (what === 'header' && names.length === 1 && names[0].includes(other)) {
      parts.push(`the header looks "${other}"-separated but schema "${schema.name}" declares delimiter "${delimiter}"`);
    }
    throw new FedmarkError('DATA_HEADER_MISMATCH', `${where}: ${what} does not match schema "${schema.name}": ${parts.join('; ')}`, {
      missing: missing.map((c) => c.name),
      undeclared,
    });
  }
  const map = new Int32Array(schema.columns.length);
  schema.columns.forEach((c, i) => (map[i] = seen.get(c.name)!));
  return map;
}

/**
 * The issue of a record with `count` fields where the header has `width`: names the first column
 * without a cell (or the first surplus field, whose text `surplus` gives) so the row can be found.
 */
export function fieldCountIssue(line: number, count: number, width: number, map: Int32Array, schema: DatasetSchema, surplus: () => string): RowIssue {
  const short = count < width;
  let column = `field ${width + 1}`;
  if (short) column = schema.columns[schema.columns.findIndex((_, i) => map[i] >= count)].name;
  return { line, column, value: short ? '' : surplus(), message: `expected ${width} fields, found ${count}` };
}

/**
 * Data rows of `path` with cells reordered into schema column order. Rows with the wrong number of
 * fields come back as issues (not thrown) so the caller can apply its skip/strict policy.
 */
export async function* readRows(path: string, schema: DatasetSchema): AsyncGenerator<CsvRow> {
  for await (const batch of readRowBatches(path, schema)) yield* batch;
}

/** readRows in batches (see readCsvBatches). */
export async function* readRowBatches(path: string, schema: DatasetSchema): AsyncGenerator<CsvRow[]> {
  let map: Int32Array | null = null;
  let width = 0;
  for await (const records of readCsvBatches(path, schema.delimiter ?? ',')) {
    const out: CsvRow[] = [];
    for (const rec of records) {
      if (!map) {
        map = matchHeader(rec.fields, schema, path);
        width = rec.fields.length;
        continue;
      }
      out.push(toRow(rec, map, width, schema));
    }
    if (out.length) yield out;
  }
  if (!map) throw new FedmarkError('DATA_EMPTY_FILE', `${path}: no header row`);
}

function toRow(rec: CsvRecord, map: Int32Array, width: number, schema: DatasetSchema): CsvRow {
  const f = rec.fields;
  if (f.length !== width) return { ok: false, issue: fieldCountIssue(rec.line, f.length, width, map, schema, () => f[width]) };
  const values = new Array<string>(map.length);
  for (let i = 0; i < map.length; i++) values[i] = f[map[i]];
  return { ok: true, line: rec.line, values };
}
