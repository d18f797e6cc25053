/**
 * `fedmark simulate --data` run as the real CLI on a small CSV written here (600 bank-marketing rows
 * spread over the whole file): federated, pooled and partner-alone AUC on one hold-out, ε per partner,
 * and the errors a user meets with their own file.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { runCliAsync } from '../helpers/cli-process.ts';

const bankCsv = readFileSync(new URL('../../data/bank-marketing.csv', import.meta.url), 'utf8')
  .trimEnd()
  .split('\n');
const schema = fileURLPath('../../data/bank-marketing.schema.json');
const telcoSchema = fileURLPath('../../data/telco-churn.schema.json');

function fileURLPath(rel: string): string {
  return new URL(rel, import.meta.url).pathname;
}

const dir = mkdtempSync(join(tmpdir(), 'fedmark-simulate-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const rows = bankCsv
  .slice(1)
  .filter((_, i) => (i + 1) % 70 === 0)
  .slice(0, 600);
const csv = join(dir, 'bank.csv');
writeFileSync(csv, [bankCsv[0], ...rows].join('\n') + '\n');

/** The same rows as Parquet: numeric columns as DOUBLE, the rest as STRING. */
const parquet = join(dir, 'bank.parquet');
{
  const cells = rows.map((r) => r.split(';').map((c) => c.replace(/^"|"$/g, '')));
  const header = bankCsv[0].split(';').map((c) => c.replace(/^"|"$/g, ''));
  parquetWriteFile({
    filename: parquet,
    columnData: header.map((name, j) => {
      const numeric = cells.every((c) => c[j] !== '' && Number.isFinite(Number(c[j])));
      return { name, type: numeric ? 'DOUBLE' : 'STRING', data: cells.map((c) => (numeric ? Number(c[j]) : c[j])) };
    }) as never,
  });
}

interface Summary {
  model: string;
  partners: { name: string; holds: string; trainRows: number; holdoutRows: number }[];
  holdoutRows: number;
  auc: { federated: number; pooled: number; alone: Record<string, number> };
  targetEpsilon: number | null;
  epsilon: Record<string, number>;
}

function simulate(...args: string[]): Promise<Summary> {
  return simulateFile(csv, ...args);
}

async function simulateFile(data: string, ...args: string[]): Promise<Summary> {
  const started = performance.now();
  const r = await runCliAsync(['simulate', '--data', data, '--schema', schema, '--json', ...args], 0);
  process.stderr.write(`simulate --data ${data.split('/').pop()} ${args.join(' ')}: ${((performance.now() - started) / 1000).toFixed(1)} s wall\n`);
  expect(r.code, r.output).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Summary;
}

function expectComparison(s: Summary, partners: number, targetEpsilon: number | null): void {
  expect(s.partners).toHaveLength(partners);
  expect(s.partners.reduce((a, p) => a + p.trainRows + p.holdoutRows, 0)).toBe(600);
  expect(s.holdoutRows).toBe(s.partners.reduce((a, p) => a + p.holdoutRows, 0));
  expect(Object.keys(s.auc.alone).sort()).toEqual(s.partners.map((p) => p.name).sort());
  for (const a of [s.auc.federated, s.auc.pooled, ...Object.values(s.auc.alone)]) {
    expect(a).toBeGreaterThanOrEqual(0);
    expect(a).toBeLessThanOrEqual(1);
  }
  // The pooled baseline trains without DP on every row; on this data it clearly beats chance.
  expect(s.auc.pooled).toBeGreaterThan(0.6);
  expect(s.targetEpsilon).toBe(targetEpsilon);
  if (targetEpsilon === null) expect(s.epsilon).toEqual({});
  else {
    expect(Object.keys(s.epsilon).sort()).toEqual(s.partners.map((p) => p.name).sort());
    for (const e of Object.values(s.epsilon)) {
      expect(e).toBeGreaterThan(0);
      expect(e).toBeLessThanOrEqual(targetEpsilon);
    }
  }
}

async function fails(args: string[], code: RegExp): Promise<void> {
  const r = await runCliAsync(['simulate', '--json', ...args], 0);
  expect(r.code, r.output).toBe(2);
  expect(r.output).toMatch(code);
  expect(r.output).not.toMatch(/unexpected error/);
}

