/** The encoded dataset and the options of every way to build one (CSV, Parquet, PostgreSQL, memory). */

/**
 * One problem with one data row. `line` is the 1-based line where the row starts in a CSV file, or
 * the 1-based row position in a Parquet file, a query result or a list of records.
 */
export interface RowIssue {
  line: number;
  column: string;
  value: string;
  message: string;
}

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
  /**
   * Row-major n × d. Loaders size it once from an upper bound on the source's rows, so its buffer may
   * hold a few spare rows (skipped or excluded ones) beyond `n × d`; `X.length` is always `n × d`.
   */
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

/**
 * How many bad rows a load tolerates before it fails: a count (a non-negative integer, or Infinity
 * for no limit) or a fraction of the data rows read.
 */
export type BadRowLimit = number | { fraction: number };

/**
 * Default: more than 1% of the rows bad fails the load. A few malformed lines in a large export are
 * normal and dropping them does not change the population; a systematic problem (a third label value,
 * a shifted column, a wrong export) hits far more rows than that and silently dropping them would
 * train on a different population than the partner believes. A fraction scales from a 2,000-row file
 * to 10⁷ rows; `maxBadRows: Infinity` restores skip-everything.
 */
export const DEFAULT_MAX_BAD_ROWS: BadRowLimit = { fraction: 0.01 };

export interface EncodeOptions {
  /** Ids whose consent was withdrawn: dropped and counted in `excludedWithdrawn` (needs an id column). */
  excludeIds?: ReadonlySet<string>;
  /** Overrides the schema's `strict`: throw on the first bad row. */
  strict?: boolean;
  /** How many bad rows to keep in `stats.badRows` (all are counted). Default 1000. */
  maxReportedBadRows?: number;
  /** Fail with DATA_TOO_MANY_BAD_ROWS above this many bad rows. Default DEFAULT_MAX_BAD_ROWS (1%). */
  maxBadRows?: BadRowLimit;
}

/** Progress of a load, reported after each chunk or batch read. */
export interface LoadProgress {
  /** The source's name (file path, or database and table). */
  source: string;
  /** Data rows read so far. */
  rows: number;
  /** Work done so far, in `unit`s, and the total when known. */
  done: number;
  total: number | null;
  unit: 'bytes' | 'rows';
}

export interface LoadOptions extends EncodeOptions {
  onProgress?: (progress: LoadProgress) => void;
}
