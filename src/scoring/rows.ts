/**
 * From CSV records (or request records) to encoded rows ready to score — the one place where
 * scoring uses src/data (header matching, the row encoder), so the batch command and the service
 * encode exactly as training did.
 *
 * What scoring adds on top of the training encoder:
 * - The label column may be absent (customers to score have no outcome yet); when present it is
 *   ignored.
 * - Consent and withdrawal are applied first: a row without consent, or whose id is on the
 *   withdrawn list, is counted and dropped before any other cell is looked at — it is never
 *   encoded and never scored.
 * - Strict mode: every bad row is an error naming file, line, column and value, a category outside
 *   the declared vocabulary is an error (not the "<other>" bucket), and so is a number outside its
 *   declared range (not clipped): the model never saw such values.
 */
import { FedmarkError } from '../errors.ts';
import { formatIssue, matchHeader, readCsvBatches, type RowIssue } from '../data/csv.ts';
import { encodeRows, parseNumber } from '../data/encode.ts';
import { isTypedColumn, type DatasetSchema, type NumericColumn } from '../data/schema.ts';

export interface RawRow {
  /** 1-based line in the file (or position in a request). */
  line: number;
  /** Cells in schema column order (the label cell may be a placeholder). */
  values: string[];
  /** Approximate bytes the record took in the file (progress only). */
  bytes: number;
}

export interface RawBatch {
  rows: RawRow[];
  /** Rows with the wrong number of fields. */
  structural: RowIssue[];
  bytes: number;
}

export interface EncodedBatch {
  n: number;
  d: number;
  X: Float32Array;
  /** The kept rows (scored), aligned with X. */
  rows: RawRow[];
  ids: string[] | null;
  /** Per sensitive column: each kept row's group. */
  sensitive: Record<string, string[]>;
  excludedNoConsent: number;
  excludedWithdrawn: number;
  /** Rows rejected as bad (non-strict mode), with file lines. */
  rejected: RowIssue[];
  /** Per numeric column: kept rows whose value was clipped to the declared range. */
  clipped: Record<string, number>;
}

export interface RowEncoderOptions {
  strict: boolean;
  withdrawn?: ReadonlySet<string>;
  /** Names the source in messages ("data.csv", "request"). */
  source: string;
}

/** The schema with every categorical column refusing unknown values (strict scoring). */
function strictSchema(schema: DatasetSchema): DatasetSchema {
  return {
    ...schema,
    columns: schema.columns.map((c) => (isTypedColumn(c) && c.type === 'categorical' ? { ...c, unknown: 'error' as const } : c)),
  };
}

export class RowEncoder {
  readonly schema: DatasetSchema;
  private readonly encSchema: DatasetSchema;
  private readonly labelIndex: number;
  private readonly labelFill: string;
  readonly idIndex: number;
  private readonly consentIndex: number;
  private readonly granted: ReadonlySet<string> | null;
  private readonly numeric: { index: number; col: NumericColumn }[];
  private readonly names: string[];

  constructor(
    schema: DatasetSchema,
    private readonly opts: RowEncoderOptions,
  ) {
    this.schema = schema;
    this.encSchema = opts.strict ? strictSchema(schema) : schema;
    this.labelIndex = schema.columns.findIndex((c) => c.role === 'label');
    const label = schema.columns[this.labelIndex];
    this.labelFill = label?.role === 'label' ? label.negative[0] : '';
    this.idIndex = schema.columns.findIndex((c) => c.role === 'id');
    this.consentIndex = schema.columns.findIndex((c) => c.role === 'consent');
    const consent = schema.columns[this.consentIndex];
    this.granted = consent?.role === 'consent' ? new Set(consent.granted) : null;
    if (opts.withdrawn && opts.withdrawn.size > 0 && this.idIndex < 0) {
      throw new FedmarkError('DATA_NO_ID_COLUMN', `schema "${schema.name}" has no id column, so the withdrawn-consent list cannot be applied`);
    }
    this.numeric = schema.columns.flatMap((c, index) => (isTypedColumn(c) && c.type === 'numeric' ? [{ index, col: c }] : []));
    this.names = schema.columns.map((c) => c.name);
  }

  /** Consent and withdrawal: which rows may be processed at all. */
  admit(values: readonly string[]): 'ok' | 'no-consent' | 'withdrawn' {
    if (this.granted && !this.granted.has(values[this.consentIndex].trim())) return 'no-consent';
    if (this.idIndex >= 0 && this.opts.withdrawn?.has(values[this.idIndex].trim())) return 'withdrawn';
    return 'ok';
  }

