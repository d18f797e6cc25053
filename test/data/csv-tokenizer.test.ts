/**
 * The byte tokenizer against csv-parse (the parser it replaced) on random CSV text, at every chunk
 * size, and the byte-level cell rules against the string rules they stand in for.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import { CsvFileReader, decodeFields, type CsvRecord } from '../../src/data/csv.ts';
import { encodeRows, loadDataset, parseNumber } from '../../src/data/encode.ts';
import { parseSchema } from '../../src/data/schema.ts';
import { tempDir } from './source-fixtures.ts';

const dir = tempDir('fedmark-tokenizer-');
let counter = 0;
function tmpFile(content: string | Buffer): string {
  const p = join(dir, `t${counter++}.csv`);
  writeFileSync(p, content);
  return p;
}

async function tokenize(path: string, chunk?: number): Promise<CsvRecord[] | string> {
  const reader = await CsvFileReader.open(path, ',', chunk);
  const out: CsvRecord[] = [];
  try {
    while (await reader.next((buf, s, e, n, line) => out.push({ line, fields: decodeFields(buf, s, e, n) }))) {
      /* read on */
    }
    return out;
  } catch (err) {
    if (err instanceof FedmarkError) return `error ${err.code} at line ${(err.details as { line?: number })?.line}`;
    throw err;
  } finally {
    await reader.close();
  }
}

/** What the loader got from csv-parse before: records with start lines, blank lines dropped. */
function reference(text: string): CsvRecord[] | 'error' {
  let next = 1;
  try {
    const records = parse(text, { bom: true, relax_column_count: true, skip_empty_lines: false }) as string[][];
    const out: CsvRecord[] = [];
    for (const fields of records) {
      const line = next;
      for (const f of fields) for (let i = f.indexOf('\n'); i >= 0; i = f.indexOf('\n', i + 1)) next++;
      next++;
      if (!(fields.length === 1 && fields[0].trim() === '')) out.push({ line, fields });
    }
    return out;
  } catch {
    return 'error';
  }
}

const pieces = ['a', 'b1', ' ', '', ',', '"', '""', '"x,y"', '"multi\nline"', '"q""q"', 'é', '\u00a0', '42', '-1.5e3'];
/**
 * Lines of random pieces joined by one line end. With `mixed`, pieces may hold bare line ends too:
 * then a file may mix LF and CRLF, where this tokenizer takes every CRLF as a line end and csv-parse
 * keeps the CR of a CRLF as data once it saw an LF first (the cells are the same once trimmed).
 */
const csvText = (ends: string[], mixed = false) =>
  fc
    .array(fc.array(fc.constantFrom(...pieces, ...(mixed ? ['\n', '\r\n', '\r'] : [])), { maxLength: 6 }).map((p) => p.join('')), { minLength: 1, maxLength: 12 })
    .chain((lines) => fc.constantFrom(...ends).map((eol) => lines.join(eol) + (lines.length % 2 ? eol : '')));

describe('byte tokenizer', () => {
  it('gives the records and start lines csv-parse gave, or fails where it failed', async () => {
    await fc.assert(
      fc.asyncProperty(csvText(['\n', '\r\n']), fc.boolean(), async (text, bom) => {
        const body = bom ? `\ufeff${text}` : text;
        const ours = await tokenize(tmpFile(body));
        const theirs = reference(body);
        if (theirs === 'error') expect(ours).toMatch(/^error DATA_CSV_MALFORMED/);
        else expect(ours).toEqual(theirs);
      }),
      { numRuns: 400, seed: 17 },
    );
  });

  it('does not depend on where chunks end (quotes, CRLF and escapes cut in half)', async () => {
    await fc.assert(
      fc.asyncProperty(csvText(['\n', '\r\n', '\r'], true), fc.integer({ min: 4, max: 40 }), async (text, chunk) => {
        const path = tmpFile(text);
        expect(await tokenize(path, chunk)).toEqual(await tokenize(path));
      }),
      { numRuns: 300, seed: 23 },
    );
  });

  it('reads lone-CR files, and keeps a lone CR as data in LF files, like csv-parse', async () => {
    expect(await tokenize(tmpFile('a,b\r1,2\r"x\ry",3\r'))).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['1', '2'] },
      { line: 3, fields: ['x\ry', '3'] },
    ]);
    expect(await tokenize(tmpFile('a,b\n1\r,2\n'))).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['1\r', '2'] },
    ]);
  });

  it('names the problem and the line of malformed records', async () => {
    const at = async (text: string) => {
      try {
        await loadDataset(tmpFile(text), parseSchema({ name: 's', columns: [{ name: 'x', type: 'numeric', min: 0, max: 9 }, { name: 'y', role: 'label', positive: ['1'], negative: ['0'] }] }));
        return 'loaded';
      } catch (err) {
        return (err as Error).message.replace(/^.*?:(\d+):/, '$1:');
      }
    };
    expect(await at('x,y\n1,1\n2"a,0\n')).toBe('3: malformed CSV in the record starting at line 3: a quote inside unquoted field 1 (quote the whole field and double the quotes inside it)');
    expect(await at('x,y\n"1"z,1\n')).toBe('2: malformed CSV in the record starting at line 2: field 1 is quoted, but its closing quote is followed by "z" instead of "," or a line end');
    expect(await at('x,y\n1,1\n"2,\n\n\n')).toBe('3: unclosed quote: the record starting at line 3 opens a quoted field that is never closed');
    expect(await at(`x,y\n${'1'.repeat(1_200_000)},1\n`)).toMatch(/^2: the record starting at line 2 is longer than 1048576 bytes/);
  });
});

