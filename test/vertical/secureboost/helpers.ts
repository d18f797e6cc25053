/**
 * Vertical fixtures: the bundled bank-marketing rows split by columns between a label holder (label and
 * banking fields) and a feature holder (contact and campaign fields), plus the pooled reference on
 * the same rows and bins.
 */
import { bankMarketingColumns, type BankColumns } from '../../../src/vertical/bank-split.ts';
import { generateIdentity, publicIdentity, type Identity } from '../../../src/crypto/identity.ts';
import { parseGbdtParams } from '../../../src/trees/params.ts';
import { trainPooled } from '../../../src/trees/simulate.ts';
import { columnShapes, concatColumns, concatLayouts } from '../../../src/vertical/secureboost/layout.ts';
import { parseSecureBoostParams, type SecureBoostParams, type SecureBoostParamsInput } from '../../../src/vertical/secureboost/params.ts';
import { alignedSplit } from '../../../src/vertical/secureboost/rows.ts';
import { schemaHash } from '../../../src/federation/job-presets.ts';

export interface BankSplit extends BankColumns {
  identities: Identity[];
}

/** `rows` rows drawn at random (seeded) from the bundled file, split by columns, with an identity per party. */
export async function bankSplit(rows: number, seed = 1): Promise<BankSplit> {
  return { ...(await bankMarketingColumns(rows, seed)), identities: [generateIdentity('bank'), generateIdentity('telco')] };
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
  const X = concatColumns(
    [
      { X: s.bank.X, d: s.bank.layout.d },
      { X: s.telco.X, d: s.telco.layout.d },
    ],
    s.bank.n,
  );
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
