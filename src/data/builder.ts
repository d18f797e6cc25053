/**
 * Turns rows of any source into a Dataset, applying consent, withdrawal, the bad-row policy and the
 * encoding. Rows are encoded straight into typed arrays held once: X (n × d float32), y, a small code
 * per row and sensitive column, and ids only when the schema has an id column. A source that knows an
 * upper bound on its rows (a CSV's line count, Parquet metadata, a count in the query's snapshot) sizes
 * them once, so peak memory stays close to rows × d × 4 bytes.
 *
 * Row policy: consent and withdrawal are applied before any other cell is looked at; then a blank id,
 * a label outside the declared values or a bad typed cell makes the row bad: it is skipped and
 * reported with line, column and value, or thrown in strict mode, and the load fails once bad rows
 * pass `maxBadRows`.
 */
import { FedmarkError } from '../errors.ts';
import type { Cells } from './cells.ts';
import { FLAG_CLIPPED, FLAG_IMPUTED, TruthValues, compileColumns, type CompiledColumn } from './columns.ts';
import {
  DEFAULT_MAX_BAD_ROWS,
  type BadRowLimit, type Dataset, type DatasetStats, type EncodeOptions, type RowIssue } from './dataset.ts';
import { featureNames, type DatasetSchema } from './schema.ts';
import { allowedBadRows, checkLimit, describeLimit, formatIssueAt } from './bad-rows.ts';

/** Where rows come from, for messages: a name, and how to point at one row. */
export interface RowLocator {
  readonly name: string;
  /** "customers.csv:12", "customers.parquet row 12". */
  at(line: number): string;
}

/** What a source feeds while it reads. */
export interface RowSink {
  /** An upper bound on the data rows still to come, when the source knows one (sizes the arrays). */
  expect(rows: number): void;
  row(cells: Cells, line: number): void;
  /** A row whose cells could not be mapped (e.g. wrong field count). */
  structural(issue: RowIssue): void;
}

const MIN_CAPACITY = 1024;

export class DatasetBuilder implements RowSink {
  private readonly cols: CompiledColumn[];
  private readonly names: string[];
  private readonly d: number;
  private readonly labelIndex: number;
  private readonly labelName: string;
  private readonly label: TruthValues;
  private readonly idIndex: number;
  private readonly idName: string;
  private readonly consentIndex: number;
  private readonly consent: TruthValues | null;
  private readonly sensitiveCols: CompiledColumn[];
  private readonly numericCols: CompiledColumn[];
  private readonly strict: boolean;
  private readonly maxReported: number;
  private readonly limit: BadRowLimit;
  private readonly excludeIds: ReadonlySet<string> | undefined;
  private readonly vector: Float32Array;
  private readonly flags: Uint8Array;

  private capacity = 0;
  /** Upper bound on all rows of the source, when known (for an early bad-fraction failure). */
  private expectedRows = Infinity;
  private X = new Float32Array(0);
  private y = new Float32Array(0);
  private groups: (Uint8Array | Uint16Array)[] = [];
  private n = 0;
  private readonly ids: string[] | null;
  readonly stats: DatasetStats;

