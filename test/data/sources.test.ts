import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../../src/data/dataset.ts';
import { loadSource } from '../../src/data/load.ts';
import { parseSchema } from '../../src/data/schema.ts';
import { csvSource, parquetSource, postgresSource, resolveDataSource } from '../../src/data/sources/index.ts';
import { rejection } from '../helpers/errors.ts';
import { POSTGRES_SKIP_REASON, POSTGRES_URL, customers, schema, tempDir, writeCsv, writeParquet, writeTable } from './source-fixtures.ts';

const dir = tempDir('fedmark-sources-');
const rows = customers(3000, 7);
const csvPath = writeCsv(join(dir, 'customers.csv'), rows);
const parquetPath = writeParquet(join(dir, 'customers.parquet'), rows, 700);
const tolerant = { maxBadRows: Infinity };

/** Everything but the line numbers of bad rows, which count lines in a CSV and rows elsewhere. */
function comparable(ds: Dataset, lineOffset: number) {
  return {
    ...ds,
    X: Array.from(ds.X),
    stats: { ...ds.stats, badRows: ds.stats.badRows.map((b) => ({ ...b, line: b.line - lineOffset })) },
  };
}

describe('every source gives the identical Dataset for the same rows', () => {
  it('CSV and Parquet (one file, several row groups, and a directory of parts)', async () => {
    const fromCsv = await loadSource(csvSource(csvPath), schema, tolerant);
    const fromParquet = await loadSource(parquetSource(parquetPath), schema, tolerant);
    expect(fromCsv.stats.badRowCount).toBeGreaterThan(20); // the fixture's bad rows are really there
    expect(fromCsv.stats.excludedNoConsent).toBeGreaterThan(100);
    expect(comparable(fromParquet, 0)).toEqual(comparable(fromCsv, 1));

    const parts = join(dir, 'parts');
    mkdirSync(parts);
    writeParquet(join(parts, 'part-000.parquet'), rows.slice(0, 1200));
    writeParquet(join(parts, 'part-001.parquet'), rows.slice(1200));
    const fromParts = await loadSource(resolveDataSource({ data: parts }), schema, tolerant);
    expect(Array.from(fromParts.X)).toEqual(Array.from(fromCsv.X));
    expect(fromParts.stats.badRowCount).toBe(fromCsv.stats.badRowCount);
  });

  it('withdrawal and consent filters drop the same rows from every source', async () => {
    const excludeIds = new Set(rows.filter((_, i) => i % 10 === 3).map((r) => r.cid));
    const a = await loadSource(csvSource(csvPath), schema, { ...tolerant, excludeIds });
    const b = await loadSource(parquetSource(parquetPath), schema, { ...tolerant, excludeIds });
    expect(a.stats.excludedWithdrawn).toBeGreaterThan(200);
    expect(comparable(b, 0)).toEqual(comparable(a, 1));
    expect(a.ids!.some((id) => excludeIds.has(id))).toBe(false);
  });

  describe.skipIf(!POSTGRES_URL)('PostgreSQL (a real server)', () => {
    let client: pg.Client;
    const table = `fedmark_src_${process.pid}`;
    beforeAll(async () => {
      client = new pg.Client({ connectionString: POSTGRES_URL! });
      await client.connect();
      await writeTable(client, table, rows);
    });
    afterAll(async () => {
      await client.query(`DROP TABLE IF EXISTS ${table}`);
      await client.end();
    });

    it('a table and a query give the Dataset the CSV gives (native boolean, bigint, numeric, char(n) columns)', async () => {
      const fromCsv = await loadSource(csvSource(csvPath), schema, tolerant);
      const fromTable = await loadSource(postgresSource({ url: POSTGRES_URL!, table, batchRows: 512 }), schema, tolerant);
      expect(comparable(fromTable, 0)).toEqual(comparable(fromCsv, 1));
      const query = `SELECT cid, consent, age, income, score, region, plan, gender, member, notes, bought FROM ${table} ORDER BY cid;`;
      const fromQuery = await loadSource(resolveDataSource({ data: POSTGRES_URL!, query }), schema, tolerant);
      expect(comparable(fromQuery, 0)).toEqual(comparable(fromCsv, 1));
    });

    it('applies withdrawals the same way', async () => {
      const excludeIds = new Set(rows.filter((_, i) => i % 9 === 0).map((r) => r.cid));
      const a = await loadSource(csvSource(csvPath), schema, { ...tolerant, excludeIds });
      const b = await loadSource(postgresSource({ url: POSTGRES_URL!, table }), schema, { ...tolerant, excludeIds });
      expect(comparable(b, 0)).toEqual(comparable(a, 1));
    });
  });
  if (!POSTGRES_URL) {
    console.warn(`PostgreSQL source tests skipped: ${POSTGRES_SKIP_REASON}`);
    it.skip(`PostgreSQL: ${POSTGRES_SKIP_REASON}`, () => {});
  }
});