  private strictRange(row: RawRow): RowIssue | null {
    for (const { index, col } of this.numeric) {
      const cell = row.values[index].trim();
      if (cell === '') continue;
      const v = parseNumber(cell);
      if (v !== null && (v < col.min || v > col.max)) {
        return { line: row.line, column: col.name, value: cell, message: `outside the declared range [${col.min}, ${col.max}]` };
      }
    }
    return null;
  }

  private fail(issue: RowIssue): never {
    throw new FedmarkError('DATA_BAD_ROW', formatIssue(this.opts.source, issue), { ...issue, file: this.opts.source });
  }

  /** Applies consent, withdrawal and the bad-row policy, and encodes the admitted rows. */
  encode(rows: readonly RawRow[], structural: readonly RowIssue[] = []): EncodedBatch {
    const rejected: RowIssue[] = [];
    if (structural.length) {
      if (this.opts.strict) this.fail(structural[0]);
      rejected.push(...structural);
    }
    let excludedNoConsent = 0;
    let excludedWithdrawn = 0;
    const admitted: RawRow[] = [];
    for (const row of rows) {
      const a = this.admit(row.values);
      if (a === 'no-consent') excludedNoConsent++;
      else if (a === 'withdrawn') excludedWithdrawn++;
      else if (this.opts.strict) {
        const issue = this.strictRange(row);
        if (issue) this.fail(issue);
        admitted.push(row);
      } else admitted.push(row);
    }
    const records = admitted.map((row) => {
      const rec: Record<string, string> = {};
      for (let i = 0; i < this.names.length; i++) rec[this.names[i]] = i === this.labelIndex ? this.labelFill : row.values[i];
      return rec;
    });
    let ds;
    try {
      ds = encodeRows(this.encSchema, records, { strict: this.opts.strict, maxReportedBadRows: records.length, maxBadRows: Infinity, source: this.opts.source });
    } catch (err) {
      // The encoder numbers rows by their position in this batch; name the file line instead.
      const e = err as FedmarkError;
      const pos = typeof e.details?.line === 'number' ? e.details.line : 0;
      if (e instanceof FedmarkError && pos >= 1 && pos <= admitted.length) {
        this.fail({ ...(e.details as unknown as RowIssue), line: admitted[pos - 1].line });
      }
      throw err;
    }
    let kept = admitted;
    if (ds.stats.badRowCount > 0) {
      const bad = new Set<number>();
      for (const issue of ds.stats.badRows) {
        bad.add(issue.line);
        rejected.push({ ...issue, line: admitted[issue.line - 1].line });
      }
      kept = admitted.filter((_, i) => !bad.has(i + 1));
    }
    return {
      n: ds.n,
      d: ds.d,
      X: ds.X,
      rows: kept,
      ids: ds.ids,
      sensitive: ds.sensitive,
      excludedNoConsent,
      excludedWithdrawn,
      rejected,
      clipped: ds.stats.clipped,
    };
  }
}

/**
 * Batches of a CSV file's data rows in schema column order. Every declared column must be in the
 * header except the label, which may be missing; undeclared columns are refused (matchHeader).
 */
export async function* readScoringRows(path: string, schema: DatasetSchema): AsyncGenerator<RawBatch> {
  const labelIndex = schema.columns.findIndex((c) => c.role === 'label');
  const label = schema.columns[labelIndex];
  let map: Int32Array | null = null;
  let width = 0;
  let hasLabel = true;
  for await (const records of readCsvBatches(path, schema.delimiter ?? ',')) {
    const batch: RawBatch = { rows: [], structural: [], bytes: 0 };
    for (const rec of records) {
      let bytes = 0;
      for (let i = 0; i < rec.fields.length; i++) bytes += rec.fields[i].length + 1;
      batch.bytes += bytes;
      if (!map) {
        hasLabel = rec.fields.some((f) => f.trim() === label.name);
        const headerSchema = hasLabel ? schema : { ...schema, columns: schema.columns.filter((_, i) => i !== labelIndex) };
        const m = matchHeader(rec.fields, headerSchema, path);
        map = new Int32Array(schema.columns.length).fill(-1);
        let k = 0;
        for (let i = 0; i < schema.columns.length; i++) if (hasLabel || i !== labelIndex) map[i] = m[k++];
        width = rec.fields.length;
        continue;
      }
      const f = rec.fields;
      if (f.length !== width) {
        batch.structural.push({ line: rec.line, column: f.length < width ? '(row)' : `field ${width + 1}`, value: '', message: `expected ${width} fields, found ${f.length}` });
        continue;
      }
      const values = new Array<string>(map.length);
      for (let i = 0; i < map.length; i++) values[i] = map[i] >= 0 ? f[map[i]] : '';
      batch.rows.push({ line: rec.line, values, bytes });
    }
    if (batch.rows.length || batch.structural.length) yield batch;
  }
  if (!map) throw new FedmarkError('DATA_EMPTY_FILE', `${path}: no header row`);
}
