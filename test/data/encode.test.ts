import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import {
  concatDatasets,
  encodeRecord,
  encodeRows,
  loadDataset,
  subsetDataset,
  type Dataset,
} from '../../src/data/encode.ts';
import { OTHER_BUCKET, featureCount, loadSchema, parseSchema, type DatasetSchema } from '../../src/data/schema.ts';
import { rejection } from '../helpers/errors.ts';

const fx = (name: string) => fileURLToPath(new URL(`../fixtures/data/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fedmark-encode-'));
let counter = 0;
function tmpFile(content: string): string {
  const p = join(dir, `f${counter++}.csv`);
  writeFileSync(p, content);
  return p;
}

const mixed = await loadSchema(fx('mixed.schema.json'));
const simple = await loadSchema(fx('simple.schema.json'));
/** These fixtures are mostly bad rows on purpose; the bad-row limit has its own tests. */
const tolerant = { maxBadRows: Infinity };

function row(ds: Dataset, i: number): number[] {
  return Array.from(ds.X.subarray(i * ds.d, (i + 1) * ds.d));
}


describe('loadDataset on the mixed fixture (every column kind)', () => {
  const dsPromise = loadDataset(fx('mixed.csv'), mixed, tolerant);

  it('counts rows read, used, without consent and bad', async () => {
    const ds = await dsPromise;
    expect(ds.stats).toMatchObject({ rowsRead: 7, rowsUsed: 3, excludedNoConsent: 1, excludedWithdrawn: 0, badRowCount: 3 });
    expect(ds.n).toBe(3);
    expect(ds.d).toBe(featureCount(mixed));
    expect(ds.X.length).toBe(ds.n * ds.d);
  });

  it('encodes numeric (bounds, log1p, centered), categorical (one-hot + other) and boolean cells', async () => {
    const ds = await dsPromise;
    const log = (x: number) => Math.log1p(x) / Math.log1p(1000);
    // age, income, score, region ×3, plan ×3, member
    const expected = [
      [(25 - 18) / 82, log(100), 0.5, 1, 0, 0, 1, 0, 0, 1], // C1
      [(70 - 18) / 82, 1, -1, 0, 0, 1, 0, 1, 0, 0], // C3: income and score clipped, region "east" → other
      [(30 - 18) / 82, 0, 0.5, 0, 1, 0, 1, 0, 0, 0], // C5: blank income → min, blank score → 0.5
    ];
    for (let i = 0; i < 3; i++) {
      row(ds, i).forEach((v, j) => expect(v).toBeCloseTo(expected[i][j], 6));
    }
    expect(Array.from(ds.y)).toEqual([1, 0, 0]);
  });

  it('keeps ids out of the features but per row in ids', async () => {
    const ds = await dsPromise;
    expect(ds.ids).toEqual(['C1', 'C3', 'C5']);
    expect(ds.featureNames.some((n) => n.startsWith('cid') || n.startsWith('consent') || n.startsWith('notes'))).toBe(false);
  });

  it('reports sensitive groups: bands for numbers, declared value or other bucket for categories', async () => {
    const ds = await dsPromise;
    expect(ds.sensitive).toEqual({ age: ['<30', '60+', '30-59'], gender: ['F', 'M', OTHER_BUCKET] });
    expect(ds.featureNames).toContain('age');
    expect(ds.featureNames.some((n) => n.startsWith('gender'))).toBe(false);
  });

  it('counts clipped and imputed values per numeric column', async () => {
    const ds = await dsPromise;
    expect(ds.stats.clipped).toEqual({ age: 0, income: 1, score: 1 });
    expect(ds.stats.imputed).toEqual({ age: 0, income: 1, score: 1 });
  });

  it('skips and reports bad rows with line, column and value', async () => {
    const ds = await dsPromise;
    expect(ds.stats.badRows).toEqual([
      { line: 6, column: 'age', value: 'abc', message: 'not a number' },
      { line: 8, column: 'plan', value: 'gold', message: 'unknown category (declared: "basic", "pro")' },
      { line: 9, column: 'member', value: 'maybe', message: 'not a declared boolean value (true: yes/1, false: no/0)' },
    ]);
  });

  it('throws on the first bad row in strict mode, naming file, line, column and value', async () => {
    const err = await rejection(loadDataset(fx('mixed.csv'), mixed, { strict: true }));
    expect(err.code).toBe('DATA_BAD_ROW');
    expect(err.message).toBe(`${fx('mixed.csv')}:6: column "age": not a number (value "abc")`);
    const strictSchema = { ...mixed, strict: true };
    await expect(loadDataset(fx('mixed.csv'), strictSchema)).rejects.toThrow(/:6: column "age"/);
  });

  it('makes an unknown category an error naming line and column when the column is strict', async () => {
    const csv = tmpFile(
      'bought,cid,consent,age,income,score,region,plan,gender,member,notes\n1,A,yes,20,1,0,mars,basic,F,yes,\n0,B,yes,20,1,0,north,platinum,F,yes,\n',
    );
    const ds = await loadDataset(csv, mixed, tolerant);
    expect(ds.n).toBe(1); // "mars" went to the other bucket
    expect(row(ds, 0).slice(3, 6)).toEqual([0, 0, 1]);
    await expect(loadDataset(csv, mixed, { strict: true })).rejects.toThrow(`${csv}:3: column "plan": unknown category`);
  });

  it('drops rows of withdrawn ids and counts them', async () => {
    const ds = await loadDataset(fx('mixed.csv'), mixed, { ...tolerant, excludeIds: new Set(['C3', 'C2']) });
    // C2 never consented, so it counts as no-consent, not as withdrawn.
    expect(ds.stats).toMatchObject({ excludedNoConsent: 1, excludedWithdrawn: 1, rowsUsed: 2 });
    expect(ds.ids).toEqual(['C1', 'C5']);
    await expect(loadDataset(fx('simple-wrong-fields.csv'), simple, { excludeIds: new Set(['x']) })).rejects.toMatchObject({
      code: 'DATA_NO_ID_COLUMN',
    });
  });

  it('accepts a schema path instead of a schema object', async () => {
    const ds = await loadDataset(fx('mixed.csv'), fx('mixed.schema.json'), tolerant);
    expect(ds.n).toBe(3);
  });

  it('caps the stored bad-row list but counts every bad row', async () => {
    const ds = await loadDataset(fx('mixed.csv'), mixed, { ...tolerant, maxReportedBadRows: 1 });
    expect(ds.stats.badRowCount).toBe(3);
    expect(ds.stats.badRows).toHaveLength(1);
  });
});

describe('bad rows in the simple fixtures', () => {
  it('reports wrong field counts and skips them, or throws in strict mode', async () => {
    const ds = await loadDataset(fx('simple-wrong-fields.csv'), simple, tolerant);
    expect(ds.n).toBe(2);
    expect(ds.stats.badRows.map((b) => b.line)).toEqual([3, 4]);
    await expect(loadDataset(fx('simple-wrong-fields.csv'), simple, { strict: true })).rejects.toThrow(
      /simple-wrong-fields\.csv:3: column "y": expected 3 fields, found 2/,
    );
  });

  it('rejects non-numeric cells but accepts exponent notation, and skips blank lines', async () => {
    const ds = await loadDataset(fx('simple-non-numeric.csv'), simple, tolerant);
    expect(ds.n).toBe(3);
    expect(row(ds, 1)[0]).toBeCloseTo(1); // "1e1" = 10 = max
    expect(ds.stats.badRows).toEqual([{ line: 5, column: 'x', value: 'x1', message: 'not a number' }]);
  });

  it('makes a blank numeric cell an error by default, and rejects unknown labels', async () => {
    const csv = tmpFile('x,c,y\n,a,1\n3,a,maybe\n4,b,0\n');
    const ds = await loadDataset(csv, simple, tolerant);
    expect(ds.n).toBe(1);
    expect(ds.stats.badRows).toEqual([
      { line: 2, column: 'x', value: '', message: 'blank value in a numeric column (missing policy is "error")' },
      { line: 3, column: 'y', value: 'maybe', message: 'label value is neither positive nor negative' },
    ]);
  });

  it('turns an unclosed quote into a FedmarkError, never a crash', async () => {
    const err = await rejection(loadDataset(fx('simple-unclosed-quote.csv'), simple));
    expect(err.code).toBe('DATA_CSV_MALFORMED');
    expect(err.message).toContain(':3:');
  });

  it('reads a semicolon-separated, fully quoted file when the schema says so', async () => {
    const semi = parseSchema({ ...simple, delimiter: ';' });
    const ds = await loadDataset(tmpFile('"x";"c";"y"\n5;"b";"1"\n'), semi);
    expect(row(ds, 0)).toEqual([0.5, 0, 1, 0]);
    await expect(loadDataset(tmpFile('"x";"c";"y"\n5;"b";"1"\n'), simple)).rejects.toThrow(/looks ";"-separated/);
  });
});

describe('in-memory encoding', () => {
  it('encodeRows gives exactly the vectors loadDataset gives', async () => {
    const fromCsv = await loadDataset(fx('mixed.csv'), mixed, tolerant);
    const records = [
      { bought: '1', cid: 'C1', consent: 'yes', age: '25', income: '100', score: '0.5', region: 'north', plan: 'basic', gender: 'F', member: 'yes', notes: '' },
      { bought: '0', cid: 'C3', consent: 'Y', age: '70', income: '2000', score: '-3', region: 'east', plan: 'pro', gender: 'M', member: '0', notes: '' },
      { bought: '0', cid: 'C5', consent: 'yes', age: '30', income: ' ', score: ' ', region: 'south', plan: 'basic', gender: 'X', member: 'no', notes: '' },
    ];
    const fromRecords = encodeRows(mixed, records);
    expect(fromRecords.X).toEqual(fromCsv.X);
    expect(fromRecords.sensitive).toEqual(fromCsv.sensitive);
    expect(encodeRecord(mixed, records[1])).toEqual(fromCsv.X.slice(fromCsv.d, 2 * fromCsv.d));
    const partial = encodeRows(mixed, [{ cid: 'Z' }], tolerant);
    expect(partial.stats.badRows[0]).toMatchObject({ line: 1, message: 'declared column is missing from the record' });
  });

  it('encodeRecord needs no label, id or ignored columns but refuses rows without consent', () => {
    const rec = { consent: 'yes', age: '25', income: '100', score: '0.5', region: 'north', plan: 'basic', gender: 'F', member: 'yes' };
    expect(encodeRecord(mixed, rec)).toHaveLength(10);
    expect(() => encodeRecord(mixed, { ...rec, consent: 'no' })).toThrow(FedmarkError);
    expect(() => encodeRecord(mixed, { ...rec, age: 'old' })).toThrow(/column "age": not a number/);
  });
});

describe('data independence', () => {
  const schema: DatasetSchema = parseSchema({
    name: 'prop',
    columns: [
      { name: 'id', role: 'id' },
      { name: 'n1', type: 'numeric', min: -50, max: 50 },
      { name: 'n2', type: 'numeric', min: 0, max: 1e6, transform: 'log1p', missing: 'min' },
      { name: 'n3', type: 'numeric', min: -1e4, max: 1e5, transform: 'signed-log1p', scale: 'centered' },
      { name: 'c', type: 'categorical', values: ['a', 'b', 'c'] },
      { name: 'b', type: 'boolean', true: ['t'], false: ['f'] },
      { name: 'y', role: 'label', positive: ['1'], negative: ['0'] },
    ],
  });
  const rowArb = fc.record({
    id: fc.stringMatching(/^[A-Z][0-9]{1,6}$/),
    n1: fc.double({ min: -200, max: 200, noNaN: true }).map((v) => String(Math.round(v * 1000) / 1000)),
    n2: fc.oneof(fc.constant(''), fc.integer({ min: 0, max: 2e6 }).map(String)),
    n3: fc.integer({ min: -2e4, max: 2e5 }).map(String),
    c: fc.constantFrom('a', 'b', 'c', 'zz', 'A'),
    b: fc.constantFrom('t', 'f'),
    y: fc.constantFrom('0', '1'),
  });
  const cols = ['id', 'n1', 'n2', 'n3', 'c', 'b', 'y'] as const;
  const toCsv = (rows: Record<(typeof cols)[number], string>[]) =>
    [cols.join(','), ...rows.map((r) => cols.map((c) => r[c]).join(','))].join('\n') + '\n';

  it('a row encodes to the same vector whatever other rows are in the batch (in memory)', () => {
    fc.assert(
      fc.property(rowArb, fc.array(rowArb, { maxLength: 30 }), fc.array(rowArb, { maxLength: 30 }), (target, a, b) => {
        const alone = encodeRows(schema, [target]);
        const withA = encodeRows(schema, [...a, target]);
        const withB = encodeRows(schema, [target, ...b]);
        const v = row(alone, 0);
        expect(row(withA, a.length)).toEqual(v);
        expect(row(withB, 0)).toEqual(v);
        for (const x of v) expect(Number.isFinite(x)).toBe(true);
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('a row read from a CSV file encodes the same regardless of the rest of the file', async () => {
    await fc.assert(
      fc.asyncProperty(rowArb, fc.array(rowArb, { maxLength: 40 }), fc.array(rowArb, { maxLength: 40 }), async (target, a, b) => {
        const one = await loadDataset(tmpFile(toCsv([...a, target])), schema);
        const two = await loadDataset(tmpFile(toCsv([target, ...b])), schema);
        expect(row(one, a.length)).toEqual(row(two, 0));
        expect(row(two, 0)).toEqual(Array.from(encodeRecord(schema, target)));
      }),
      { numRuns: 25, seed: 11 },
    );
  });
});

describe('subsetDataset and concatDatasets', () => {
  it('subsets rows with ids and sensitive groups, and concatenation undoes a split', async () => {
    const ds = await loadDataset(fx('mixed.csv'), mixed, tolerant);
    const sub = subsetDataset(ds, [2, 0]);
    expect(sub.n).toBe(2);
    expect(row(sub, 0)).toEqual(row(ds, 2));
    expect(row(sub, 1)).toEqual(row(ds, 0));
    expect(sub.ids).toEqual(['C5', 'C1']);
    expect(sub.sensitive.gender).toEqual([OTHER_BUCKET, 'F']);
    expect(sub.stats.rowsUsed).toBe(2);
    const back = concatDatasets([subsetDataset(ds, Int32Array.from([0])), subsetDataset(ds, [1, 2])]);
    expect(back.X).toEqual(ds.X);
    expect(back.y).toEqual(ds.y);
    expect(back.ids).toEqual(ds.ids);
    expect(back.sensitive).toEqual(ds.sensitive);
    expect(() => subsetDataset(ds, [3])).toThrow(/outside 0\.\.2/);
  });

  it('refuses to concatenate different layouts', async () => {
    const a = await loadDataset(fx('mixed.csv'), mixed, tolerant);
    const b = await loadDataset(fx('simple-non-numeric.csv'), simple, tolerant);
    expect(() => concatDatasets([a, b])).toThrow(/different feature layout/);
    expect(() => concatDatasets([])).toThrow(FedmarkError);
    const twice = concatDatasets([b, b]);
    expect(twice.n).toBe(2 * b.n);
    expect(twice.stats.badRowCount).toBe(2 * b.stats.badRowCount);
  });
});
