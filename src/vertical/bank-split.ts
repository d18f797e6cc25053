/**
 * The bundled bank-marketing rows split by columns, as the vertical demo, tests and benchmark use them:
 * a bank (the label and its banking fields) and a telco-like party (contact and campaign fields), each
 * with its own schema (the other side's columns ignored) and its own encoded columns of the same rows.
 */
import { loadBundled } from '../data/bundled.ts';
import { subsetDataset, type Dataset } from '../data/encode.ts';
import type { DatasetSchema } from '../data/schema.ts';
import { featureLayout, type FeatureLayout } from '../trees/layout.ts';
import { createRng, permutation } from '../util/rng.ts';
import type { PartyRows } from './secureboost/rows.ts';

export const BANK_COLUMNS = ['age', 'job', 'marital', 'education', 'default', 'balance', 'housing', 'loan'];
export const TELCO_COLUMNS = ['contact', 'day', 'month', 'campaign', 'pdays', 'previous', 'poutcome'];

/** The schema keeping only `keep` as features (others ignored); the label stays for the layout's sake. */
export function columnSchema(full: DatasetSchema, keep: string[], name: string): DatasetSchema {
  return {
    ...full,
    name,
    columns: full.columns.map((c) => ('type' in c && !keep.includes(c.name) ? { name: c.name, role: 'ignore' as const } : c)),
  };
}

/** The columns of `ds` (encoded with `full`) that `layout` (from the kept schema) describes. */
export function columnsOf(ds: Dataset, fullLayout: FeatureLayout, keep: string[]): Float32Array {
  const idx: number[] = [];
  for (const g of fullLayout.groups) {
    if (!keep.includes(g.name)) continue;
    const first = g.kind === 'categorical' ? g.offset : g.feature;
    const width = g.kind === 'categorical' ? g.slots : 1;
    for (let k = 0; k < width; k++) idx.push(first + k);
  }
  const X = new Float32Array(ds.n * idx.length);
  for (let i = 0; i < ds.n; i++) idx.forEach((j, k) => (X[i * idx.length + k] = ds.X[i * ds.d + j]));
  return X;
}

export interface BankColumns {
  bank: PartyRows & { y: Float32Array; schema: DatasetSchema };
  telco: PartyRows & { schema: DatasetSchema };
}

/** `rows` rows drawn at random (seeded) from the bundled file (which is sorted by contact date), split by columns. */
export async function bankMarketingColumns(rows: number, seed = 1): Promise<BankColumns> {
  const { schema, dataset } = await loadBundled('bank-marketing');
  const ds = subsetDataset(
    dataset,
    Array.from(permutation(dataset.n, createRng(seed)).subarray(0, Math.min(rows, dataset.n))).sort((a, b) => a - b),
  );
  const full = featureLayout(schema);
  const bs = columnSchema(schema, BANK_COLUMNS, 'bank-side');
  const ts = columnSchema(schema, TELCO_COLUMNS, 'telco-side');
  return {
    bank: { layout: featureLayout(bs), X: columnsOf(ds, full, BANK_COLUMNS), n: ds.n, y: ds.y, schema: bs },
    telco: { layout: featureLayout(ts), X: columnsOf(ds, full, TELCO_COLUMNS), n: ds.n, schema: ts },
  };
}
