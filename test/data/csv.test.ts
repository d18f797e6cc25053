import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import { matchHeader, readCsvRecords, readRows, type CsvRow } from '../../src/data/csv.ts';
import { loadDataset } from '../../src/data/encode.ts';
import { loadSchema, parseSchema } from '../../src/data/schema.ts';
import { rejection } from '../helpers/errors.ts';

const fx = (name: string) => fileURLToPath(new URL(`../fixtures/data/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fedmark-csv-'));
let counter = 0;
function tmpFile(content: string | Uint8Array): string {
  const p = join(dir, `f${counter++}.csv`);
  writeFileSync(p, content);
  return p;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}


describe('readCsvRecords', () => {
  it('handles BOM, CRLF, quoted delimiters, escaped quotes and quoted newlines, with start lines', async () => {
    const recs = await collect(readCsvRecords(fx('mixed.csv'), ','));
    expect(recs[0].fields[0]).toBe('bought'); // BOM stripped
    expect(recs.map((r) => r.line)).toEqual([1, 2, 3, 4, 6, 7, 8, 9]);
    expect(recs[1].fields[10]).toBe('hello, world');
    expect(recs[3].fields[10]).toBe('multi\r\nline "quoted" note');
  });

  it('skips blank lines but keeps counting them', async () => {
    const recs = await collect(readCsvRecords(tmpFile('a;b\n\n"x";1\n\n\n"y";2\n'), ';'));
    expect(recs.map((r) => [r.line, ...r.fields])).toEqual([
      [1, 'a', 'b'],
      [3, 'x', '1'],
      [6, 'y', '2'],
    ]);
  });

  it('reports an unclosed quote at the line where its record starts', async () => {
    const err = await rejection(collect(readCsvRecords(fx('simple-unclosed-quote.csv'))));
    expect(err.code).toBe('DATA_CSV_MALFORMED');
    expect(err.message).toContain('simple-unclosed-quote.csv:3');
    expect(err.message).toContain('unclosed quote');
  });

  it('reports stray quotes as malformed CSV with a line', async () => {
    const err = await rejection(collect(readCsvRecords(tmpFile('x,c,y\n1,a,1\n2,"b"z,0\n'))));
    expect(err.code).toBe('DATA_CSV_MALFORMED');
    expect(err.message).toMatch(/:3: malformed CSV/);
  });

  it('keeps line numbers right for errors far into a multi-chunk file', async () => {
    const good = Array.from({ length: 6000 }, (_, i) => `${i % 10},a,${i % 2}`);
    const unclosed = ['x,c,y', ...good.slice(0, 2998), '5,"b,1', ...good.slice(2998)].join('\n');
    const e1 = await rejection(collect(readCsvRecords(tmpFile(unclosed))));
    expect(e1.message).toContain(':3000: unclosed quote');
    const stray = ['x,c,y', ...good.slice(0, 4998), '5,"b"c,1', ...good.slice(4998)].join('\r\n');
    const e2 = await rejection(collect(readCsvRecords(tmpFile(stray))));
    expect(e2.message).toContain(':5000: malformed CSV');
  });

  it('rejects binary, empty and missing files', async () => {
    const bytes = new Uint8Array(2048);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 7) % 256;
    expect((await rejection(collect(readCsvRecords(tmpFile(bytes))))).code).toBe('DATA_BINARY_FILE');
    expect((await rejection(collect(readCsvRecords(tmpFile(''))))).code).toBe('DATA_EMPTY_FILE');
    expect((await rejection(collect(readCsvRecords(join(dir, 'nope.csv'))))).code).toBe('DATA_FILE_NOT_FOUND');
    expect((await rejection(collect(readCsvRecords(dir)))).code).toBe('DATA_FILE_UNREADABLE');
  });
});

describe('header against schema', () => {
  it('names a missing label column', async () => {
    const schema = await loadSchema(fx('simple.schema.json'));
    const err = await rejection(loadDataset(fx('simple-no-label-col.csv'), schema));
    expect(err.code).toBe('DATA_HEADER_MISMATCH');
    expect(err.message).toContain('simple-no-label-col.csv:1');
    expect(err.message).toContain('"y" (the label column)');
  });

  it('names undeclared columns and hints at a wrong delimiter', () => {
    const schema = parseSchema({
      name: 's',
      columns: [
        { name: 'x', type: 'numeric', min: 0, max: 1 },
        { name: 'y', role: 'label', positive: ['1'], negative: ['0'] },
      ],
    });
    expect(() => matchHeader(['x', 'y', 'extra'], schema, 'f.csv')).toThrow(/undeclared column\(s\) "extra"/);
    expect(() => matchHeader(['x;y'], schema, 'f.csv')).toThrow(/looks ";"-separated/);
    expect(() => matchHeader(['x', 'y', 'x'], schema, 'f.csv')).toThrow(/repeats column\(s\) "x"/);
    expect(Array.from(matchHeader([' y', 'x '], schema))).toEqual([1, 0]);
  });
});

describe('readRows', () => {
  it('reorders cells into schema order and reports wrong field counts with line and column', async () => {
    const schema = await loadSchema(fx('simple.schema.json'));
    const rows: CsvRow[] = await collect(readRows(fx('simple-wrong-fields.csv'), schema));
    expect(rows).toEqual([
      { ok: true, line: 2, values: ['1', 'a', '1'] },
      { ok: false, issue: { line: 3, column: 'y', value: '', message: 'expected 3 fields, found 2' } },
      { ok: false, issue: { line: 4, column: 'field 4', value: '9', message: 'expected 3 fields, found 4' } },
      { ok: true, line: 5, values: ['4', 'b', '0'] },
    ]);
  });

  it('stops cleanly when the consumer stops early', async () => {
    const schema = await loadSchema(fx('simple.schema.json'));
    for await (const row of readRows(fx('simple-wrong-fields.csv'), schema)) {
      expect(row.ok).toBe(true);
      break;
    }
  });
});

describe('never crashes on garbage', () => {
  const schema = parseSchema({
    name: 'fuzz',
    columns: [
      { name: 'x', type: 'numeric', min: 0, max: 10 },
      { name: 'c', type: 'categorical', values: ['a', 'b'] },
      { name: 'y', role: 'label', positive: ['1'], negative: ['0'] },
    ],
  });

  async function outcome(path: string): Promise<'ok' | 'fedmark-error'> {
    try {
      const ds = await loadDataset(path, schema);
      expect(ds.stats.rowsRead).toBe(ds.stats.rowsUsed + ds.stats.badRowCount);
      return 'ok';
    } catch (err) {
      if (err instanceof FedmarkError) return 'fedmark-error';
      throw err;
    }
  }

  it('random bytes give a FedmarkError or a dataset, nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
        await outcome(tmpFile(bytes));
      }),
      { numRuns: 60, seed: 3 },
    );
  });

  it('random CSV-ish text after a valid header gives a FedmarkError or a dataset', async () => {
    const cell = fc.oneof(fc.constantFrom('', '1', 'a', 'b', '0', '"', '""', ',', '\n', '\r\n', ' ', '1e5', '-3'), fc.string({ maxLength: 4 }));
    const body = fc.array(cell, { maxLength: 60 }).map((parts) => parts.join(''));
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        await outcome(tmpFile(`x,c,y\n${text}`));
      }),
      { numRuns: 150, seed: 5 },
    );
  });
});