  constructor(
    private readonly schema: DatasetSchema,
    private readonly where: RowLocator,
    options: EncodeOptions,
  ) {
    this.cols = compileColumns(schema);
    this.names = featureNames(schema);
    this.d = this.names.length;
    this.labelIndex = schema.columns.findIndex((c) => c.role === 'label');
    const label = schema.columns[this.labelIndex];
    if (label?.role !== 'label') throw new FedmarkError('SCHEMA_INVALID', `schema "${schema.name}" has no label column`);
    this.labelName = label.name;
    this.label = new TruthValues(label.positive, label.negative);
    this.idIndex = schema.columns.findIndex((c) => c.role === 'id');
    this.idName = this.idIndex >= 0 ? schema.columns[this.idIndex].name : '';
    this.consentIndex = schema.columns.findIndex((c) => c.role === 'consent');
    const consent = schema.columns[this.consentIndex];
    this.consent = consent?.role === 'consent' ? new TruthValues(consent.granted, []) : null;
    if (options.excludeIds && this.idIndex < 0) {
      throw new FedmarkError(
        'DATA_NO_ID_COLUMN',
        `schema "${schema.name}" has no id column, so excludeIds (withdrawn consent) cannot be applied`,
      );
    }
    this.excludeIds = options.excludeIds;
    this.sensitiveCols = this.cols.filter((c) => c.groups !== null);
    this.numericCols = this.cols.filter((c) => c.numeric);
    this.strict = options.strict ?? schema.strict ?? false;
    this.maxReported = options.maxReportedBadRows ?? 1000;
    this.limit = checkLimit(options.maxBadRows ?? DEFAULT_MAX_BAD_ROWS);
    this.vector = new Float32Array(this.d);
    this.flags = new Uint8Array(schema.columns.length);
    this.ids = this.idIndex >= 0 ? [] : null;
    this.stats = {
      rowsRead: 0,
      rowsUsed: 0,
      excludedNoConsent: 0,
      excludedWithdrawn: 0,
      badRowCount: 0,
      badRows: [],
      clipped: Object.fromEntries(this.numericCols.map((c) => [c.name, 0])),
      imputed: Object.fromEntries(this.numericCols.map((c) => [c.name, 0])),
    };
  }

  expect(rows: number): void {
    this.expectedRows = this.stats.rowsRead + rows;
    this.reserve(this.n + rows);
  }

  /** Makes room for `rows` rows in total (keeping the rows stored so far). */
  private reserve(rows: number): void {
    if (rows <= this.capacity) return;
    const cap = Math.max(rows, MIN_CAPACITY);
    const X = new Float32Array(cap * this.d);
    X.set(this.X.subarray(0, this.n * this.d));
    const y = new Float32Array(cap);
    y.set(this.y.subarray(0, this.n));
    this.groups = this.sensitiveCols.map((c, s) => {
      const g = c.groups!.length <= 256 ? new Uint8Array(cap) : new Uint16Array(cap);
      if (this.groups[s]) g.set(this.groups[s].subarray(0, this.n));
      return g;
    });
    this.X = X;
    this.y = y;
    this.capacity = cap;
  }

  private bad(issue: RowIssue): void {
    if (this.strict) {
      throw new FedmarkError('DATA_BAD_ROW', formatIssueAt(this.where.at(issue.line), issue), { ...issue, file: this.where.name });
    }
    this.stats.badRowCount++;
    if (this.stats.badRows.length < this.maxReported) this.stats.badRows.push(issue);
    // Fail as soon as the outcome is certain, not after reading ten million rows.
    if (this.stats.badRowCount > allowedBadRows(this.limit, this.expectedRows)) this.tooManyBadRows(this.expectedRows);
  }

  structural(issue: RowIssue): void {
    this.stats.rowsRead++;
    this.bad(issue);
  }

  row(cells: Cells, line: number): void {
    this.stats.rowsRead++;
    if (this.consent && this.consent.of(cells, this.consentIndex) !== 1) {
      this.stats.excludedNoConsent++;
      return;
    }
    let id = '';
    if (this.idIndex >= 0) {
      id = cells.text(this.idIndex);
      if (this.excludeIds?.has(id)) {
        this.stats.excludedWithdrawn++;
        return;
      }
      if (id === '') {
        this.bad({ line, column: this.idName, value: '', message: 'blank id' });
        return;
      }
    }
    const label = this.label.of(cells, this.labelIndex);
    if (label < 0) {
      this.bad({ line, column: this.labelName, value: cells.text(this.labelIndex), message: 'label value is neither positive nor negative' });
      return;
    }
    const { vector, flags, cols } = this;
    flags.fill(0);
    for (let c = 0; c < cols.length; c++) {
      const col = cols[c];
      const problem = col.encode(cells, vector, flags);
      if (problem !== null) {
        this.bad({ line, column: col.name, value: cells.text(col.index), message: problem });
        return;
      }
    }
    const n = this.n;
    if (n === this.capacity) this.reserve(Math.max(MIN_CAPACITY, Math.ceil(this.capacity * 1.5)));
    this.X.set(vector, n * this.d);
    this.y[n] = label;
    if (this.ids) this.ids.push(id);
    for (let s = 0; s < this.sensitiveCols.length; s++) this.groups[s][n] = this.sensitiveCols[s].group;
    for (const col of this.numericCols) {
      const f = flags[col.index];
      if (f & FLAG_CLIPPED) this.stats.clipped[col.name]++;
      if (f & FLAG_IMPUTED) this.stats.imputed[col.name]++;
    }
    this.n = n + 1;
  }

