/**
 * Where a partner's rows come from. A source reads its rows and feeds them to the dataset builder
 * (a RowSink), so every source is validated against the same schema with the same row rules and the
 * same errors; only the column matching and the cell representation differ.
 */
import { FedmarkError } from '../../errors.ts';
import type { RowLocator, RowSink } from '../builder.ts';
import type { DatasetSchema } from '../schema.ts';

export type { RowSink } from '../builder.ts';

export interface DataSource extends RowLocator {
  /** "CSV", "Parquet", "PostgreSQL": for messages. */
  readonly kind: string;
  /** What `progress` counts. */
  readonly progressUnit: 'bytes' | 'rows';
  /** Reads every row into `sink`; calls `progress` after each chunk or batch. */
  read(schema: DatasetSchema, sink: RowSink, progress: (done: number, total: number | null) => void): Promise<void>;
}

/** How a source's column stores values, as far as validation cares. */
export type ValueKind = 'integer' | 'number' | 'text' | 'boolean' | { other: string };

/**
 * Checks that each declared, read column of a typed source (Parquet, PostgreSQL) can hold what the
 * schema declares: numbers for numeric columns (text is parsed like a CSV cell), and no dates, binary
 * or nested values anywhere. `kinds[i]` is schema column i's kind (ignored columns are not read).
 */
export function checkColumnKinds(schema: DatasetSchema, kinds: (ValueKind | null)[], where: string, storage: string): void {
  const problems: string[] = [];
  schema.columns.forEach((c, i) => {
    const kind = kinds[i];
    if (kind === null || c.role === 'ignore') return;
    const declared = 'type' in c ? c.type : c.role;
    if (typeof kind === 'object') {
      problems.push(`column "${c.name}" is ${kind.other} in ${storage}, which cannot hold a ${declared} value`);
    } else if ('type' in c && c.type === 'numeric' && kind === 'boolean') {
      problems.push(`column "${c.name}" is boolean in ${storage}, but schema "${schema.name}" declares it numeric`);
    }
  });
  if (problems.length) {
    throw new FedmarkError('DATA_COLUMN_TYPE', `${where}: ${problems.join('; ')}`, { problems });
  }
}