describe('Parquet errors are the CSV errors', () => {
  const write = (name: string, columnData: { name: string; type: string; data: unknown[] }[]) => {
    const p = join(dir, name);
    parquetWriteFile({ filename: p, columnData: columnData as never });
    return p;
  };
  const small = parseSchema({
    name: 'small',
    columns: [
      { name: 'x', type: 'numeric', min: 0, max: 10 },
      { name: 'c', type: 'categorical', values: ['a', 'b'] },
      { name: 'y', role: 'label', positive: ['1'], negative: ['0'] },
    ],
  });
  const x = { name: 'x', type: 'DOUBLE', data: [1, 2, null, 4] };
  const c = { name: 'c', type: 'STRING', data: ['a', 'b', 'a', 'zz'] };
  const y = { name: 'y', type: 'STRING', data: ['1', '0', '1', '0'] };

  it('names a missing declared column and an undeclared one', async () => {
    const missing = await rejection(loadSource(parquetSource(write('missing.parquet', [x, c])), small));
    expect(missing.code).toBe('DATA_HEADER_MISMATCH');
    expect(missing.message).toMatch(/missing\.parquet: column list does not match schema "small": missing declared column\(s\) "y" \(the label column\)/);
    const extra = await rejection(loadSource(parquetSource(write('extra.parquet', [x, c, y, { name: 'email', type: 'STRING', data: ['', '', '', ''] }])), small));
    expect(extra.message).toMatch(/undeclared column\(s\) "email"/);
  });

  it('refuses a column whose type cannot hold the declared values', async () => {
    const ts = { name: 'x', type: 'TIMESTAMP', data: [new Date(0), new Date(1), new Date(2), new Date(3)] };
    const e1 = await rejection(loadSource(parquetSource(write('ts.parquet', [ts, c, y])), small));
    expect(e1.code).toBe('DATA_COLUMN_TYPE');
    expect(e1.message).toMatch(/ts\.parquet: column "x" is TIMESTAMP/);
    const bool = { name: 'x', type: 'BOOLEAN', data: [true, false, true, false] };
    const e2 = await rejection(loadSource(parquetSource(write('bool.parquet', [bool, c, y])), small));
    expect(e2.message).toMatch(/column "x" is boolean in the Parquet file, but schema "small" declares it numeric/);
  });

  it('makes a NULL where the schema allows no blank a bad row, with its row number', async () => {
    const p = write('null.parquet', [x, c, y]);
    const ds = await loadSource(parquetSource(p), small, tolerant);
    expect(ds.n).toBe(3);
    expect(ds.stats.badRows).toEqual([{ line: 3, column: 'x', value: '', message: 'blank value in a numeric column (missing policy is "error")' }]);
    const strict = await rejection(loadSource(parquetSource(p), small, { strict: true }));
    expect(strict.message).toBe(`${p} row 3: column "x": blank value in a numeric column (missing policy is "error") (value "")`);
    const limit = await rejection(loadSource(parquetSource(p), small));
    expect(limit.code).toBe('DATA_TOO_MANY_BAD_ROWS');
    expect(limit.message).toContain(`${p}: 1 bad row (`);
  });

  it('names files that are not Parquet, missing, empty, or hold no rows', async () => {
    const notParquet = join(dir, 'fake.parquet');
    writeFileSync(notParquet, 'x,c,y\n1,a,1\n');
    expect((await rejection(loadSource(parquetSource(notParquet), small))).code).toBe('DATA_PARQUET_INVALID');
    expect((await rejection(loadSource(parquetSource(join(dir, 'nope.parquet')), small))).code).toBe('DATA_FILE_NOT_FOUND');
    const emptyDir = join(dir, 'empty-dir');
    mkdirSync(emptyDir);
    expect((await rejection(loadSource(parquetSource(emptyDir), small))).message).toContain('holds no *.parquet files');
    const none = write('none.parquet', [
      { ...x, data: [] },
      { ...c, data: [] },
      { ...y, data: [] },
    ]);
    const e = await rejection(loadSource(parquetSource(none), small));
    expect(e.code).toBe('DATA_NO_ROWS');
    expect(e.message).toBe(`${none}: no data rows`);
  });
});

describe('resolveDataSource (what --data means)', () => {
  it('picks the source from the name, keeps CSV the default, and refuses contradictory options', () => {
    expect(resolveDataSource({ data: 'customers.csv' }).kind).toBe('CSV');
    expect(resolveDataSource({ data: 'customers.txt' }).kind).toBe('CSV');
    expect(resolveDataSource({ data: 'customers.parquet' }).kind).toBe('Parquet');
    expect(resolveDataSource({ data: 'export.bin', format: 'parquet' }).kind).toBe('Parquet');
    expect(resolveDataSource({ data: dir }).kind).toBe('Parquet');
    const db = resolveDataSource({ data: 'postgres://reader:s3cret@db.example:5432/crm', table: 'marketing.customers' });
    expect(db.kind).toBe('PostgreSQL');
    expect(db.name).toBe('postgres://reader@db.example:5432/crm table marketing.customers');
    expect(() => resolveDataSource({ data: 'postgres://db/crm' })).toThrow(/exactly one of a table \(--table\) or a query \(--query\)/);
    expect(() => resolveDataSource({ data: 'postgres://db/crm', table: 't', query: 'select 1' })).toThrow(/exactly one/);
    expect(() => resolveDataSource({ data: 'customers.csv', table: 't' })).toThrow(/need a postgres:\/\/ connection URL/);
    expect(() => resolveDataSource({ data: 'x', format: 'xlsx' as never })).toThrow(/--data-format must be one of csv, parquet/);
  });
});
