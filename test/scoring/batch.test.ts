import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { encodeRows } from '../../src/data/encode.ts';
import { featureCount } from '../../src/data/schema.ts';
import { predictProba } from '../../src/model/params.ts';
import { scoreFile } from '../../src/scoring/batch.ts';
import { loadScoringModel } from '../../src/scoring/model.ts';
import { readCsvRecords } from '../../src/data/csv.ts';
import { rejection } from '../helpers/errors.ts';
import { fixtureSchema, makeCustomers, saveFixtureModel, tempDir, toCsv, type Customer } from './helpers.ts';

const schema = await fixtureSchema();
const d = featureCount(schema);

async function readOut(file: string): Promise<Record<string, string>[]> {
  const out: Record<string, string>[] = [];
  let head: string[] | null = null;
  for await (const r of readCsvRecords(file)) {
    if (!head) head = r.fields;
    else out.push(Object.fromEntries(head.map((h, i) => [h, r.fields[i]])));
  }
  return out;
}

async function setup(customers: Customer[], o: { label?: boolean } = {}) {
  const dir = tempDir();
  const data = join(dir, 'customers.csv');
  writeFileSync(data, toCsv(customers, o));
  const params = await saveFixtureModel(join(dir, 'model'), schema);
  const model = await loadScoringModel(join(dir, 'model'), schema);
  return { dir, data, params, model };
}

