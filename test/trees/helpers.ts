/**
 * Synthetic marketing-like data for the trees tests: numeric, skewed-numeric (values crowded near the
 * bottom of a wide declared range), categorical and boolean columns, a rare positive class with an
 * interaction, encoded through src/data exactly as partners encode their CSVs.
 */
import { expect } from 'vitest';
import { encodeRows, subsetDataset, type Dataset } from '../../src/data/encode.ts';
import { FedmarkError } from '../../src/errors.ts';
import { parseSchema, type DatasetSchema } from '../../src/data/schema.ts';
import { createRng } from '../../src/util/rng.ts';

export const SYNTH_SCHEMA: DatasetSchema = parseSchema({
  name: 'synthetic-propensity',
  columns: [
    { name: 'age', type: 'numeric', min: 18, max: 100 },
    { name: 'balance', type: 'numeric', min: 0, max: 300000, description: 'mostly below 5,000: near the bottom of the declared range' },
    { name: 'score', type: 'numeric', min: -1, max: 1, scale: 'centered' },
    { name: 'channel', type: 'categorical', values: ['web', 'phone', 'branch', 'mail'] },
    { name: 'member', type: 'boolean', true: ['yes'], false: ['no'] },
    { name: 'y', role: 'label', positive: ['1'], negative: ['0'] },
  ],
});

export function syntheticRecords(n: number, seed: number, positiveShift = 0): Record<string, string>[] {
  const rng = createRng(seed);
  const channels = ['web', 'phone', 'branch', 'mail', 'fax'];
  const out: Record<string, string>[] = [];
  for (let i = 0; i < n; i++) {
    const age = 18 + Math.floor(rng.next() * 70);
    const balance = Math.round(-Math.log(1 - rng.next()) * 2000);
    const score = Math.round((rng.next() * 2 - 1) * 1000) / 1000;
    const channel = channels[Math.min(4, Math.floor(rng.next() * 4.2))];
    const member = rng.next() < 0.3;
    const z = -2.6 + positiveShift + 1.2 * (channel === 'phone' ? 1 : 0) + 0.9 * (member && balance > 3000 ? 1 : 0) + 0.8 * score + (age > 60 ? 0.7 : 0);
    const y = rng.next() < 1 / (1 + Math.exp(-z)) ? '1' : '0';
    out.push({ age: String(age), balance: String(balance), score: String(score), channel, member: member ? 'yes' : 'no', y });
  }
  return out;
}

export function syntheticDataset(n: number, seed: number, positiveShift = 0): Dataset {
  return encodeRows(SYNTH_SCHEMA, syntheticRecords(n, seed, positiveShift), { strict: true });
}

/** Splits a dataset into k contiguous parts of the given sizes (remainder to the last). */
export function splitRows(ds: Dataset, sizes: number[]): Dataset[] {
  const out: Dataset[] = [];
  let at = 0;
  sizes.forEach((s, k) => {
    const end = k === sizes.length - 1 ? ds.n : at + s;
    out.push(
      subsetDataset(
        ds,
        Array.from({ length: end - at }, (_, j) => at + j),
      ),
    );
    at = end;
  });
  return out;
}

/** Runs `f`, which must throw a FedmarkError, and returns that error for further checks. */
export function thrown(f: () => unknown): FedmarkError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return err as FedmarkError;
  }
  throw new Error('expected a FedmarkError');
}
