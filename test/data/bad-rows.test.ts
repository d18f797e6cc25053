/**
 * Rows dropped for bad values are said on the terminal and fail the load above a limit; sources
 * without data rows fail naming the source (issue 11, item 12).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadPartnerData } from '../../cli/partner-data.ts';
import { badRowSummary, parseBadRowLimit } from '../../src/data/bad-rows.ts';
import { loadDataset } from '../../src/data/encode.ts';
import { loadSource } from '../../src/data/load.ts';
import { terminalProgress } from '../../src/data/progress.ts';
import { parseSchema } from '../../src/data/schema.ts';
import { csvSource } from '../../src/data/sources/csv.ts';
import { rejection } from '../helpers/errors.ts';
import { tempDir } from './source-fixtures.ts';

const dir = tempDir('fedmark-badrows-');
const schema = parseSchema({
  name: 'campaign',
  columns: [
    { name: 'x', type: 'numeric', min: 0, max: 100 },
    { name: 'y', role: 'label', positive: ['yes'], negative: ['no'] },
  ],
});

/** `n` rows whose label is a third value ("unknown") on every row `i` with `bad(i)`. */
function file(name: string, n: number, bad: (i: number) => boolean): string {
  const lines = ['x,y'];
  for (let i = 0; i < n; i++) lines.push(`${i % 100},${bad(i) ? 'unknown' : i % 3 ? 'no' : 'yes'}`);
  const p = join(dir, name);
  writeFileSync(p, `${lines.join('\n')}\n`);
  return p;
}

afterEach(() => vi.restoreAllMocks());

describe('the bad-row limit', () => {
  it('fails by default when a third label value hits 14% of the rows, naming the file, count, share and first rows', async () => {
    const p = file('customers.csv', 2500, (i) => i % 7 === 3);
    const err = await rejection(loadDataset(p, schema));
    expect(err.code).toBe('DATA_TOO_MANY_BAD_ROWS');
    expect(err.message).toMatch(new RegExp(`^${p}: \\d+ bad rows \\(\\d+(\\.\\d+)?% of \\d+ rows read so far\\), more than the limit of 1% of the rows`));
    expect(err.message).toContain(`${p}:5: column "y": label value is neither positive nor negative (value "unknown")`);
    expect(err.details).toMatchObject({ file: p });
  });

  it('fails as soon as the outcome is certain, not after reading the whole file', async () => {
    const p = file('early.csv', 200_000, (i) => i < 5000);
    const err = await rejection(loadDataset(p, schema));
    expect((err.details as { rowsRead: number }).rowsRead).toBeLessThan(5000);
  });

  it('loads under the limit and keeps the skipped rows for the terminal report', async () => {
    const p = file('few.csv', 2000, (i) => i === 10 || i === 1500);
    const ds = await loadDataset(p, schema);
    expect(ds.n).toBe(1998);
    const summary = badRowSummary(p, (line) => `${p}:${line}`, ds.stats)!;
    expect(summary).toContain(`${p}: skipped 2 of 2000 data rows with bad values (0.1%)`);
    expect(summary).toContain('2 × column "y": label value is neither positive nor negative');
    expect(summary).toContain(`${p}:12: column "y"`);
    expect(summary).toContain(`${p}:1502: column "y"`);
    expect(badRowSummary(p, String, (await loadDataset(file('clean.csv', 10, () => false), schema)).stats)).toBeNull();
  });

  it('takes a count or a fraction, and refuses anything else', async () => {
    const p = file('ten.csv', 100, (i) => i < 4);
    expect((await loadDataset(p, schema, { maxBadRows: 4 })).n).toBe(96);
    expect((await rejection(loadDataset(p, schema, { maxBadRows: 3 }))).message).toContain('more than the limit of 3 rows');
    expect((await loadDataset(p, schema, { maxBadRows: { fraction: 0.04 } })).n).toBe(96);
    expect((await loadDataset(p, schema, { maxBadRows: Infinity })).n).toBe(96);
    expect((await rejection(loadDataset(p, schema, { maxBadRows: -1 }))).code).toBe('DATA_BAD_LIMIT');
    expect((await rejection(loadDataset(p, schema, { maxBadRows: { fraction: 2 } }))).code).toBe('DATA_BAD_LIMIT');
  });

  it('parses the command-line forms', () => {
    expect(parseBadRowLimit('250')).toBe(250);
    expect(parseBadRowLimit('0')).toBe(0);
    expect(parseBadRowLimit('1%')).toEqual({ fraction: 0.01 });
    expect(parseBadRowLimit('0.5%')).toEqual({ fraction: 0.005 });
    expect(parseBadRowLimit('0.005')).toEqual({ fraction: 0.005 });
    expect(parseBadRowLimit('all')).toBe(Infinity);
    expect(() => parseBadRowLimit('lots')).toThrow(/--max-bad-rows: expected a row count/);
    expect(() => parseBadRowLimit('150%')).toThrow(/fraction/);
  });
});