describe('fedmark score, library level', () => {
  it("scores every consenting customer with the model's own prediction, and exact deciles", async () => {
    const customers = makeCustomers(3000, 5);
    const { dir, data, params, model } = await setup(customers, { label: false });
    const out = join(dir, 'scores.csv');
    const s = await scoreFile({ dataPath: data, outPath: out, schema, model });
    const consenting = customers.filter((c) => c.consent === 'yes');
    expect(s.rows).toMatchObject({ read: 3000, scored: consenting.length, excludedNoConsent: 3000 - consenting.length, excludedWithdrawn: 0, rejected: 0 });
    const rows = await readOut(out);
    expect(rows.map((r) => r.customer)).toEqual(consenting.map((c) => c.customer));
    const enc = encodeRows(schema, consenting);
    const expected = predictProba({ kind: 'logistic' }, d, params, enc.X, enc.n);
    rows.forEach((r, i) => expect(Math.abs(Number(r.probability) - expected[i])).toBeLessThan(1.5e-6));
    // Decile by brute force over the printed scores: 1 + ⌊10 · #(strictly higher) / n⌋.
    const printed = rows.map((r) => Number(r.probability));
    const sorted = [...printed].sort((a, b) => b - a);
    const higher = (p: number) => sorted.findIndex((x) => x <= p);
    rows.forEach((r, i) => expect(Number(r.decile)).toBe(Math.min(10, Math.floor((10 * higher(printed[i])) / rows.length) + 1)));
    expect(s.deciles.sizes.reduce((a, b) => a + b, 0)).toBe(rows.length);
    expect(s.output.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Output and temp files: only the result is left behind, readable by its owner only.
    expect(readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
    expect(statSync(out).mode & 0o077).toBe(0);
  });

  it('never scores withdrawn or non-consenting customers, and counts them', async () => {
    const customers = makeCustomers(500, 6);
    const { dir, data, model } = await setup(customers);
    const withdrawn = new Set(customers.filter((c, i) => c.consent === 'yes' && i % 7 === 0).map((c) => c.customer));
    const out = join(dir, 'scores.csv');
    const s = await scoreFile({ dataPath: data, outPath: out, schema, model, withdrawn });
    const ids = new Set((await readOut(out)).map((r) => r.customer));
    for (const c of customers) {
      const scored = c.consent === 'yes' && !withdrawn.has(c.customer);
      expect(ids.has(c.customer)).toBe(scored);
    }
    expect(s.rows.excludedWithdrawn).toBe(withdrawn.size);
    expect(s.rows.excludedNoConsent).toBe(customers.filter((c) => c.consent !== 'yes').length);
  });

  it('writes a top-k early-warning list ranked by expected value at risk, with selection rates per segment', async () => {
    const customers = makeCustomers(2000, 7);
    const { dir, data, model } = await setup(customers);
    const all = join(dir, 'all.csv');
    await scoreFile({ dataPath: data, outPath: all, schema, model, reasons: 0 });
    const full = await readOut(all);
    const clv = new Map(customers.map((c) => [c.customer, Number(c.clv)]));
    const top = join(dir, 'top.csv');
    const s = await scoreFile({ dataPath: data, outPath: top, schema, model, topK: 50, valueColumn: 'clv' });
    const list = await readOut(top);
    const expected = [...full]
      .map((r, i) => ({ id: r.customer, key: Number(r.probability) * clv.get(r.customer)!, i }))
      .sort((a, b) => b.key - a.key || a.i - b.i)
      .slice(0, 50);
    expect(list.map((r) => r.customer)).toEqual(expected.map((e) => e.id));
    expect(list.map((r) => r.rank)).toEqual(expected.map((_, i) => String(i + 1)));
    list.forEach((r) => expect(Math.abs(Number(r.expected_value) - Number(r.probability) * Number(r.clv))).toBeLessThan(1e-3 * Number(r.clv)));
    // Deciles in the list are the full population's.
    const fullDecile = new Map(full.map((r) => [r.customer, r.decile]));
    list.forEach((r) => expect(r.decile).toBe(fullDecile.get(r.customer)));
    expect(s.topK).toMatchObject({ k: 50, selected: 50, rankedBy: 'expected-value', valueColumn: 'clv' });
    const gender = s.fairness!.selection.find((x) => x.segment === 'gender')!;
    const inList = new Set(list.map((r) => r.customer));
    const scoredF = customers.filter((c) => c.consent === 'yes' && c.gender === 'F');
    const f = gender.groups.find((g) => g.group === 'F')!;
    expect(f.scored).toBe(scoredF.length);
    expect(f.selected).toBe(scoredF.filter((c) => inList.has(c.customer)).length);
    const best = Math.max(...gender.groups.filter((g) => g.selectionRate !== null).map((g) => g.selectionRate!));
    expect(f.disparateImpact).toBeCloseTo(f.selectionRate! / best, 12);
    expect(s.fairness!.selection.map((x) => x.segment)).toEqual(['age', 'gender']);
  });

  it('gives reason codes that push the score up, in words', async () => {
    const customers = makeCustomers(300, 8);
    const { dir, data, model } = await setup(customers);
    const out = join(dir, 'scores.csv');
    await scoreFile({ dataPath: data, outPath: out, schema, model, reasons: 3 });
    const rows = await readOut(out);
    const columns = new Set(schema.columns.map((c) => c.name));
    for (const r of rows) {
      for (let k = 1; k <= 3; k++) {
        if (!r[`reason_${k}`]) continue;
        expect(Number(r[`reason_${k}_logit`])).toBeGreaterThan(0);
        if (k > 1 && r[`reason_${k - 1}`]) expect(Number(r[`reason_${k}_logit`])).toBeLessThanOrEqual(Number(r[`reason_${k - 1}_logit`]));
        const m = /^(\w+)( = | high \(| low \(| missing \()/.exec(r[`reason_${k}`]);
        expect(m, r[`reason_${k}`]).not.toBeNull();
        expect(columns.has(m![1])).toBe(true);
      }
    }
  });

  it('refuses a model trained for another schema, a missing column, an unknown category in strict mode', async () => {
    const customers = makeCustomers(50, 9);
    const { dir, data, model } = await setup(customers);
    // Another schema: same layout, another name → another hash.
    const other = { ...schema, name: 'another-dataset' };
    let err = await rejection(loadScoringModel(join(dir, 'model'), other));
    expect(err.code).toBe('MODEL_SCHEMA_MISMATCH');
    expect(err.message).toMatch(/another dataset schema/);
    // A model without a schema hash but with feature names from a different layout.
    await saveFixtureModel(join(dir, 'model2'), schema, { kind: 'logistic' }, { metadata: { schemaHash: undefined, featureNames: ['a', 'b'] } });
    err = await rejection(loadScoringModel(join(dir, 'model2'), schema));
    expect(err.code).toBe('MODEL_SCHEMA_MISMATCH');

    const noPlan = join(dir, 'no-plan.csv');
    writeFileSync(
      noPlan,
      toCsv(customers, { columns: ['customer', 'consent', 'tenure', 'monthly', 'balance', 'contract', 'paperless', 'gender', 'age', 'clv', 'offer'] }),
    );
    err = await rejection(scoreFile({ dataPath: noPlan, outPath: join(dir, 'x.csv'), schema, model }));
    expect(err.code).toBe('DATA_HEADER_MISMATCH');
    expect(err.message).toMatch(/missing declared column\(s\) "plan"/);

    const odd = customers.map((c, i) => (i === 20 ? { ...c, consent: 'yes', contract: 'weekly' } : c));
    const oddFile = join(dir, 'odd.csv');
    writeFileSync(oddFile, toCsv(odd));
    err = await rejection(scoreFile({ dataPath: oddFile, outPath: join(dir, 'y.csv'), schema, model, strict: true }));
    expect(err.code).toBe('DATA_BAD_ROW');
    expect(err.message).toBe(`${oddFile}:22: column "contract": unknown category (declared: "monthly", "yearly", "two-year") (value "weekly")`);
    // Not strict: the unknown category goes to the declared "<other>" bucket, as in training.
    const s = await scoreFile({ dataPath: oddFile, outPath: join(dir, 'y.csv'), schema, model });
    expect(s.rows.rejected).toBe(0);

    const far = customers.map((c, i) => (i === 3 ? { ...c, consent: 'yes', tenure: '500' } : c));
    writeFileSync(oddFile, toCsv(far));
    err = await rejection(scoreFile({ dataPath: oddFile, outPath: join(dir, 'y.csv'), schema, model, strict: true }));
    expect(err.message).toMatch(/:5: column "tenure": outside the declared range \[0, 72\]/);
    // A failed run publishes nothing.
    expect(readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
    expect((await rejection(scoreFile({ dataPath: join(dir, 'nope.csv'), outPath: join(dir, 'z.csv'), schema, model }))).code).toBe('DATA_FILE_NOT_FOUND');
    expect((await rejection(scoreFile({ dataPath: data, outPath: join(dir, 'no-such-dir', 'z.csv'), schema, model }))).code).toBe('SCORING_OUT_DIR');
    expect((await rejection(scoreFile({ dataPath: data, outPath: data, schema, model }))).code).toBe('SCORING_BAD_OPTION');
  });

  it('skips and reports bad rows when not strict, up to the bad-row limit (a plan outside the vocabulary is always an error)', async () => {
    const customers: Customer[] = makeCustomers(100, 10).map((c) => ({ ...c, consent: 'yes' }));
    customers[10].plan = 'gold';
    customers[30].tenure = 'many';
    const { dir, data, model } = await setup(customers);
    // As when loading for training: by default more than 1 % bad rows fails the run, naming them.
    const err = await rejection(scoreFile({ dataPath: data, outPath: join(dir, 'o.csv'), schema, model }));
    expect(err.code).toBe('DATA_TOO_MANY_BAD_ROWS');
    expect(err.message).toMatch(/2 bad rows .*more than the limit of 1% of the rows[\s\S]*:12: column "plan"[\s\S]*:32: column "tenure"/);
    expect(readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
    const s = await scoreFile({ dataPath: data, outPath: join(dir, 'o.csv'), schema, model, maxBadRows: 2 });
    expect(s.rows).toMatchObject({ read: 100, scored: 98, rejected: 2 });
    expect(s.rejectedExamples[0]).toMatch(/:12: column "plan": unknown category/);
    expect(s.rejectedExamples[1]).toMatch(/:32: column "tenure": not a number/);
    const ids = (await readOut(join(dir, 'o.csv'))).map((r) => r.customer);
    expect(ids).not.toContain(customers[10].customer);
  });

  it('neutralises spreadsheet formulas in ids and quotes fields', async () => {
    const customers: Customer[] = makeCustomers(5, 12).map((c) => ({ ...c, consent: 'yes' }));
    customers[0].customer = '=HYPERLINK("http://x")';
    customers[1].customer = 'id,with,commas';
    const { dir, data, model } = await setup(customers);
    await scoreFile({ dataPath: data, outPath: join(dir, 'o.csv'), schema, model });
    const text = readFileSync(join(dir, 'o.csv'), 'utf8');
    expect(text).toContain(`"'=HYPERLINK(""http://x"")"`);
    expect(text).toContain('"id,with,commas"');
  });
});
