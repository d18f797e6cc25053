/** Public API of the data module: schema, data sources (CSV, Parquet, PostgreSQL), data-independent encoding, partitioning. */
export {
  OTHER_BUCKET,
  bandLabels,
  columnFeatureNames,
  columnSchema,
  datasetSchemaSchema,
  featureCount,
  featureNames,
  isFeature,
  isTypedColumn,
  labelColumn,
  loadSchema,
  parseSchema,
  type BooleanColumn,
  type CategoricalColumn,
  type Column,
  type ConsentColumn,
  type DatasetSchema,
  type IdColumn,
  type IgnoreColumn,
  type LabelColumn,
  type NumericColumn,
  type TypedColumn,
} from './schema.ts';
export {
  CsvFileReader,
  countLines,
  delimiterHint,
  formatIssue,
  matchColumns,
  matchHeader,
  readCsvBatches,
  readCsvRecords,
  readRowBatches,
  readRows,
  type CsvRecord,
  type CsvRow,
  type RowIssue,
} from './csv.ts';
export {
  DEFAULT_MAX_BAD_ROWS,
  concatDatasets,
  encodeRecord,
  encodeRows,
  loadDataset,
  parseNumber,
  subsetDataset,
  type BadRowLimit,
  type Dataset,
  type DatasetStats,
  type EncodeOptions,
  type LoadOptions,
  type LoadProgress,
} from './encode.ts';
export { loadSource } from './load.ts';
export { badRowSummary, describeLimit, formatIssueAt, parseBadRowLimit } from './bad-rows.ts';
export { terminalProgress, type ProgressReporter, type TerminalProgressOptions } from './progress.ts';
export {
  DATA_FORMATS,
  csvSource,
  isDatabaseUrl,
  parquetSource,
  postgresSource,
  redactUrl,
  resolveDataSource,
  type DataSource,
  type DataSourceOptions,
  type PostgresSpec,
} from './sources/index.ts';
export {
  partitionByColumn,
  partitionByColumnGroups,
  partitionDirichlet,
  partitionIid,
  type DirichletOptions,
  type GroupPartition,
} from './partition.ts';
export { trainTestSplit, type Split } from './split.ts';
export {
  BUNDLED_DATASETS,
  isBundledDatasetName,
  loadBundled,
  loadBundledSchema,
  type BundledDataset,
  type BundledDatasetName,
} from './bundled.ts';
