/**
 * From a source's rows to encoded rows ready to score — the one place where scoring uses src/data,
 * so the batch command and the service encode exactly as training did: the schema compiled into
 * per-column encoders (src/data/columns.ts) over the source's cells (src/data/cells.ts: byte ranges
 * of the CSV buffer, or typed values of a request).
 *
 * What scoring adds on top of the training encoder (src/data/builder.ts):
 * - The label column may be absent (customers to score have no outcome yet); when present it is
 *   ignored.
 * - Consent and withdrawal are applied first: a row without consent, or whose id is on the
 *   withdrawn list, is counted and dropped before any other cell is looked at — it is never
 *   encoded and never scored.
 * - Strict mode: every bad row is an error naming file, line, column and value, a category outside
 *   the declared vocabulary is an error (not the "<other>" bucket), and so is a number outside its
 *   declared range (not clipped): the model never saw such values.
 * - Rows are handed out in bounded batches, each with the few cell texts the output needs (id,
 *   reason texts, value column), so memory does not grow with the file.
 */
import { FedmarkError } from '../errors.ts';
import { allowedBadRows, checkLimit, describeLimit, formatIssueAt } from '../data/bad-rows.ts';
import type { RowLocator } from '../data/builder.ts';
import { ByteCells, type Cells } from '../data/cells.ts';
import { FLAG_CLIPPED, FLAG_IMPUTED, TruthValues, compileColumns, type CompiledColumn } from '../data/columns.ts';
import { CsvFileReader, countLines, decodeFields, fieldCountIssue, matchHeader } from '../data/csv.ts';
import type { RecordSink } from '../data/csv-tokenizer.ts';
import { DEFAULT_MAX_BAD_ROWS, type BadRowLimit, type RowIssue } from '../data/dataset.ts';
import { featureCount, isTypedColumn, type DatasetSchema } from '../data/schema.ts';

export type { RowIssue } from '../data/dataset.ts';

export interface ScoringEncoderOptions {
  strict: boolean;
  withdrawn?: ReadonlySet<string>;
  /** Names the source and its rows in messages ("data.csv:12", "customer 3"). */
  where: RowLocator;
  /** Non-strict runs fail above this many bad rows (default: as loading, 1 % of the rows). */
  maxBadRows?: BadRowLimit;
  /** How many bad rows to keep for the summary (all are counted). Default 20. */
  maxReportedBadRows?: number;
}

export type RowOutcome = 'scored' | 'no-consent' | 'withdrawn' | 'rejected';

/** The schema with every categorical column refusing unknown values (strict scoring). */
function strictSchema(schema: DatasetSchema): DatasetSchema {
  return {
    ...schema,
    columns: schema.columns.map((c) => (isTypedColumn(c) && c.type === 'categorical' ? { ...c, unknown: 'error' as const } : c)),
  };
}

/**
 * Consent, withdrawal, the bad-row policy and the encoding of one row at a time, over any Cells.
 * Counts what it saw; `finish()` applies the bad-row limit to the whole source.
 */
export class ScoringEncoder {
  readonly d: number;
  readonly idIndex: number;
  /** Sensitive (fairness) columns: name and group names; a row's group codes go to `row()`'s `groups`. */
  readonly sensitive: { name: string; groups: string[] }[];
  readonly counts = { read: 0, noConsent: 0, withdrawn: 0, rejected: 0 };
  readonly clipped: Record<string, number>;
  readonly rejectedExamples: RowIssue[] = [];
  /** Id of the row `row()` looked at last ('' without an id column). */
  lastId = '';

  private readonly cols: CompiledColumn[];
  private readonly sensitiveCols: CompiledColumn[];
  private readonly numericCols: CompiledColumn[];
  private readonly consentIndex: number;
  private readonly consent: TruthValues | null;
  private readonly idName: string;
  private readonly flags: Uint8Array;
  private readonly vector: Float32Array;
  private readonly limit: BadRowLimit;
  private readonly maxReported: number;
  private expectedRows = Infinity;

