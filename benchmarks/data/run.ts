/**
 * Data loading benchmark: load time and peak RSS of a bank-marketing Dataset from CSV, Parquet and
 * PostgreSQL at several sizes (rows replicated from data/bank-marketing.csv), each next to a plain
 * read of the same source, and the CSV next to Python's csv.reader + float() on the same file. All
 * measurements of one size run back to back in fresh processes, so the ratios are side by side.
 *
 *   npx tsx benchmarks/data/run.ts                       # 1e5, 1e6, 5e6 rows → benchmarks/results/data-load.json
 *   npx tsx benchmarks/data/run.ts --sizes 10000000 --sources csv --out benchmarks/results/data-load-10m.json
 *
 * Options: --sizes a,b,c  --sources csv,parquet,postgres  --reps N (per measurement, median; default
 * 3 below 10⁶ rows, else 1)  --dir /tmp/…  --keep (keep generated files and tables)  --out FILE.
 * PostgreSQL needs FEDMARK_BENCH_POSTGRES_URL (or FEDMARK_TEST_POSTGRES_URL) naming a scratch database
 * whose server can read files under --dir (COPY FROM a file); without one it is skipped, with a note.
 * Generated files go under /tmp and are never committed.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ParquetWriter, fileWriter, schemaFromColumnData } from 'hyparquet-writer';
import pg from 'pg';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { loadSchema } from '../../src/data/schema.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100000,1000000,5000000' },
    sources: { type: 'string', default: 'csv,parquet,postgres' },
    reps: { type: 'string' },
    dir: { type: 'string', default: '/tmp/fedmark-bench-data' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string', default: join(root, 'benchmarks/results/data-load.json') },
  },
});
const sizes = args.sizes!.split(',').map(Number);
const sources = new Set(args.sources!.split(','));
const dir = args.dir!;
mkdirSync(dir, { recursive: true });
const pgUrl = process.env.FEDMARK_BENCH_POSTGRES_URL ?? process.env.FEDMARK_TEST_POSTGRES_URL ?? null;
const bank = BUNDLED_DATASETS['bank-marketing'];
const schema = await loadSchema(bank.schema);
const [header, ...body] = readFileSync(bank.csv, 'utf8').split('\n').filter((l) => l.length > 0);

function writeCsv(path: string, n: number): void {
  const fd = openSync(path, 'w');
  writeSync(fd, `${header}\n`);
  const copy = `${body.join('\n')}\n`;
  let left = n;
  for (; left >= body.length; left -= body.length) writeSync(fd, copy);
  if (left > 0) writeSync(fd, `${body.slice(0, left).join('\n')}\n`);
  closeSync(fd);
}

/** The bank rows as typed columns: integers for numeric columns, strings otherwise (quotes removed). */
function bankColumns() {
  const names = header.split(';').map((h) => h.replace(/"/g, ''));
  const cells = body.map((l) => l.split(';').map((c) => c.replace(/"/g, '')));
  return names.map((name, j) => {
    const numeric = schema.columns.find((c) => c.name === name && 'type' in c && c.type === 'numeric') || name === 'duration';
    return { name, numeric, data: cells.map((r) => (numeric ? Number(r[j]) : r[j])) };
  });
}

/** Parquet as a warehouse writes it: snappy, dictionary strings, row groups of 131,072 rows. */
function writeParquet(path: string, n: number): void {
  const base = bankColumns();
  const group = 131_072;
  const batch = (start: number, count: number) =>
    base.map((c) => ({
      name: c.name,
      type: c.numeric ? ('INT32' as const) : ('STRING' as const),
      nullable: false,
      data: Array.from({ length: count }, (_, k) => c.data[(start + k) % c.data.length]),
    }));
  const first = batch(0, Math.min(group, n));
  const writer = new ParquetWriter({ writer: fileWriter(path), schema: schemaFromColumnData({ columnData: first as never }) });
  for (let start = 0; start < n; start += group) {
    const count = Math.min(group, n - start);
    writer.write({ columnData: (start === 0 ? first : batch(start, count)) as never, rowGroupSize: group });
  }
  writer.finish();
}

async function writeTable(table: string, csvPath: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl! });
  await client.connect();
  try {
    const cols = header.split(';').map((h) => h.replace(/"/g, ''));
    const numeric = new Set(bankColumns().filter((c) => c.numeric).map((c) => c.name));
    await client.query(`DROP TABLE IF EXISTS ${table}`);
    await client.query(`CREATE TABLE ${table} (${cols.map((c) => `"${c}" ${numeric.has(c) ? 'integer' : 'text'}`).join(', ')})`);
    await client.query(`COPY ${table} FROM '${csvPath}' WITH (FORMAT csv, HEADER true, DELIMITER ';')`);
    await client.query(`ANALYZE ${table}`);
  } finally {
    await client.end();
  }
}

interface Run {
  seconds: number;
  maxRssBytes: number;
  rows: number;
  d?: number;
}

function measure(cmd: string, argv: string[]): Run {
  const out = execFileSync(cmd, argv, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop()!) as Run;
}

const node = (mode: string, kind: string, where: string, table?: string) =>
  measure(process.execPath, ['--import', 'tsx', join(here, 'child.ts'), mode, kind, where, ...(table ? [table] : [])]);
const python = (csvPath: string) => measure('python3', [join(here, 'python_csv.py'), csvPath, bank.schema]);

function median(runs: Run[]): Run & { allSeconds: number[] } {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  return { ...sorted[Math.floor(sorted.length / 2)], maxRssBytes: Math.max(...runs.map((r) => r.maxRssBytes)), allSeconds: runs.map((r) => r.seconds) };
}

const results: Record<string, unknown>[] = [];
const notes: string[] = [];
if (sources.has('postgres') && !pgUrl) notes.push('PostgreSQL skipped: set FEDMARK_BENCH_POSTGRES_URL (or FEDMARK_TEST_POSTGRES_URL)');
for (const n of sizes) {
  const reps = Number(args.reps ?? (n < 1_000_000 ? 3 : 1));
  const csvPath = join(dir, `bank-${n}.csv`);
  const parquetPath = join(dir, `bank-${n}.parquet`);
  const table = `fedmark_bench_${n}`;
  process.stderr.write(`== ${n} rows: generating\n`);
  if (!existsSync(csvPath)) writeCsv(csvPath, n);
  if (sources.has('parquet') && !existsSync(parquetPath)) writeParquet(parquetPath, n);
  if (sources.has('postgres') && pgUrl) await writeTable(table, csvPath);
  const row: Record<string, unknown> = { rows: n, csvBytes: statSync(csvPath).size, reps };
  const sideBySide: Record<string, Run[]> = {};
  const add = (key: string, run: () => Run) => {
    process.stderr.write(`   ${key}\n`);
    (sideBySide[key] ??= []).push(run());
  };
  for (let r = 0; r < reps; r++) {
    if (sources.has('csv')) {
      add('python', () => python(csvPath));
      add('csvPlain', () => node('plain', 'csv', csvPath));
      add('csvLoad', () => node('load', 'csv', csvPath));
    }
    if (sources.has('parquet')) {
      add('parquetPlain', () => node('plain', 'parquet', parquetPath));
      add('parquetLoad', () => node('load', 'parquet', parquetPath));
    }
    if (sources.has('postgres') && pgUrl) {
      add('postgresPlain', () => node('plain', 'postgres', pgUrl, table));
      add('postgresLoad', () => node('load', 'postgres', pgUrl, table));
    }
  }
  for (const [key, runs] of Object.entries(sideBySide)) row[key] = median(runs);
  const load = (k: string) => row[k] as (Run & { d: number }) | undefined;
  const d = load('csvLoad')?.d ?? load('parquetLoad')?.d ?? load('postgresLoad')?.d ?? 53;
  row.matrixBytes = n * d * 4;
  const ratio = (a: string, b: string) => (row[a] && row[b] ? (row[a] as Run).seconds / (row[b] as Run).seconds : null);
  row.ratios = {
    csvLoadVsPython: ratio('csvLoad', 'python'),
    csvLoadVsPlain: ratio('csvLoad', 'csvPlain'),
    parquetLoadVsPlain: ratio('parquetLoad', 'parquetPlain'),
    postgresLoadVsPlain: ratio('postgresLoad', 'postgresPlain'),
    csvRssVsMatrix: load('csvLoad') ? load('csvLoad')!.maxRssBytes / (n * d * 4) : null,
  };
  results.push(row);
  process.stderr.write(`${JSON.stringify(row.ratios)}\n`);
  if (!args.keep) {
    rmSync(csvPath, { force: true });
    rmSync(parquetPath, { force: true });
    if (sources.has('postgres') && pgUrl) {
      const client = new pg.Client({ connectionString: pgUrl });
      await client.connect();
      await client.query(`DROP TABLE IF EXISTS ${table}`);
      await client.end();
    }
  }
}

const report = {
  benchmark: 'data-load',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, totalMemBytes: totalmem(), node: process.version, loadavgAtEnd: loadavg() },
  dataset: 'bank-marketing rows replicated (data/bank-marketing.csv, ";"-separated, quoted strings); 16 used columns → d = 53',
  method:
    'each figure is a fresh process (node --import tsx benchmarks/data/child.ts, python3 benchmarks/data/python_csv.py); seconds exclude process start; maxRssBytes is the process peak (getrusage); measurements of one size run back to back; plain = the same source read without building a Dataset (CSV: bytes read and lines counted; Parquet: the used columns decoded; PostgreSQL: the same SELECT through the same cursor)',
  notes,
  results,
};
writeFileSync(args.out!, `${JSON.stringify(report, null, 2)}\n`);
process.stderr.write(`wrote ${args.out}\n`);
