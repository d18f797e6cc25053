/**
 * Data-independent encoding: every cell is mapped with constants declared in the schema (bounds,
 * vocabularies, band edges), never with statistics of the data. A row therefore encodes to the same
 * vector whichever partner holds it and whatever other rows sit next to it, and the feature layout
 * (d, names) is known from the schema alone.
 *
 * Row policy: a bad row (unparseable number, blank where `missing` is 'error', unknown category in a
 * column with `unknown: 'error'`, unknown label/boolean, wrong field count) is skipped and reported
 * with line, column and value; in strict mode the first one throws. Rows whose consent column does not
 * grant consent, and rows whose id is in `excludeIds` (withdrawn consent / erasure), are dropped
 * before any of their values are looked at, and only counted.
 */
import { FedmarkError } from '../errors.ts';
import { formatIssue, readRowBatches, type RowIssue } from './csv.ts';
import {
  OTHER_BUCKET,
  bandLabels,
  featureNames,
  isFeature,
  isTypedColumn,
  loadSchema,
  type DatasetSchema,
  type NumericColumn,
} from './schema.ts';

export type { RowIssue } from './csv.ts';

export interface DatasetStats {
  /** Data rows seen (header and blank lines excluded). */
  rowsRead: number;
  rowsUsed: number;
  excludedNoConsent: number;
  excludedWithdrawn: number;
  /** Rows skipped as bad (all of them; `badRows` keeps at most `maxReportedBadRows`). */
  badRowCount: number;
  badRows: RowIssue[];
  /** Per numeric column: used rows whose value lay outside the declared bounds. */
  clipped: Record<string, number>;
  /** Per numeric column: used rows whose blank cell was filled by the `missing` policy. */
  imputed: Record<string, number>;
}

export interface Dataset {
  n: number;
  d: number;
  /** Row-major n × d. */
  X: Float32Array;
  /** 0/1 labels. */
  y: Float32Array;
  featureNames: string[];
  /** Per-row ids when the schema has an id column; kept locally only, for data-subject rights. */
  ids: string[] | null;
  /** Per sensitive column: the row's group (declared value, "<other>", band label, or "true"/"false"). */
  sensitive: Record<string, string[]>;
  stats: DatasetStats;
}

export interface EncodeOptions {
  /** Ids whose consent was withdrawn: dropped and counted in `excludedWithdrawn` (needs an id column). */
  excludeIds?: ReadonlySet<string>;
  /** Overrides the schema's `strict`: throw on the first bad row. */
  strict?: boolean;
  /** How many bad rows to keep in `stats.badRows` (all are counted). Default 1000. */
  maxReportedBadRows?: number;
}

const NUMBER_RE = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

type CellResult = string | null; // null = fine, string = problem message

interface CompiledColumn {
  /** Position in schema.columns (= position in the values array). */
  index: number;
  name: string;
  /** Offset of this column's first feature in the row vector, or -1 when not a feature. */
  offset: number;
  /** Encodes a trimmed cell into `row` (if a feature) and `groups` (if sensitive). */
  encode(cell: string, row: Float32Array, flags: Uint8Array): CellResult;
  /** The sensitive group of the last encoded cell, when the column is sensitive. */
  group: ((cell: string) => string) | null;
}

const FLAG_CLIPPED = 1;
const FLAG_IMPUTED = 2;

function numericMapper(c: NumericColumn): (v: number) => number {
  const { min, max } = c;
  const transform = c.transform ?? 'none';
  const slog = (x: number) => Math.sign(x) * Math.log1p(Math.abs(x));
  let unit: (v: number) => number;
  if (transform === 'log1p') {
    const top = Math.log1p(max - min);
    unit = (v) => Math.log1p(v - min) / top;
  } else if (transform === 'signed-log1p') {
    const lo = slog(min);
    const span = slog(max) - lo;
    unit = (v) => (slog(v) - lo) / span;
  } else {
    const span = max - min;
    unit = (v) => (v - min) / span;
  }
  return c.scale === 'centered' ? (v) => 2 * unit(v) - 1 : unit;
}