  /** `rows`: the rows the limit applies to (all rows read, or an upper bound on them when failing early). */
  private tooManyBadRows(rows: number): never {
    const { badRowCount, rowsRead, badRows } = this.stats;
    const shown = badRows.slice(0, 5).map((b) => `  ${formatIssueAt(this.where.at(b.line), b)}`);
    const share = rowsRead > 0 ? ` (${+((100 * badRowCount) / rowsRead).toPrecision(3)}% of ${rowsRead} rows read${rows > rowsRead ? ' so far' : ''})` : '';
    const limit = this.limit;
    const allowance =
      typeof limit === 'number' ? '' : ` (${Math.floor(allowedBadRows(limit, rows))} of ${rows > rowsRead ? `at most ${rows}` : rows} rows)`;
    throw new FedmarkError(
      'DATA_TOO_MANY_BAD_ROWS',
      `${this.where.name}: ${badRowCount} bad row${badRowCount === 1 ? '' : 's'}${share}, more than the limit of ${describeLimit(limit)}${allowance} (maxBadRows / --max-bad-rows); first ones:\n${shown.join('\n')}`,
      { file: this.where.name, badRowCount, rowsRead },
    );
  }

  /**
   * The Dataset. With `requireRows` (every data source), a source without data rows or without a
   * usable one is an error naming it, instead of an empty dataset that fails later without a name.
   */
  finish(requireRows = false): Dataset {
    const { stats } = this;
    if (stats.badRowCount > allowedBadRows(this.limit, stats.rowsRead)) this.tooManyBadRows(stats.rowsRead);
    if (requireRows && stats.rowsRead === 0) {
      throw new FedmarkError('DATA_NO_ROWS', `${this.where.name}: no data rows`, { file: this.where.name });
    }
    if (requireRows && this.n === 0) {
      throw new FedmarkError(
        'DATA_NO_USABLE_ROWS',
        `${this.where.name}: none of the ${stats.rowsRead} data rows is usable (${stats.excludedNoConsent} without consent, ${stats.excludedWithdrawn} withdrawn, ${stats.badRowCount} bad)`,
        { file: this.where.name },
      );
    }
    stats.rowsUsed = this.n;
    const n = this.n;
    // A view while the spare rows are few (no copy, no second peak); a compact copy otherwise.
    const fit = <T extends Float32Array | Uint8Array | Uint16Array>(a: T, width: number): T =>
      (this.capacity - n) * 8 <= this.capacity ? (a.subarray(0, n * width) as T) : (a.slice(0, n * width) as T);
    const sensitive: Record<string, string[]> = {};
    this.sensitiveCols.forEach((c, s) => {
      const names = c.groups!;
      const codes = this.groups[s];
      const out = new Array<string>(n);
      for (let i = 0; i < n; i++) out[i] = names[codes[i]];
      sensitive[c.name] = out;
    });
    return {
      n,
      d: this.d,
      X: fit(this.X, this.d),
      y: fit(this.y, 1),
      featureNames: [...this.names],
      ids: this.ids,
      sensitive,
      stats,
    };
  }
}
