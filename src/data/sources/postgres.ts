/**
 * A PostgreSQL table or query as a data source (node-postgres, streamed with pg-cursor in batches so
 * memory holds one batch of rows). Everything runs in one REPEATABLE READ READ ONLY transaction: the
 * row count that sizes the arrays, the column check and the rows all see the same snapshot, and the
 * session cannot write even if the role could (docs/DATA.md has the read-only role to use).
 *
 * A table is read as `SELECT <declared columns> FROM table [ORDER BY id]`: its other columns are never
 * selected (column-level grants work), and ordering by the id column, when the schema has one, makes
 * the row order — and so a seeded hold-out split — the same on every run. A query's result columns
 * must match the schema exactly, like a CSV header.
 */
import pg from 'pg';
import Cursor from 'pg-cursor';
import { FedmarkError } from '../../errors.ts';
import { ValueCells } from '../cells.ts';
import { matchColumns } from '../csv.ts';
import type { DatasetSchema } from '../schema.ts';
import { checkColumnKinds, type DataSource, type ValueKind } from './source.ts';

export interface PostgresSpec {
  /** postgres://user@host:port/database?sslmode=… — prefer PGPASSWORD or ~/.pgpass over a password here. */
  url: string;
  /** A table or view, optionally schema-qualified, in SQL syntax (`marketing.customers`, `"Customers"`). */
  table?: string;
  /** A SELECT whose result columns are the schema's columns. */
  query?: string;
  /** Rows per cursor read. Default 10,000. */
  batchRows?: number;
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/:\/\/([^:@/]*):[^@/]*@/, '://$1@');
  }
}

const INTEGER_TYPES = new Set(['int2', 'int4', 'int8', 'oid']);

/** A PostgreSQL type, by its pg_type category (enums and text-like types are text; domains follow their base). */
function pgKind(typname: string, category: string): ValueKind {
  if (category === 'B') return 'boolean';
  if (category === 'N') return INTEGER_TYPES.has(typname) ? 'integer' : 'number';
  if (category === 'S' || category === 'E' || typname === 'unknown') return 'text';
  return { other: `of type ${typname}` };
}

function dbError(name: string, err: unknown, connecting: boolean): FedmarkError {
  if (err instanceof FedmarkError) return err;
  const e = err as Error & { code?: string };
  const message = e?.message ?? String(err);
  if (connecting || e.code === '28P01' || e.code === '28000' || e.code === '3D000') {
    return new FedmarkError('DATA_DB_UNREACHABLE', `${name}: cannot connect to PostgreSQL (${message})`, { pgCode: e.code });
  }
  if (e.code === '42501') {
    return new FedmarkError('DATA_DB_QUERY', `${name}: ${message} (the reading role needs SELECT on the declared columns; see docs/DATA.md)`, { pgCode: e.code });
  }
  return new FedmarkError('DATA_DB_QUERY', `${name}: ${message}`, { pgCode: e.code });
}

export function postgresSource(spec: PostgresSpec): DataSource {
  if (Boolean(spec.table) === Boolean(spec.query)) {
    throw new FedmarkError('DATA_SOURCE_OPTIONS', `${redactUrl(spec.url)}: give exactly one of a table (--table) or a query (--query)`);
  }
  const name = `${redactUrl(spec.url)} ${spec.table ? `table ${spec.table}` : 'query'}`;
  const batchRows = spec.batchRows ?? 10_000;
  return {
    kind: 'PostgreSQL',
    name,
    progressUnit: 'rows',
    at: (line) => `${name}, row ${line}`,
    async read(schema: DatasetSchema, sink, progress) {
      const client = new pg.Client({ connectionString: spec.url, application_name: 'fedmark', connectionTimeoutMillis: 15_000 });
      try {
        await client.connect();
      } catch (err) {
        await client.end().catch(() => undefined);
        throw dbError(name, err, true);
      }
      try {
        await client.query('BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const { sql, map, kinds } = spec.table ? await describeTable(client, spec.table, schema, name) : await describeQuery(client, spec.query!, schema, name);
        checkColumnKinds(schema, kinds, name, 'the database');
        const counted = await client.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}\n) AS fedmark_source`);
        const total = Number(counted.rows[0].n);
        sink.expect(total);
        const cursor = client.query(new Cursor<unknown[]>(sql, [], { rowMode: 'array' }));
        const cells = new ValueCells(map);
        let line = 0;
        for (;;) {
          const rows = await cursor.read(batchRows);
          if (rows.length === 0) break;
          for (const r of rows) {
            cells.set(r);
            sink.row(cells, ++line);
          }
          progress(line, total);
        }
        await cursor.close();
        await client.query('COMMIT');
      } catch (err) {
        throw dbError(name, err, false);
      } finally {
        await client.end().catch(() => undefined);
      }
    },
  };
}

interface Described {
  sql: string;
  /** map[i]: position of schema column i in a result row (−1 when not selected). */
  map: Int32Array;
  kinds: (ValueKind | null)[];
}

async function describeTable(client: pg.Client, table: string, schema: DatasetSchema, name: string): Promise<Described> {
  const rel = await client.query<{ oid: string; relname: string }>('SELECT $1::regclass::oid AS oid, $1::regclass::text AS relname', [table]);
  const { oid, relname } = rel.rows[0];
  const cols = await client.query<{ attname: string; typname: string; typcategory: string }>(
    `SELECT a.attname, t.typname, t.typcategory FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [oid],
  );
  const names = cols.rows.map((c) => c.attname);
  const inTable = matchColumns(names, schema, name, 'table', true);
  const read = schema.columns.map((c, i) => (c.role === 'ignore' ? -1 : i)).filter((i) => i >= 0);
  const map = new Int32Array(schema.columns.length).fill(-1);
  read.forEach((i, k) => (map[i] = k));
  const kinds = schema.columns.map((c, i) => {
    const col = cols.rows[inTable[i]];
    return c.role === 'ignore' ? null : pgKind(col.typname, col.typcategory);
  });
  const id = schema.columns.find((c) => c.role === 'id');
  const list = read.map((i) => client.escapeIdentifier(schema.columns[i].name)).join(', ');
  const sql = `SELECT ${list} FROM ${relname}${id ? ` ORDER BY ${client.escapeIdentifier(id.name)}` : ''}`;
  return { sql, map, kinds };
}

async function describeQuery(client: pg.Client, query: string, schema: DatasetSchema, name: string): Promise<Described> {
  const sql = query.trim().replace(/;\s*$/, '');
  const probe = await client.query({ text: `SELECT * FROM (${sql}\n) AS fedmark_source LIMIT 0`, rowMode: 'array' });
  const map = matchColumns(probe.fields.map((f) => f.name), schema, name, 'query result');
  const types = await client.query<{ oid: number; typname: string; typcategory: string }>(
    'SELECT oid::int AS oid, typname, typcategory FROM pg_type WHERE oid = ANY($1::oid[])',
    [probe.fields.map((f) => f.dataTypeID)],
  );
  const byOid = new Map(types.rows.map((t) => [t.oid, t]));
  const kinds = schema.columns.map((c, i) => {
    if (c.role === 'ignore') return null;
    const t = byOid.get(probe.fields[map[i]].dataTypeID);
    return t ? pgKind(t.typname, t.typcategory) : { other: `of type oid ${probe.fields[map[i]].dataTypeID}` };
  });
  return { sql, map, kinds };
}