/** Parses a numeric cell exactly as the encoder does (trimmed; decimal or exponent notation only). */
export function parseNumber(cell: string): number | null {
  const t = cell.trim();
  if (!NUMBER_RE.test(t)) return null;
  const v = Number(t);
  return Number.isFinite(v) ? v : null;
}

function compileColumns(schema: DatasetSchema): CompiledColumn[] {
  const out: CompiledColumn[] = [];
  let offset = 0;
  schema.columns.forEach((c, index) => {
    if (!isTypedColumn(c)) return;
    const feature = isFeature(c);
    const off = feature ? offset : -1;
    if (c.type === 'numeric') {
      const map = numericMapper(c);
      const missing = c.missing ?? 'error';
      const fill = missing === 'min' ? c.min : missing === 'error' ? null : missing;
      const bands = c.groups ? c.groups.edges : null;
      const labels = c.groups ? bandLabels(c.groups) : null;
      const clip = (v: number) => (v < c.min ? c.min : v > c.max ? c.max : v);
      const parse = (cell: string, flags: Uint8Array): number | string => {
        if (cell === '') {
          if (fill === null) return 'blank value in a numeric column (missing policy is "error")';
          flags[index] |= FLAG_IMPUTED;
          return fill;
        }
        const v = parseNumber(cell);
        return v === null ? 'not a number' : v;
      };
      out.push({
        index,
        name: c.name,
        offset: off,
        encode(cell, row, flags) {
          const v = parse(cell, flags);
          if (typeof v === 'string') return v;
          const clipped = clip(v);
          if (clipped !== v) flags[index] |= FLAG_CLIPPED;
          if (off >= 0) row[off] = map(clipped);
          return null;
        },
        group:
          bands && labels
            ? (cell) => {
                const v = clip(parseNumber(cell) ?? fill ?? c.min);
                // Half-open bands, the last one closed; validation guarantees the edges cover [min, max].
                for (let b = 0; b < labels.length - 1; b++) if (v < bands[b + 1]) return labels[b];
                return labels[labels.length - 1];
              }
            : null,
      });
      if (feature) offset += 1;
    } else if (c.type === 'categorical') {
      const slot = new Map(c.values.map((v, i) => [v, i]));
      const other = c.values.length;
      const strictUnknown = c.unknown === 'error';
      out.push({
        index,
        name: c.name,
        offset: off,
        encode(cell, row) {
          const s = slot.get(cell);
          if (s === undefined && strictUnknown) {
            return `unknown category (declared: ${c.values.map((v) => `"${v}"`).join(', ')})`;
          }
          if (off >= 0) {
            for (let k = 0; k <= other; k++) row[off + k] = 0;
            row[off + (s ?? other)] = 1;
          }
          return null;
        },
        group: c.sensitive ? (cell) => (slot.has(cell) ? cell : OTHER_BUCKET) : null,
      });
      if (feature) offset += other + 1;
    } else {
      const t = new Set(c.true);
      const f = new Set(c.false);
      out.push({
        index,
        name: c.name,
        offset: off,
        encode(cell, row) {
          const truth = t.has(cell) ? 1 : f.has(cell) ? 0 : -1;
          if (truth < 0) return `not a declared boolean value (true: ${c.true.join('/')}, false: ${c.false.join('/')})`;
          if (off >= 0) row[off] = truth;
          return null;
        },
        group: c.sensitive ? (cell) => (t.has(cell) ? 'true' : 'false') : null,
      });
      if (feature) offset += 1;
    }
  });
  return out;
}

/**
 * Turns rows (cells in schema column order) into a Dataset, applying consent, withdrawal, the
 * bad-row policy and the encoding. Shared by the CSV loader and the in-memory encoder.
 */