  constructor(
    readonly schema: DatasetSchema,
    private readonly opts: ScoringEncoderOptions,
  ) {
    this.cols = compileColumns(opts.strict ? strictSchema(schema) : schema);
    this.d = featureCount(schema);
    this.idIndex = schema.columns.findIndex((c) => c.role === 'id');
    this.idName = this.idIndex >= 0 ? schema.columns[this.idIndex].name : '';
    this.consentIndex = schema.columns.findIndex((c) => c.role === 'consent');
    const consent = schema.columns[this.consentIndex];
    this.consent = consent?.role === 'consent' ? new TruthValues(consent.granted, []) : null;
    if (opts.withdrawn && opts.withdrawn.size > 0 && this.idIndex < 0) {
      throw new FedmarkError('DATA_NO_ID_COLUMN', `schema "${schema.name}" has no id column, so the withdrawn-consent list cannot be applied`);
    }
    this.sensitiveCols = this.cols.filter((c) => c.groups !== null);
    this.sensitive = this.sensitiveCols.map((c) => ({ name: c.name, groups: c.groups! }));
    this.numericCols = this.cols.filter((c) => c.numeric);
    this.clipped = Object.fromEntries(this.numericCols.map((c) => [c.name, 0]));
    this.flags = new Uint8Array(schema.columns.length);
    this.vector = new Float32Array(this.d);
    this.limit = checkLimit(opts.maxBadRows ?? DEFAULT_MAX_BAD_ROWS);
    this.maxReported = opts.maxReportedBadRows ?? 20;
  }

  /** An upper bound on the rows still to come, when the source knows one (an early bad-row failure). */
  /** Rows the file holds in all, once `expect` was told (Infinity before). */
  get rowsExpected(): number {
    return this.expectedRows;
  }

  expect(rows: number): void {
    this.expectedRows = this.counts.read + rows;
  }

  private bad(issue: RowIssue): 'rejected' {
    if (this.opts.strict) {
      throw new FedmarkError('DATA_BAD_ROW', formatIssueAt(this.opts.where.at(issue.line), issue), { ...issue, file: this.opts.where.name });
    }
    this.counts.rejected++;
    if (this.rejectedExamples.length < this.maxReported) this.rejectedExamples.push(issue);
    // Fail as soon as the outcome is certain, not after reading ten million rows.
    if (this.counts.rejected > allowedBadRows(this.limit, this.expectedRows)) this.tooManyBadRows(this.expectedRows);
    return 'rejected';
  }

  /** A row whose cells could not be mapped (wrong field count). */
  structural(issue: RowIssue): void {
    this.counts.read++;
    this.bad(issue);
  }

  /**
   * One row: consent and withdrawal first, then the encoded vector into `X` at `offset` and the
   * row's sensitive group codes into `groups[s][slot]`. Nothing is written unless the row is scored.
   */
  row(cells: Cells, line: number, X: Float32Array, offset: number, groups: Uint16Array[], slot: number): RowOutcome {
    this.counts.read++;
    if (this.consent && this.consent.of(cells, this.consentIndex) !== 1) {
      this.counts.noConsent++;
      return 'no-consent';
    }
    if (this.idIndex >= 0) {
      const id = cells.text(this.idIndex);
      this.lastId = id;
      if (this.opts.withdrawn?.has(id)) {
        this.counts.withdrawn++;
        return 'withdrawn';
      }
      if (id === '') return this.bad({ line, column: this.idName, value: '', message: 'blank id' });
    }
    const { cols, flags, vector: row } = this;
    flags.fill(0);
    for (let c = 0; c < cols.length; c++) {
      const col = cols[c];
      const problem = col.encode(cells, row, flags);
      if (problem !== null) return this.bad({ line, column: col.name, value: cells.text(col.index), message: problem });
      if (this.opts.strict && (flags[col.index] & (FLAG_CLIPPED | FLAG_IMPUTED)) === FLAG_CLIPPED) {
        const c0 = this.schema.columns[col.index];
        const range = c0 && 'min' in c0 ? `[${c0.min}, ${c0.max}]` : 'its declared range';
        return this.bad({ line, column: col.name, value: cells.text(col.index), message: `outside the declared range ${range}` });
      }
    }
    X.set(row, offset);
    for (const col of this.numericCols) if (flags[col.index] & FLAG_CLIPPED) this.clipped[col.name]++;
    for (let s = 0; s < this.sensitiveCols.length; s++) groups[s][slot] = this.sensitiveCols[s].group;
    return 'scored';
  }

