/** Loading a Dataset from any data source: one builder, one set of row rules, one set of errors. */
import { DatasetBuilder } from './builder.ts';
import type { Dataset, LoadOptions } from './dataset.ts';
import { loadSchema, type DatasetSchema } from './schema.ts';
import type { DataSource } from './sources/source.ts';

/**
 * Streams `source` through the schema into a Dataset. A source without data rows, or whose rows are
 * all excluded or bad, is an error naming it; so is a share of bad rows above `maxBadRows`.
 */
export async function loadSource(source: DataSource, schema: DatasetSchema | string, options: LoadOptions = {}): Promise<Dataset> {
  const s = typeof schema === 'string' ? await loadSchema(schema) : schema;
  const builder = new DatasetBuilder(s, source, options);
  const report = options.onProgress;
  await source.read(
    s,
    builder,
    report ? (done, total) => report({ source: source.name, rows: builder.stats.rowsRead, done, total, unit: source.progressUnit }) : () => {},
  );
  return builder.finish(true);
}
