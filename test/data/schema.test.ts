import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { OTHER_BUCKET, featureCount, featureNames, loadSchema, parseSchema } from '../../src/data/schema.ts';

const fixtures = new URL('../fixtures/data/', import.meta.url);
const fx = (name: string) => fileURLToPath(new URL(name, fixtures));

const label = { name: 'y', role: 'label', positive: ['1'], negative: ['0'] };
const base = (columns: unknown[]) => ({ name: 't', columns: [...columns, label] });

function schemaError(raw: unknown): FedmarkError {
  try {
    parseSchema(raw, 'test.json');
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return err as FedmarkError;
  }
  throw new Error('schema was accepted');
}

describe('schema validation', () => {
  it('accepts the fixture and both bundled schemas', async () => {
    await expect(loadSchema(fx('mixed.schema.json'))).resolves.toMatchObject({ name: 'fixture-mixed' });
    for (const b of Object.values(BUNDLED_DATASETS)) await expect(loadSchema(b.schema)).resolves.toBeTruthy();
  });

  it('names the column and field of a wrong type', () => {
    const err = schemaError(base([{ name: 'age', type: 'numeric', min: '18', max: 100 }]));
    expect(err.code).toBe('SCHEMA_INVALID');
    expect(err.message).toContain('test.json');
    expect(err.message).toContain('columns[0] ("age").min');
  });

  it('rejects unknown keys (typos) and unknown column types/roles', () => {
    expect(schemaError(base([{ name: 'a', type: 'numeric', min: 0, max: 1, tranform: 'log1p' }])).message).toMatch(
      /columns\[0\] \("a"\).*tranform/,
    );
    expect(schemaError(base([{ name: 'a', type: 'text' }])).message).toContain('columns[0] ("a").type');
    expect(schemaError(base([{ name: 'a', role: 'weight' }])).message).toContain('columns[0] ("a").role');
  });

  it('requires exactly one label, unique names, and at least one feature', () => {
    expect(schemaError({ name: 't', columns: [{ name: 'a', type: 'numeric', min: 0, max: 1 }] }).message).toMatch(
      /exactly one column must have role "label" \(found 0\)/,
    );
    expect(schemaError(base([{ name: 'a', type: 'numeric', min: 0, max: 1 }, { ...label, name: 'z' }])).message).toMatch(/found 2/);
    expect(
      schemaError(base([{ name: 'a', type: 'numeric', min: 0, max: 1 }, { name: 'a', role: 'ignore' }])).message,
    ).toContain('column "a" is declared more than once');
    expect(schemaError(base([{ name: 'id', role: 'id' }])).message).toContain('no feature column');
  });

  it('checks bounds, bands, vocabularies and label values', () => {
    expect(schemaError(base([{ name: 'a', type: 'numeric', min: 5, max: 5 }])).message).toContain('columns[0] ("a").max');
    expect(
      schemaError(base([{ name: 'age', type: 'numeric', min: 18, max: 100, sensitive: true }])).message,
    ).toContain('columns[0] ("age").groups');
    expect(
      schemaError(base([{ name: 'age', type: 'numeric', min: 18, max: 100, sensitive: true, groups: { edges: [20, 50, 100] } }]))
        .message,
    ).toMatch(/must cover the declared range \[18, 100\]/);
    expect(
      schemaError(
        base([{ name: 'age', type: 'numeric', min: 18, max: 100, groups: { edges: [0, 50, 200], labels: ['young'] } }]),
      ).message,
    ).toContain('2 bands need 2 labels');
    expect(schemaError(base([{ name: 'c', type: 'categorical', values: ['a', 'a'] }])).message).toContain('duplicate value "a"');
    expect(schemaError(base([{ name: 'c', type: 'categorical', values: [OTHER_BUCKET] }])).message).toContain('reserved');
    expect(schemaError(base([{ name: 'c', type: 'categorical', values: [' a'] }])).message).toContain('outer whitespace');
    expect(schemaError(base([{ name: 'b', type: 'boolean', true: ['y'], false: ['y'] }])).message).toContain(
      'values both true and false: y',
    );
    expect(
      schemaError({ name: 't', columns: [{ name: 'a', type: 'numeric', min: 0, max: 1 }, { ...label, negative: ['1'] }] }).message,
    ).toContain('values both positive and negative: 1');
  });

  it('reports unreadable and non-JSON schema files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-schema-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{ "name": ');
    await expect(loadSchema(bad)).rejects.toMatchObject({ code: 'SCHEMA_NOT_JSON' });
    await expect(loadSchema(join(dir, 'missing.json'))).rejects.toMatchObject({ code: 'SCHEMA_UNREADABLE' });
  });
});

describe('feature layout from the schema alone', () => {
  it('lists features in column order, with an other bucket per categorical and sensitive-only columns left out', async () => {
    const schema = await loadSchema(fx('mixed.schema.json'));
    expect(featureNames(schema)).toEqual([
      'age',
      'income',
      'score',
      'region=north',
      'region=south',
      `region=${OTHER_BUCKET}`,
      'plan=basic',
      'plan=pro',
      `plan=${OTHER_BUCKET}`,
      'member',
    ]);
    expect(featureCount(schema)).toBe(10);
  });

  it('gives the bundled layouts without reading data', async () => {
    const bank = await loadSchema(BUNDLED_DATASETS['bank-marketing'].schema);
    const names = featureNames(bank);
    expect(names).not.toContain('duration');
    expect(names).not.toContain('y');
    expect(names).toContain('age');
    expect(featureCount(bank)).toBe(names.length);
    const telco = await loadSchema(BUNDLED_DATASETS['telco-churn'].schema);
    const tn = featureNames(telco);
    expect(tn).not.toContain('customerID');
    expect(tn.some((n) => n.startsWith('gender'))).toBe(false);
    expect(tn).not.toContain('SeniorCitizen');
    expect(tn).toContain('TotalCharges');
  });
});