describe('sources without data rows', () => {
  it('names the file of a header-only CSV (also with trailing blank lines)', async () => {
    for (const body of ['x,y\n', 'x,y', 'x,y\r\n\r\n\n']) {
      const p = join(dir, 'customers.csv');
      writeFileSync(p, body);
      const err = await rejection(loadDataset(p, schema));
      expect(err.code).toBe('DATA_NO_ROWS');
      expect(err.message).toBe(`${p}: no data rows`);
    }
  });

  it('names the file when every row was excluded', async () => {
    const consent = parseSchema({ ...schema, columns: [...schema.columns, { name: 'ok', role: 'consent', granted: ['Y'] }] });
    const p = join(dir, 'no-consent.csv');
    writeFileSync(p, 'x,y,ok\n1,yes,N\n2,no,N\n');
    const err = await rejection(loadDataset(p, consent));
    expect(err.code).toBe('DATA_NO_USABLE_ROWS');
    expect(err.message).toBe(`${p}: none of the 2 data rows is usable (2 without consent, 0 withdrawn, 0 bad)`);
  });

  it('the partner node says it on the terminal and names the file when a split is impossible', async () => {
    const writes: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (writes.push(String(chunk)), true));
    const p = file('node.csv', 400, (i) => i === 7);
    const data = await loadPartnerData(p, schema, 0.2, 1, undefined, { terminal: true });
    expect(data.all.n).toBe(399);
    expect(writes.join('')).toContain(`${p}: skipped 1 of 400 data rows with bad values (0.25%)`);
    const one = file('one.csv', 1, () => false);
    const err = await rejection(loadPartnerData(one, schema, 0.2, 1));
    expect(err.message).toBe(`${one}: cannot split 1 rows`);
    const limited = await rejection(loadPartnerData(file('limit.csv', 100, (i) => i < 2), schema, 0.2, 1, undefined, { maxBadRows: 1 }));
    expect(limited.code).toBe('DATA_TOO_MANY_BAD_ROWS');
  });
});

describe('load progress', () => {
  it('reports bytes read up to the file size, and prints plain lines at most once per interval off a TTY', async () => {
    const p = file('progress.csv', 300_000, () => false);
    const seen: { done: number; total: number | null; rows: number }[] = [];
    await loadSource(csvSource(p), schema, { onProgress: (x) => seen.push(x) });
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.at(-1)!.done).toBe(seen.at(-1)!.total);
    expect(seen.at(-1)!.rows).toBe(300_000);
    for (let i = 1; i < seen.length; i++) expect(seen[i].done).toBeGreaterThanOrEqual(seen[i - 1].done);

    const out: string[] = [];
    const stream = { isTTY: false, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream;
    let t = 0;
    const reporter = terminalProgress({ stream, now: () => t, delayMs: 1000, intervalMs: 10_000 });
    const tick = (ms: number, done: number) => {
      t = ms;
      reporter.onProgress({ source: p, rows: done / 10, done, total: 1000, unit: 'bytes' });
    };
    tick(500, 100); // within the delay: quiet
    tick(10_500, 400);
    tick(12_000, 500); // within the interval: quiet
    tick(20_600, 900);
    reporter.stop();
    expect(out).toEqual([
      `fedmark: loading ${p}: 40% (0 KiB of 1 KiB), 40 rows read, 11 s\n`,
      `fedmark: loading ${p}: 90% (1 KiB of 1 KiB), 90 rows read, 21 s\n`,
    ]);
  });
});