describe('fedmark simulate --data (CLI)', () => {
  it('--partition-by: one partner per value, logistic with DP and gbdt without', async () => {
    const lr = await simulate('--partition-by', 'marital', '--model', 'logistic', '--rounds', '3', '--epsilon', '3');
    expectComparison(lr, 3, 3);
    expect(lr.model).toBe('logistic');
    expect(lr.partners.map((p) => p.holds)).toEqual(['divorced', 'married', 'single']);
    // The same rows as Parquet: the same partners, hold-outs and (deterministic, non-private) baselines.
    const fromParquet = await simulateFile(parquet, '--partition-by', 'marital', '--model', 'logistic', '--rounds', '3', '--epsilon', '3');
    expectComparison(fromParquet, 3, 3);
    expect(fromParquet.partners).toEqual(lr.partners);
    expect(fromParquet.auc.pooled).toBe(lr.auc.pooled);
    expect(fromParquet.auc.alone).toEqual(lr.auc.alone);

    const trees = await simulate('--partition-by', 'marital', '--model', '{"kind":"gbdt","trees":3,"depth":2}', '--no-dp');
    expectComparison(trees, 3, null);
    expect(trees.model).toBe('gbdt');
  }, 120_000);

  it('--partners/--alpha: a seeded Dirichlet split, gbdt with DP and logistic without', async () => {
    const trees = await simulate('--partners', '3', '--alpha', '5', '--seed', '7', '--model', '{"kind":"gbdt","trees":3,"depth":2}', '--epsilon', '2');
    expectComparison(trees, 3, 2);
    const lr = await simulate('--partners', '2', '--alpha', '5', '--seed', '7', '--model', 'logistic', '--rounds', '3', '--no-dp');
    expectComparison(lr, 2, null);
    expect(lr.partners.map((p) => p.name)).toEqual(['partner-a', 'partner-b']);
  }, 120_000);

  it('without --data, --dataset still simulates the bundled data (federated AUC only)', async () => {
    const r = await runCliAsync(['simulate', '--dataset', 'telco', '--partners', '3', '--rounds', '2', '--json'], 0);
    expect(r.code, r.output).toBe(0);
    const s = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      dataset: string;
      partners: number;
      rounds: number;
      auc: number;
      epsilon: Record<string, number>;
    };
    expect(s).toMatchObject({ dataset: 'telco-churn', partners: 3, rounds: 2 });
    expect(s.auc).toBeGreaterThan(0.5);
    expect(Object.values(s.epsilon)).toHaveLength(3);
    for (const e of Object.values(s.epsilon)) expect(e).toBeLessThanOrEqual(3);
  }, 60_000);

  it('refuses a missing file, a schema mismatch, an unknown column, both split options, α ≤ 0 and unusable partitions', async () => {
    await fails(['--data', join(dir, 'missing.csv'), '--schema', schema, '--partition-by', 'marital'], /--data .*missing\.csv: no such file/);
    await fails(['--data', csv, '--schema', join(dir, 'missing.json'), '--partition-by', 'marital'], /--schema .*missing\.json: no such file/);
    await fails(['--data', csv, '--schema', telcoSchema, '--partners', '2'], /--data does not fit --schema/);
    const renamed = join(dir, 'renamed.csv');
    writeFileSync(renamed, [bankCsv[0].replace('"marital"', '"status"'), ...rows].join('\n') + '\n');
    await fails(['--data', renamed, '--schema', schema, '--partners', '2'], /--data does not fit --schema: .*marital/);
    await fails(['--data', csv, '--schema', schema, '--partition-by', 'region'], /--partition-by region: schema "bank-marketing" has no such column/);
    await fails(['--data', csv, '--schema', schema, '--partition-by', 'marital', '--partners', '3'], /do not also give --partners\/--alpha/);
    await fails(['--data', csv, '--schema', schema, '--partners', '3', '--alpha', '0'], /--alpha must be a number > 0, got 0/);
    await fails(['--data', csv, '--schema', schema, '--partners', '3', '--alpha', '-1'], /--alpha must be a number > 0/);
    await fails(['--data', csv, '--schema', schema, '--partition-by', 'job'], /partner\(s\) below 50 rows: .*student/);
    await fails(['--data', csv, '--schema', schema, '--partners', '20'], /partner\(s\) below 50 rows/);
    await fails(['--data', csv, '--schema', schema, '--partners', '60', '--alpha', '100'], /gives 60 partners; at most 50/);
    await fails(['--data', csv, '--schema', schema, '--partition-by', 'balance'], /numeric column without declared bands/);
    await fails(['--data', csv, '--schema', schema, '--partition-by', 'y'], /a label column cannot define partners/);
    await fails(['--data', csv, '--partners', '2'], /--data needs --schema/);
    await fails(['--data', csv, '--schema', schema, '--dataset', 'bank', '--partners', '2'], /give --data \(your file\) or --dataset/);
    await fails(['--partition-by', 'marital'], /--schema and --partition-by describe a --data file/);
  }, 120_000);
});
