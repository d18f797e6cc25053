/**
 * Vertical fixtures: the bundled bank-marketing rows split by columns between a label holder (label and
 * banking fields) and a feature holder (contact and campaign fields), plus the pooled reference on
 * the same rows and bins.
 */
import { loadBundled } from '../../../src/data/bundled.ts';
import { subsetDataset, type Dataset } from '../../../src/data/encode.ts';
import type { DatasetSchema } from '../../../src/data/schema.ts';
import { generateIdentity, publicIdentity, type Identity } from '../../../src/crypto/identity.ts';
import { featureLayout, type FeatureLayout } from '../../../src/trees/layout.ts';
import { parseGbdtParams } from '../../../src/trees/params.ts';
import { trainPooled } from '../../../src/trees/simulate.ts';
import { columnShapes, concatColumns, concatLayouts } from '../../../src/vertical/secureboost/layout.ts';
import { parseSecureBoostParams, type SecureBoostParams, type SecureBoostParamsInput } from '../../../src/vertical/secureboost/params.ts';
import { alignedSplit, type PartyRows } from '../../../src/vertical/secureboost/rows.ts';
import { schemaHash } from '../../../src/federation/job-presets.ts';
import { createRng, permutation } from '../../../src/util/rng.ts';

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

export interface BankSplit {
  bank: PartyRows & { y: Float32Array; schema: DatasetSchema };
  telco: PartyRows & { schema: DatasetSchema };
  identities: Identity[];
}

/** `rows` rows drawn at random (seeded) from the bundled file, which is sorted by contact date. */
export async function bankSplit(rows: number, seed = 1): Promise<BankSplit> {
  const { schema, dataset } = await loadBundled('bank-marketing');
  const ds = subsetDataset(dataset, Array.from(permutation(dataset.n, createRng(seed)).subarray(0, rows)).sort((a, b) => a - b));
  const full = featureLayout(schema);
  const bs = columnSchema(schema, BANK_COLUMNS, 'bank-side');
  const ts = columnSchema(schema, TELCO_COLUMNS, 'telco-side');
  const bl = featureLayout(bs);
  const tl = featureLayout(ts);
  return {
    bank: { layout: bl, X: columnsOf(ds, full, BANK_COLUMNS), n: ds.n, y: ds.y, schema: bs },
    telco: { layout: tl, X: columnsOf(ds, full, TELCO_COLUMNS), n: ds.n, schema: ts },
    identities: [generateIdentity('bank'), generateIdentity('telco')],
  };
}

export function vparams(s: BankSplit, o: Partial<SecureBoostParamsInput> = {}): SecureBoostParams {
  const [b, t] = s.identities.map(publicIdentity);
  return parseSecureBoostParams({
    parties: [
      { role: 'label', keyId: b.keyId, schemaHash: schemaHash(s.bank.schema), columnCount: s.bank.layout.groups.length },
      { role: 'features', keyId: t.keyId, schemaHash: schemaHash(s.telco.schema), columns: columnShapes(s.telco.layout, o.bins ?? 16) },
    ],
    alignment: { psiJobId: 'psi-test', orderDigest: '0'.repeat(64), size: s.bank.n },
    trees: 3,
    depth: 3,
    bins: 16,
    edges: 'schema',
    ...o,
  });
}

/** The pooled histogram GBDT on the same training rows and bins (src/trees reference). */
export function pooled(s: BankSplit, p: SecureBoostParams) {
  const split = alignedSplit(s.bank.n, p.testFraction, p.seed);
  const layout = concatLayouts([s.bank.layout, s.telco.layout]);
  const X = concatColumns([{ X: s.bank.X, d: s.bank.layout.d }, { X: s.telco.X, d: s.telco.layout.d }], s.bank.n);
  const d = layout.d;
  const n = split.train.length;
  const Xt = new Float32Array(n * d);
  const yt = new Float32Array(n);
  split.train.forEach((r, i) => {
    Xt.set(X.subarray(r * d, (r + 1) * d), i * d);
    yt[i] = s.bank.y[r];
  });
  const gp = parseGbdtParams({
    trees: p.trees,
    depth: p.depth,
    learningRate: p.learningRate,
    bins: p.bins,
    lambda: p.lambda,
    minChildWeight: p.minChildWeight,
    minSplitGain: p.minSplitGain,
    maxDeltaStep: p.maxDeltaStep,
    baseScore: p.baseScore,
    splitMode: 'histogram',
    binEdges: 'schema',
  });
  return { run: trainPooled(gp, layout, { n, d, X: Xt, y: yt }), layout, X, split };
}
