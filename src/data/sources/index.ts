/**
 * Naming a data source: what `--data` (with `--table` / `--query` / `--data-format`) means.
 *
 *   --data customers.csv                         CSV (any other extension, too: CSV stays the default)
 *   --data customers.parquet | exports/customers/ Parquet: one file, or a directory of *.parquet parts
 *   --data postgres://reader@db/crm --table marketing.customers
 *   --data postgres://reader@db/crm --query "SELECT … FROM …"
 *   --data-format csv|parquet                    for files whose name does not say
 */
import { statSync } from 'node:fs';
import { FedmarkError } from '../../errors.ts';
import { csvSource } from './csv.ts';
import { parquetSource } from './parquet.ts';
import { postgresSource, redactUrl } from './postgres.ts';
import type { DataSource } from './source.ts';

export { checkColumnKinds, type DataSource, type RowSink, type ValueKind } from './source.ts';
export { csvSource } from './csv.ts';
export { parquetSource } from './parquet.ts';
export { postgresSource, redactUrl, type PostgresSpec } from './postgres.ts';

export interface DataSourceOptions {
  /** A file or directory path, or a postgres:// / postgresql:// connection URL. */
  data: string;
  table?: string;
  query?: string;
  format?: 'csv' | 'parquet';
}

export const DATA_FORMATS = ['csv', 'parquet'] as const;

export function isDatabaseUrl(data: string): boolean {
  return /^postgres(ql)?:\/\//i.test(data);
}

export function resolveDataSource(o: DataSourceOptions): DataSource {
  if (isDatabaseUrl(o.data)) {
    if (o.format) throw new FedmarkError('DATA_SOURCE_OPTIONS', `${redactUrl(o.data)}: --data-format applies to files, not to a database`);
    return postgresSource({ url: o.data, table: o.table, query: o.query });
  }
  if (o.table || o.query) {
    throw new FedmarkError('DATA_SOURCE_OPTIONS', `${o.data}: --table and --query need a postgres:// connection URL as --data`);
  }
  if (o.format !== undefined && !(DATA_FORMATS as readonly string[]).includes(o.format)) {
    throw new FedmarkError('DATA_SOURCE_OPTIONS', `--data-format must be one of ${DATA_FORMATS.join(', ')}, got "${o.format}"`);
  }
  const parquet = o.format ? o.format === 'parquet' : /\.(parquet|parq|pq)$/i.test(o.data) || isDirectory(o.data);
  return parquet ? parquetSource(o.data) : csvSource(o.data);
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
