/**
 * The PostgreSQL source against a real server (the throw-away cluster .ci/run starts): the errors a
 * partner meets, and the read-only role docs/DATA.md documents, created and used as written there.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSource } from '../../src/data/load.ts';
import { postgresSource } from '../../src/data/sources/postgres.ts';
import { rejection } from '../helpers/errors.ts';
import { COLUMNS, POSTGRES_SKIP_REASON, POSTGRES_URL, customers, schema, writeTable } from './source-fixtures.ts';

const tolerant = { maxBadRows: Infinity };
const suffix = `${process.pid}_${Date.now() % 100000}`;
const table = `fedmark_pg_${suffix}`;

/** The read-only role block of docs/DATA.md, with its placeholders filled in for this test. */
function documentedRoleSql(role: string, database: string, schemaName: string, tableName: string): string {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/DATA.md', import.meta.url)), 'utf8');
  const block = /```sql\n-- fedmark read-only role\n([\s\S]*?)```/.exec(doc);
  if (!block) throw new Error('docs/DATA.md has no "-- fedmark read-only role" SQL block');
  return block[1]
    .replaceAll('fedmark_reader', role)
    .replaceAll('crm', database)
    .replaceAll('marketing.customers', `${schemaName}.${tableName}`)
    .replaceAll('marketing', schemaName)
    .replace(/PASSWORD '[^']*'/, "PASSWORD 'test-only'")
    .replace(/GRANT SELECT \([^)]*\)/, `GRANT SELECT (${COLUMNS.filter((c) => c !== 'notes').join(', ')})`);
}

describe.skipIf(!POSTGRES_URL)('PostgreSQL source (a real server)', () => {
  let admin: pg.Client;
  const url = POSTGRES_URL!;
  const rows = customers(400, 3);
  beforeAll(async () => {
    admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await writeTable(admin, table, rows);
  });
  afterAll(async () => {
    await admin.query(`DROP TABLE IF EXISTS ${table}`);
    await admin.query(`DROP TABLE IF EXISTS ${table}_empty`);
    await admin.end();
  });

  it('names a declared column the table lacks, but never selects the columns it does not declare', async () => {
    await admin.query(`ALTER TABLE ${table} ADD COLUMN email text DEFAULT 'private@example.org'`);
    const ds = await loadSource(postgresSource({ url, table }), schema, tolerant);
    expect(ds.n).toBeGreaterThan(200);
    await admin.query(`ALTER TABLE ${table} RENAME COLUMN bought TO purchased`);
    try {
      const err = await rejection(loadSource(postgresSource({ url, table }), schema));
      expect(err.code).toBe('DATA_HEADER_MISMATCH');
      expect(err.message).toContain(`table ${table}: table does not match schema "fixture-sources": missing declared column(s) "bought" (the label column)`);
    } finally {
      await admin.query(`ALTER TABLE ${table} RENAME COLUMN purchased TO bought`);
      await admin.query(`ALTER TABLE ${table} DROP COLUMN email`);
    }
  });

  it('requires a query to return exactly the declared columns, like a CSV header', async () => {
    const err = await rejection(loadSource(postgresSource({ url, query: `SELECT *, 1 AS extra FROM ${table}` }), schema));
    expect(err.code).toBe('DATA_HEADER_MISMATCH');
    expect(err.message).toMatch(/query result does not match schema "fixture-sources": undeclared column\(s\) "extra"/);
  });

  it('refuses a column whose type cannot hold the declared values', async () => {
    const query = `SELECT cid, consent, now() AS age, income, score, region, plan, gender, member, notes, bought FROM ${table}`;
    const err = await rejection(loadSource(postgresSource({ url, query }), schema));
    expect(err.code).toBe('DATA_COLUMN_TYPE');
    expect(err.message).toContain('column "age" is of type timestamptz in the database, which cannot hold a numeric value');
  });

  it('makes a NULL where no blank is allowed a bad row with its row number, and names the source above the limit', async () => {
    const query = `SELECT cid, consent, age, income, NULL::numeric AS score, region, plan, gender, member, notes, bought FROM ${table} ORDER BY cid`;
    const err = await rejection(loadSource(postgresSource({ url, query }), schema));
    expect(err.code).toBe('DATA_TOO_MANY_BAD_ROWS');
    expect(err.message).toMatch(/^postgres:\/\/fedmark@[^ ]+ query: \d+ bad rows/);
    expect(err.message).toMatch(/query, row 1: column "(score|plan|bought)"/);
  });

  it('names an empty table, an unknown table, a failing query and an unreachable server (without the password)', async () => {
    await admin.query(`CREATE TABLE ${table}_empty (LIKE ${table})`);
    const empty = await rejection(loadSource(postgresSource({ url, table: `${table}_empty` }), schema));
    expect(empty.code).toBe('DATA_NO_ROWS');
    expect(empty.message).toMatch(new RegExp(`table ${table}_empty: no data rows$`));
    const unknown = await rejection(loadSource(postgresSource({ url, table: 'no_such_table' }), schema));
    expect(unknown.code).toBe('DATA_DB_QUERY');
    expect(unknown.message).toContain('relation "no_such_table" does not exist');
    const bad = await rejection(loadSource(postgresSource({ url, query: 'SELEC 1' }), schema));
    expect(bad.code).toBe('DATA_DB_QUERY');
    const closed = new URL(url);
    closed.port = '1';
    closed.password = 'hunter2-secret';
    const down = await rejection(loadSource(postgresSource({ url: closed.toString(), table }), schema));
    expect(down.code).toBe('DATA_DB_UNREACHABLE');
    expect(down.message).not.toContain('hunter2');
  });

  it('reads through the documented read-only role, which can read the declared columns and write nothing', async () => {
    const role = `fedmark_reader_${suffix}`;
    const schemaName = `fedmark_mkt_${suffix}`;
    const db = (await admin.query<{ d: string }>('SELECT current_database() AS d')).rows[0].d;
    await admin.query(`CREATE SCHEMA ${schemaName}`);
    await admin.query(`CREATE TABLE ${schemaName}.customers AS SELECT *, 'secret'::text AS email FROM ${table}`);
    try {
      await admin.query(documentedRoleSql(role, db, schemaName, 'customers'));
      const asReader = new URL(url);
      asReader.username = role;
      const source = postgresSource({ url: asReader.toString(), table: `${schemaName}.customers` });
      const viaRole = await loadSource(source, schema, tolerant);
      const viaAdmin = await loadSource(postgresSource({ url, table }), schema, tolerant);
      expect(Array.from(viaRole.X)).toEqual(Array.from(viaAdmin.X));
      const reader = new pg.Client({ connectionString: asReader.toString() });
      await reader.connect();
      try {
        await expect(reader.query(`SELECT email FROM ${schemaName}.customers`)).rejects.toThrow(/permission denied/);
        await expect(reader.query(`DELETE FROM ${schemaName}.customers`)).rejects.toThrow(/read-only transaction|permission denied/);
        await expect(reader.query(`CREATE TABLE ${schemaName}.x (a int)`)).rejects.toThrow(/read-only transaction|permission denied/);
      } finally {
        await reader.end();
      }
    } finally {
      await admin.query(`DROP SCHEMA ${schemaName} CASCADE`);
      await admin.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
    }
  });
});

if (!POSTGRES_URL) {
  console.warn(`PostgreSQL source tests skipped: ${POSTGRES_SKIP_REASON}`);
  it.skip(`PostgreSQL: ${POSTGRES_SKIP_REASON}`, () => {});
}
