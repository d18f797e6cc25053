/**
 * The same customer rows written as a CSV file, a Parquet file and a PostgreSQL table, with each
 * source's natural types (Parquet doubles and booleans, PostgreSQL bigint / numeric / boolean /
 * char(n)), so tests can check that every source gives the identical Dataset.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import pg from 'pg';
import { parseSchema, type DatasetSchema } from '../../src/data/schema.ts';

export const schema: DatasetSchema = parseSchema({
  name: 'fixture-sources',
  columns: [
    { name: 'cid', role: 'id' },
    { name: 'consent', role: 'consent', granted: ['yes'] },
    { name: 'age', type: 'numeric', min: 18, max: 100, sensitive: true, feature: true, groups: { edges: [0, 30, 60, 200], labels: ['<30', '30-59', '60+'] } },
    { name: 'income', type: 'numeric', min: 0, max: 100000, transform: 'log1p', missing: 'min' },
    { name: 'score', type: 'numeric', min: -1, max: 1, scale: 'centered' },
    { name: 'region', type: 'categorical', values: ['north', 'south', 'east'] },
    { name: 'plan', type: 'categorical', values: ['basic', 'pro'], unknown: 'error' },
    { name: 'gender', type: 'categorical', values: ['F', 'M'], sensitive: true },
    { name: 'member', type: 'boolean', true: ['yes'], false: ['no'] },
    { name: 'notes', role: 'ignore' },
    { name: 'bought', role: 'label', positive: ['1'], negative: ['0'] },
  ],
});

export interface Customer {
  cid: string;
  consent: 'yes' | 'no';
  age: number;
  income: number | null;
  score: number | null;
  region: string | null;
  plan: string;
  gender: string;
  member: boolean;
  notes: string;
  bought: number;
}

const REGIONS = ['north', 'south', 'east', 'west', null];
const PLANS = ['basic', 'pro', 'basic', 'pro', 'basic', 'pro', 'basic', 'gold'];

/**
 * `n` customers from a seeded generator. Some are bad on purpose in ways every source can express:
 * an undeclared plan (the column is strict), a third label value, a NULL score (missing is "error").
 */
export function customers(n: number, seed = 1): Customer[] {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)];
  return Array.from({ length: n }, (_, i) => ({
    cid: `C${String(i + 1).padStart(6, '0')}`,
    consent: rnd() < 0.1 ? 'no' : 'yes',
    age: Math.round(15 + rnd() * 80),
    income: rnd() < 0.05 ? null : Math.round(rnd() * 150000),
    score: rnd() < 0.01 ? null : Math.round((rnd() * 2.4 - 1.2) * 1000) / 1000,
    region: pick(REGIONS),
    plan: pick(PLANS),
    gender: pick(['F', 'M', 'X']),
    member: rnd() < 0.5,
    notes: i % 7 === 0 ? 'said "call me", later' : '',
    bought: rnd() < 0.01 ? 2 : rnd() < 0.3 ? 1 : 0,
  }));
}

export const COLUMNS = schema.columns.map((c) => c.name) as (keyof Customer)[];

function csvCell(v: unknown): string {
  if (v === null) return '';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  const t = String(v);
  return /[",\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeCsv(path: string, rows: Customer[]): string {
  const lines = [COLUMNS.join(','), ...rows.map((r) => COLUMNS.map((c) => csvCell(r[c])).join(','))];
  writeFileSync(path, `${lines.join('\r\n')}\r\n`);
  return path;
}

export function writeParquet(path: string, rows: Customer[], rowGroupSize = 1000): string {
  const col = <K extends keyof Customer>(name: K, type: 'STRING' | 'DOUBLE' | 'INT64' | 'BOOLEAN' | 'INT32', map = (v: Customer[K]): unknown => v) => ({
    name,
    type,
    data: rows.map((r) => map(r[name])),
  });
  parquetWriteFile({
    filename: path,
    rowGroupSize,
    columnData: [
      col('cid', 'STRING'),
      col('consent', 'STRING'),
      col('age', 'DOUBLE'),
      col('income', 'INT64', (v) => (v === null ? null : BigInt(v as number))),
      col('score', 'DOUBLE'),
      col('region', 'STRING'),
      col('plan', 'STRING'),
      col('gender', 'STRING'),
      col('member', 'BOOLEAN'),
      col('notes', 'STRING'),
      col('bought', 'INT32'),
    ] as never,
  });
  return path;
}

export const TABLE_DDL = `(cid text PRIMARY KEY, consent varchar(3), age double precision, income bigint, score numeric(6,3),
  region text, plan text, gender char(1), member boolean, notes text, bought integer)`;

export async function writeTable(client: pg.Client, table: string, rows: Customer[]): Promise<void> {
  await client.query(`DROP TABLE IF EXISTS ${table}`);
  await client.query(`CREATE TABLE ${table} ${TABLE_DDL}`);
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    const values: unknown[] = [];
    const tuples = chunk.map((r, k) => `(${COLUMNS.map((c, j) => `$${k * COLUMNS.length + j + 1}`).join(',')})`);
    for (const r of chunk) for (const c of COLUMNS) values.push(r[c]);
    await client.query(`INSERT INTO ${table} (${COLUMNS.join(',')}) VALUES ${tuples.join(',')}`, values);
  }
}

/** The throw-away server .ci/run starts, or null with the reason the tests print when skipping. */
export const POSTGRES_URL = process.env.FEDMARK_TEST_POSTGRES_URL ?? null;
export const POSTGRES_SKIP_REASON = POSTGRES_URL
  ? null
  : 'FEDMARK_TEST_POSTGRES_URL is not set: .ci/run starts a throw-away PostgreSQL and sets it; set it to a scratch database to run these tests locally';
