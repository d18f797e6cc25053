/**
 * Data-independent encoding: every cell is mapped with constants declared in the schema (bounds,
 * vocabularies, band edges), never with statistics of the data. A row therefore encodes to the same
 * vector whichever partner holds it and whatever other rows sit next to it, and the feature layout
 * (d, names) is known from the schema alone.
 *
 * Row policy (builder.ts): a bad row (unparseable number, blank where `missing` is 'error', unknown
 * category in a column with `unknown: 'error'`, unknown label/boolean, wrong field count) is skipped
 * and reported with line, column and value; in strict mode the first one throws, and above
 * `maxBadRows` the load fails. Rows whose consent column does not grant consent, and rows whose id is
 * in `excludeIds` (withdrawn consent / erasure), are dropped before any of their values are looked at,
 * and only counted.
 */
import { FedmarkError } from '../errors.ts';
import { DatasetBuilder } from './builder.ts';
import { ValueCells } from './cells.ts';
import type { Dataset, DatasetStats, EncodeOptions, LoadOptions } from './dataset.ts';
import { loadSource } from './load.ts';
import type { DatasetSchema } from './schema.ts';
import { csvSource } from './sources/csv.ts';

export { parseNumber } from './cells.ts';
export {
  DEFAULT_MAX_BAD_ROWS,
  type BadRowLimit,
  type Dataset,
  type DatasetStats,
  type EncodeOptions,
  type LoadOptions,
  type LoadProgress,
  type RowIssue,
} from './dataset.ts';

/** Streams a CSV file through the schema into a Dataset. `schema` may be a schema object or a path to one. */
export async function loadDataset(path: string, schema: DatasetSchema | string, options: LoadOptions = {}): Promise<Dataset> {
  return loadSource(csvSource(path), schema, options);
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
  const name = options.source ?? `records of "${schema.name}"`;
  const builder = new DatasetBuilder(schema, { name, at: (line) => `${name}:${line}` }, options);
  const identity = Int32Array.from(schema.columns, (_, i) => i);
  const cells = new ValueCells(identity);
  const values = new Array<string>(schema.columns.length);
  let line = 0;
  for (const rec of records) {
    line++;
    let missing: string | null = null;
    schema.columns.forEach((c, i) => {
      const v = rec[c.name];
      if (typeof v !== 'string') missing ??= c.name;
      values[i] = typeof v === 'string' ? v : '';
    });
    if (missing !== null) {
      builder.structural({ line, column: missing, value: '', message: 'declared column is missing from the record' });
    } else {
      cells.set(values);
      builder.row(cells, line);
    }
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
