/**
 * One measurement in a fresh process, so peak RSS belongs to it alone:
 *   child.ts load  csv|parquet|postgres <path|url> [table]   → loadSource into a Dataset
 *   child.ts plain csv|parquet|postgres <path|url> [table]   → the same source read without parsing into a Dataset
 * Prints one JSON line: { seconds, maxRssBytes, rows, d? }.
 */
import { open } from 'node:fs/promises';
import { asyncBufferFromFile, parquetMetadataAsync, parquetScan } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { loadSource } from '../../src/data/load.ts';
import { loadSchema } from '../../src/data/schema.ts';
import { csvSource, parquetSource, postgresSource } from '../../src/data/sources/index.ts';

const [mode, kind, where, table] = process.argv.slice(2);

/** CSV floor: read every byte and count the lines (what any parser must at least do). */
async function plainCsv(path: string): Promise<number> {
  const fh = await open(path, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let lines = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return lines - 1;
      for (let i = buf.indexOf(10); i >= 0 && i < bytesRead; i = buf.indexOf(10, i + 1)) lines++;
    }
  } finally {
    await fh.close();
  }
}

/** Parquet floor: decode the columns the loader reads, row group by row group, and drop them. */
async function plainParquet(path: string, columns: string[]): Promise<number> {
  const file = await asyncBufferFromFile(path);
  const metadata = await parquetMetadataAsync(file);
  const scan = await parquetScan({ file, metadata, columns, compressors });
  let rows = 0;
  for (const { rowStart, rowEnd } of scan.ranges) {
    await Promise.all(columns.map((column) => scan.readColumn({ column, rowStart, rowEnd })));
    rows += rowEnd - rowStart;
  }
  return rows;
}

/** PostgreSQL floor: the loader's SELECT through the same cursor, rows dropped. */
async function plainPostgres(url: string, sql: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const cursor = client.query(new Cursor(sql, [], { rowMode: 'array' }));
    let rows = 0;
    for (;;) {
      const batch = await cursor.read(10_000);
      if (batch.length === 0) break;
      rows += batch.length;
    }
    await cursor.close();
    return rows;
  } finally {
    await client.end();
  }
}

const schema = await loadSchema(BUNDLED_DATASETS['bank-marketing'].schema);
const read = schema.columns.filter((c) => c.role !== 'ignore').map((c) => c.name);
const started = performance.now();
let rows: number;
let d: number | undefined;
if (mode === 'load') {
  const source = kind === 'csv' ? csvSource(where) : kind === 'parquet' ? parquetSource(where) : postgresSource({ url: where, table });
  const ds = await loadSource(source, schema);
  rows = ds.n;
  d = ds.d;
} else if (kind === 'csv') {
  rows = await plainCsv(where);
} else if (kind === 'parquet') {
  rows = await plainParquet(where, read);
} else {
  rows = await plainPostgres(where, `SELECT ${read.map((c) => `"${c}"`).join(', ')} FROM ${table}`);
}
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024, rows, d })}\n`);