  private tooManyBadRows(rows: number): never {
    const { rejected, read } = this.counts;
    const shown = this.rejectedExamples.slice(0, 5).map((b) => `  ${formatIssueAt(this.opts.where.at(b.line), b)}`);
    const share = read > 0 ? ` (${+((100 * rejected) / read).toPrecision(3)}% of ${read} rows read${rows > read ? ' so far' : ''})` : '';
    throw new FedmarkError(
      'DATA_TOO_MANY_BAD_ROWS',
      `${this.opts.where.name}: ${rejected} bad row${rejected === 1 ? '' : 's'}${share}, more than the limit of ${describeLimit(this.limit)} (--max-bad-rows); first ones:\n${shown.join('\n')}`,
      { file: this.opts.where.name, badRowCount: rejected, rowsRead: read },
    );
  }

  /** The bad-row limit over every row read. */
  finish(): void {
    if (this.counts.rejected > allowedBadRows(this.limit, this.counts.read)) this.tooManyBadRows(this.counts.read);
  }
}

/**
 * A batch of scored rows: their encoded features, file lines, ids, sensitive group codes, and the
 * trimmed text of any of their cells (`text(i, column)`, schema column index) for the output.
 */
export interface ScoringBatch {
  n: number;
  /** Row-major, at least n × d (use `subarray(0, n * d)`). */
  readonly X: Float32Array;
  readonly lines: Int32Array;
  /** Per row, its id ('' without an id column). */
  readonly ids: string[];
  /** Per sensitive column (ScoringEncoder.sensitive order): each row's group code. */
  readonly groups: Uint16Array[];
  text(i: number, column: number): string;
  /** A copy of the batch that stays valid after `onBatch` returns (the reader reuses its buffers for the next batch). */
  detach(): ScoringBatch;
}

export const SCORING_BATCH_ROWS = 4096;

/**
 * Streams a CSV file through `encoder` in batches of scored rows, calling `onBatch` (synchronously,
 * inside the read) whenever a batch is full and once at the end. Every declared column must be in
 * the header except the label, which may be missing; undeclared columns are refused (matchHeader).
 * The cells a batch's rows keep are copied out of the read buffer (bytes, not strings), so the
 * output can quote them after the buffer moved on. `between`, when given, is awaited after each read
 * of the file (a pipelined caller consumes finished batches there, bounding what is in flight).
 */