describe('byte-level cells follow the string rules', () => {
  const schema = parseSchema({
    name: 'cells',
    columns: [
      { name: 'n', type: 'numeric', min: -1e6, max: 1e6, missing: 0 },
      { name: 'c', type: 'categorical', values: ['a', 'é', 'b c'], unknown: 'error' },
      { name: 'b', type: 'boolean', true: ['t'], false: ['f'] },
      { name: 'y', role: 'label', positive: ['1'], negative: ['0'] },
    ],
  });
  const pad = fc.constantFrom('', ' ', '\t', '\u00a0', '\u2003', '\ufeff');
  const number = fc.oneof(
    fc.double({ noNaN: true, min: -2e6, max: 2e6 }).map(String),
    fc.integer().map(String),
    fc.constantFrom('007', '-0', '+5', '.5', '5.', '1e3', '1E-3', '123456789012345678', '0.1000000000000000055511151231257827', '1e400', '1e-400', '1e', '.', '-', '1.2.3', 'abc', '', '0x10', '١'),
  );
  const cell = (inner: fc.Arbitrary<string>) => fc.tuple(pad, inner, pad).map(([a, v, b]) => a + v + b);
  const record = fc.record({
    n: cell(number),
    c: cell(fc.constantFrom('a', 'é', 'b c', 'B', '', 'e\u0301')),
    b: cell(fc.constantFrom('t', 'f', 'T', '')),
    y: cell(fc.constantFrom('1', '0', '2')),
  });
  const quote = (v: string) => `"${v.replace(/"/g, '""')}"`;

  it('a CSV file and in-memory records give the same vectors, bad rows and messages', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(record, { minLength: 1, maxLength: 40 }), async (records) => {
        const csv = ['n,c,b,y', ...records.map((r) => [r.n, r.c, r.b, r.y].map(quote).join(','))].join('\n');
        const fromMemory = encodeRows(schema, records, { maxBadRows: Infinity });
        if (fromMemory.n === 0) {
          await expect(loadDataset(tmpFile(csv), schema, { maxBadRows: Infinity })).rejects.toMatchObject({ code: 'DATA_NO_USABLE_ROWS' });
          return;
        }
        const fromCsv = await loadDataset(tmpFile(csv), schema, { maxBadRows: Infinity });
        expect(Array.from(fromCsv.X)).toEqual(Array.from(fromMemory.X));
        expect(fromCsv.stats.badRows.map((b) => ({ ...b, line: b.line - 1 }))).toEqual(fromMemory.stats.badRows);
      }),
      { numRuns: 150, seed: 29 },
    );
  });

  it('parses numbers from bytes exactly as Number() does', async () => {
    const texts = ['0.1', '-0', '1e22', '1e23', '9007199254740993', '123456789012345', '0.000001234', '5e-324', '1.7976931348623157e308', '2.2250738585072014e-308', '.5', '5.'];
    const csv = ['n,c,b,y', ...texts.map((t) => `${t},a,t,1`)].join('\n');
    const wide = parseSchema({ ...schema, columns: [{ name: 'n', type: 'numeric', min: -Number.MAX_VALUE, max: Number.MAX_VALUE }, ...schema.columns.slice(1)] });
    const ds = await loadDataset(tmpFile(csv), wide);
    texts.forEach((t, i) => {
      const v = parseNumber(t)!;
      expect(ds.X[i * ds.d]).toBe(Math.fround((v + Number.MAX_VALUE) / (2 * Number.MAX_VALUE)));
    });
  });
});