class DatasetBuilder {
  private readonly cols: CompiledColumn[];
  private readonly names: string[];
  private readonly d: number;
  private readonly labelIndex: number;
  private readonly positive: Set<string>;
  private readonly negative: Set<string>;
  private readonly labelName: string;
  private readonly idIndex: number;
  private readonly consentIndex: number;
  private readonly granted: Set<string> | null;
  private readonly sensitiveCols: CompiledColumn[];
  private readonly numericCols: CompiledColumn[];
  private readonly strict: boolean;
  private readonly maxReported: number;
  private readonly row: Float32Array;
  private readonly flags: Uint8Array;

  private X: Float32Array;
  private y: Float32Array;
  private n = 0;
  private readonly ids: string[] | null;
  private readonly groups: string[][];
  readonly stats: DatasetStats;

  constructor(
    private readonly schema: DatasetSchema,
    private readonly source: string,
    private readonly options: EncodeOptions,
  ) {
    this.cols = compileColumns(schema);
    this.names = featureNames(schema);
    this.d = this.names.length;
    this.labelIndex = schema.columns.findIndex((c) => c.role === 'label');
    const label = schema.columns[this.labelIndex];
    if (label?.role !== 'label') throw new FedmarkError('SCHEMA_INVALID', `schema "${schema.name}" has no label column`);
    this.labelName = label.name;
    this.positive = new Set(label.positive);
    this.negative = new Set(label.negative);
    this.idIndex = schema.columns.findIndex((c) => c.role === 'id');
    this.consentIndex = schema.columns.findIndex((c) => c.role === 'consent');
    const consent = schema.columns[this.consentIndex];
    this.granted = consent?.role === 'consent' ? new Set(consent.granted) : null;
    if (options.excludeIds && this.idIndex < 0) {
      throw new FedmarkError(
        'DATA_NO_ID_COLUMN',
        `schema "${schema.name}" has no id column, so excludeIds (withdrawn consent) cannot be applied`,
      );
    }
    this.sensitiveCols = this.cols.filter((c) => c.group !== null);
    const numericNames = new Set(schema.columns.filter((c) => isTypedColumn(c) && c.type === 'numeric').map((c) => c.name));
    this.numericCols = this.cols.filter((c) => numericNames.has(c.name));
    this.strict = options.strict ?? schema.strict ?? false;
    this.maxReported = options.maxReportedBadRows ?? 1000;
    this.row = new Float32Array(this.d);
    this.flags = new Uint8Array(schema.columns.length);
    const cap = 1024;
    this.X = new Float32Array(cap * this.d);
    this.y = new Float32Array(cap);
    this.ids = this.idIndex >= 0 ? [] : null;
    this.groups = this.sensitiveCols.map(() => []);
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

  bad(issue: RowIssue): void {
    if (this.strict) {
      throw new FedmarkError('DATA_BAD_ROW', formatIssue(this.source, issue), { ...issue, file: this.source });
    }
    this.stats.badRowCount++;
    if (this.stats.badRows.length < this.maxReported) this.stats.badRows.push(issue);
  }

  /** Structural problems found before the cells could be mapped (e.g. wrong field count). */
  structural(issue: RowIssue): void {
    this.stats.rowsRead++;
    this.bad(issue);
  }

  add(values: string[], line: number): void {
    this.stats.rowsRead++;
    if (this.granted && !this.granted.has(values[this.consentIndex].trim())) {
      this.stats.excludedNoConsent++;
      return;
    }
    let id = '';
    if (this.idIndex >= 0) {
      id = values[this.idIndex].trim();
      if (this.options.excludeIds?.has(id)) {
        this.stats.excludedWithdrawn++;
        return;
      }
      if (id === '') {
        this.bad({ line, column: this.schema.columns[this.idIndex].name, value: '', message: 'blank id' });
        return;
      }
    }
    const labelCell = values[this.labelIndex].trim();
    const label = this.positive.has(labelCell) ? 1 : this.negative.has(labelCell) ? 0 : -1;
    if (label < 0) {
      this.bad({ line, column: this.labelName, value: labelCell, message: 'label value is neither positive nor negative' });
      return;
    }
    const { row, flags } = this;
    flags.fill(0);
    for (const col of this.cols) {
      const cell = values[col.index].trim();
      const problem = col.encode(cell, row, flags);
      if (problem !== null) {
        this.bad({ line, column: col.name, value: cell, message: problem });
        return;
      }
    }
    if (this.n === this.y.length) this.grow();
    this.X.set(row, this.n * this.d);
    this.y[this.n] = label;
    if (this.ids) this.ids.push(id);
    for (let s = 0; s < this.sensitiveCols.length; s++) {
      const col = this.sensitiveCols[s];
      this.groups[s].push(col.group!(values[col.index].trim()));
    }
    for (const col of this.numericCols) {
      if (flags[col.index] & FLAG_CLIPPED) this.stats.clipped[col.name]++;
      if (flags[col.index] & FLAG_IMPUTED) this.stats.imputed[col.name]++;
    }
    this.n++;
  }

  private grow(): void {
    const cap = this.y.length * 2;
    const X = new Float32Array(cap * this.d);
    X.set(this.X);
    const y = new Float32Array(cap);
    y.set(this.y);
    this.X = X;
    this.y = y;
  }

  finish(): Dataset {
    this.stats.rowsUsed = this.n;
    return {
      n: this.n,
      d: this.d,
      X: this.X.slice(0, this.n * this.d),
      y: this.y.slice(0, this.n),
      featureNames: [...this.names],
      ids: this.ids,
      sensitive: Object.fromEntries(this.sensitiveCols.map((c, s) => [c.name, this.groups[s]])),
      stats: this.stats,
    };
  }
}

/** Streams a CSV file through the schema into a Dataset. `schema` may be a schema object or a path to one. */
export async function loadDataset(path: string, schema: DatasetSchema | string, options: EncodeOptions = {}): Promise<Dataset> {
  const s = typeof schema === 'string' ? await loadSchema(schema) : schema;
  const builder = new DatasetBuilder(s, path, options);
  for await (const batch of readRowBatches(path, s)) {
    for (const row of batch) {
      if (row.ok) builder.add(row.values, row.line);
      else builder.structural(row.issue);
    }
  }
  return builder.finish();
}

/**
 * Encodes in-memory records (column name → cell text), e.g. rows from a database table. Row numbers
 * in issues are 1-based positions in `records`; every declared column must be present in each record.
 */
export function encodeRows(
  schema: DatasetSchema,
  records: Iterable<Record<string, string>>,
  options: EncodeOptions & { source?: string } = {},
): Dataset {
  const builder = new DatasetBuilder(schema, options.source ?? `records of "${schema.name}"`, options);
  let line = 0;
  for (const rec of records) {
    line++;
    const values = new Array<string>(schema.columns.length);
    let missing: string | null = null;
    schema.columns.forEach((c, i) => {
      const v = rec[c.name];
      if (typeof v !== 'string') missing ??= c.name;
      values[i] = typeof v === 'string' ? v : '';
    });
    if (missing !== null) builder.structural({ line, column: missing, value: '', message: 'declared column is missing from the record' });
    else builder.add(values, line);
  }
  return builder.finish();
}

/**
 * The feature vector of a single record, or a FedmarkError naming the problem (used for scoring single
 * customers; it is exactly the vector loadDataset would produce for the same row).
 */
export function encodeRecord(schema: DatasetSchema, record: Record<string, string>): Float32Array {
  // Columns that do not shape the vector may be absent when scoring; consent may not.
  const filled: Record<string, string> = {};
  for (const c of schema.columns) {
    if (c.role === 'label') filled[c.name] = c.negative[0];
    else if (c.role === 'id') filled[c.name] = 'record';
    else if (c.role === 'ignore') filled[c.name] = '';
  }
  const ds = encodeRows(schema, [{ ...filled, ...record }], { strict: true, source: 'record' });
  if (ds.n !== 1) {
    throw new FedmarkError('DATA_ROW_EXCLUDED', 'record was excluded (no consent) and has no feature vector');
  }
  return ds.X;
}

function cloneStats(s: DatasetStats): DatasetStats {
  return { ...s, badRows: [...s.badRows], clipped: { ...s.clipped }, imputed: { ...s.imputed } };
}

/**
 * Rows `indices` of `ds`, in that order (repeats allowed). Stats are the source's load statistics
 * (they describe the file, not the subset) except `rowsUsed`, which is the subset size.
 */
export function subsetDataset(ds: Dataset, indices: Int32Array | readonly number[]): Dataset {
  const m = indices.length;
  const { d } = ds;
  const X = new Float32Array(m * d);
  const y = new Float32Array(m);
  for (let k = 0; k < m; k++) {
    const i = indices[k];
    if (!Number.isInteger(i) || i < 0 || i >= ds.n) {
      throw new FedmarkError('DATA_BAD_INDEX', `subset index ${i} (position ${k}) is outside 0..${ds.n - 1}`);
    }
    X.set(ds.X.subarray(i * d, (i + 1) * d), k * d);
    y[k] = ds.y[i];
  }
  const pick = (arr: string[]) => Array.from({ length: m }, (_, k) => arr[indices[k]]);
  return {
    n: m,
    d,
    X,
    y,
    featureNames: [...ds.featureNames],
    ids: ds.ids ? pick(ds.ids) : null,
    sensitive: Object.fromEntries(Object.entries(ds.sensitive).map(([k, v]) => [k, pick(v)])),
    stats: { ...cloneStats(ds.stats), rowsUsed: m },
  };
}

/** Stacks datasets with the same feature layout; stats are summed. */
export function concatDatasets(list: readonly Dataset[]): Dataset {
  if (list.length === 0) throw new FedmarkError('DATA_EMPTY_LIST', 'concatDatasets needs at least one dataset');
  const first = list[0];
  const keys = Object.keys(first.sensitive).sort().join('\u0000');
  list.forEach((ds, i) => {
    if (ds.d !== first.d || ds.featureNames.join('\u0000') !== first.featureNames.join('\u0000')) {
      throw new FedmarkError('DATA_LAYOUT_MISMATCH', `dataset ${i} has a different feature layout (d=${ds.d}) than dataset 0 (d=${first.d})`);
    }
    if (Object.keys(ds.sensitive).sort().join('\u0000') !== keys) {
      throw new FedmarkError('DATA_LAYOUT_MISMATCH', `dataset ${i} has different sensitive columns than dataset 0`);
    }
  });
  const n = list.reduce((a, ds) => a + ds.n, 0);
  const X = new Float32Array(n * first.d);
  const y = new Float32Array(n);
  let at = 0;
  for (const ds of list) {
    X.set(ds.X.subarray(0, ds.n * ds.d), at * first.d);
    y.set(ds.y.subarray(0, ds.n), at);
    at += ds.n;
  }
  const sum = (pick: (s: DatasetStats) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const ds of list) for (const [k, v] of Object.entries(pick(ds.stats))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const total = (f: (s: DatasetStats) => number) => list.reduce((a, ds) => a + f(ds.stats), 0);
  return {
    n,
    d: first.d,
    X,
    y,
    featureNames: [...first.featureNames],
    ids: list.every((ds) => ds.ids) ? list.flatMap((ds) => ds.ids!) : null,
    sensitive: Object.fromEntries(Object.keys(first.sensitive).map((k) => [k, list.flatMap((ds) => ds.sensitive[k])])),
    stats: {
      rowsRead: total((s) => s.rowsRead),
      rowsUsed: n,
      excludedNoConsent: total((s) => s.excludedNoConsent),
      excludedWithdrawn: total((s) => s.excludedWithdrawn),
      badRowCount: total((s) => s.badRowCount),
      badRows: list.flatMap((ds) => ds.stats.badRows),
      clipped: sum((s) => s.clipped),
      imputed: sum((s) => s.imputed),
    },
  };
}