export async function readScoringBatches(
  path: string,
  encoder: ScoringEncoder,
  onBatch: (batch: ScoringBatch) => void,
  onProgress?: (bytesRead: number, totalBytes: number) => void,
  between?: () => Promise<void>,
): Promise<void> {
  const { schema } = encoder;
  const labelIndex = schema.columns.findIndex((c) => c.role === 'label');
  const label = schema.columns[labelIndex];
  encoder.expect(await countLines(path));
  const reader = await CsvFileReader.open(path, schema.delimiter ?? ',');
  const capacity = SCORING_BATCH_ROWS;
  const X = new Float32Array(capacity * encoder.d);
  const lines = new Int32Array(capacity);
  const ids = new Array<string>(capacity).fill('');
  const groups = encoder.sensitive.map(() => new Uint16Array(capacity));
  let map: Int32Array | null = null;
  let width = 0;
  // Kept cells: each scored row's record bytes, and its field ranges relative to the arena.
  let arena = Buffer.allocUnsafe(1 << 20);
  let used = 0;
  let starts = new Int32Array(0);
  let ends = new Int32Array(0);
  let cells: ByteCells | null = null;
  const batch: ScoringBatch = {
    n: 0,
    X,
    lines,
    ids,
    groups,
    text: (i, column) => {
      const f = i * width + map![column];
      return arena.toString('utf8', starts[f], ends[f]).trim();
    },
    detach: () => detached(batch, encoder.d, width, map!, arena.subarray(0, used), starts, ends),
  };
  const flush = (): void => {
    if (batch.n > 0) onBatch(batch);
    batch.n = 0;
    used = 0;
  };
  const sink: RecordSink = (buf, fs, fe, count, line) => {
    if (!map) {
      const header = decodeFields(buf, fs, fe, count);
      const hasLabel = header.some((f) => f.trim() === label.name);
      const headerSchema = hasLabel ? schema : { ...schema, columns: schema.columns.filter((_, i) => i !== labelIndex) };
      const m = matchHeader(header, headerSchema, path);
      map = new Int32Array(schema.columns.length);
      let k = 0;
      // A missing label maps to field 0: the encoder never reads the label cell.
      for (let i = 0; i < schema.columns.length; i++) map[i] = hasLabel || i !== labelIndex ? m[k++] : 0;
      width = count;
      starts = new Int32Array(capacity * width);
      ends = new Int32Array(capacity * width);
      cells = new ByteCells(map);
      return;
    }
    if (count !== width) {
      encoder.structural(fieldCountIssue(line, count, width, map, schema, () => buf.toString('utf8', fs[width], fe[width])));
      return;
    }
    cells!.set(buf, fs, fe);
    const i = batch.n;
    if (encoder.row(cells!, line, X, i * encoder.d, groups, i) !== 'scored') return;
    lines[i] = line;
    ids[i] = encoder.lastId;
    const from = fs[0];
    const bytes = fe[count - 1] - from;
    if (used + bytes > arena.length) {
      const bigger = Buffer.allocUnsafe(Math.max(arena.length * 2, used + bytes));
      arena.copy(bigger, 0, 0, used);
      arena = bigger;
    }
    buf.copy(arena, used, from, from + bytes);
    const shift = used - from;
    for (let k = 0, o = i * width; k < width; k++, o++) {
      starts[o] = fs[k] + shift;
      ends[o] = fe[k] + shift;
    }
    used += bytes;
    batch.n = i + 1;
    if (batch.n === capacity) flush();
  };
  try {
    while (await reader.next(sink)) {
      onProgress?.(reader.bytesRead, reader.size);
      await between?.();
    }
  } finally {
    await reader.close();
  }
  if (!map) throw new FedmarkError('DATA_EMPTY_FILE', `${path}: no header row`);
  flush();
  onProgress?.(reader.bytesRead, reader.size);
  encoder.finish();
}

/** A standalone copy of a batch's rows: features, lines, ids, groups and the kept cell bytes. */
function detached(b: ScoringBatch, d: number, width: number, map: Int32Array, arena: Buffer, starts: Int32Array, ends: Int32Array): ScoringBatch {
  const n = b.n;
  const bytes = Buffer.from(arena);
  const s = starts.slice(0, n * width);
  const e = ends.slice(0, n * width);
  const copy: ScoringBatch = {
    n,
    X: b.X.slice(0, n * d),
    lines: b.lines.slice(0, n),
    ids: b.ids.slice(0, n),
    groups: b.groups.map((g) => g.slice(0, n)),
    text: (i, column) => {
      const f = i * width + map[column];
      return bytes.toString('utf8', s[f], e[f]).trim();
    },
    detach: () => copy,
  };
  return copy;
}
