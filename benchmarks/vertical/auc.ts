/**
 * Vertical SecureBoost on the bundled bank-marketing rows split by columns (src/vertical/bank-split.ts):
 * the joint model without and with label DP (ε = 3 for the label holder) against the bank alone and a
 * pooled non-private model, all on the same aligned rows and the same hold-out. Every run is the full
 * protocol in one process (HE per-bin sums, sealed and signed envelopes), so the per-round bytes and
 * the feature holder's HE time are measured too. Writes benchmarks/results/vertical-<rows>x<trees>.json.
 *
 *   npx tsx benchmarks/vertical/auc.ts [--rows 5000] [--trees 8] [--depth 3]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { schemaHash } from '../../src/federation/job-presets.ts';
import { auc } from '../../src/metrics/classification.ts';
import type { FeatureLayout } from '../../src/trees/layout.ts';
import { bankMarketingColumns } from '../../src/vertical/bank-split.ts';
import { plainGbdtAuc } from '../../src/vertical/baselines.ts';
import { columnShapes, concatColumns, concatLayouts } from '../../src/vertical/secureboost/layout.ts';
import { sigmoid } from '../../src/vertical/secureboost/model.ts';
import { parseSecureBoostParams } from '../../src/vertical/secureboost/params.ts';
import { alignedSplit } from '../../src/vertical/secureboost/rows.ts';
import { schedule } from '../../src/vertical/secureboost/schedule.ts';
import { runInMemorySecureBoost } from '../../src/vertical/secureboost/simulate.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const rows = arg('rows', 5000);
const trees = arg('trees', 8);
const depth = arg('depth', 3);
const bins = 16;
const learningRate = 0.3;
const seed = 7;

const s = await bankMarketingColumns(rows, 3);
const ids = [generateIdentity('bank'), generateIdentity('telco')];
const [b, t] = ids.map(publicIdentity);
const params = (labelDp: { epsilon: number } | null) =>
  parseSecureBoostParams({
    parties: [
      { role: 'label', keyId: b.keyId, schemaHash: schemaHash(s.bank.schema), columnCount: s.bank.layout.groups.length },
      { role: 'features', keyId: t.keyId, schemaHash: schemaHash(s.telco.schema), columns: columnShapes(s.telco.layout, bins) },
    ],
    alignment: { psiJobId: 'bench', orderDigest: '0'.repeat(64), size: s.bank.n },
    trees,
    depth,
    bins,
    learningRate,
    edges: 'quantiles',
    seed,
    labelDp,
  });

const vertical = async (labelDp: { epsilon: number } | null) => {
  const p = params(labelDp);
  const t0 = performance.now();
  const run = await runInMemorySecureBoost({
    jobId: 'bench',
    params: p,
    label: { identity: ids[0], rows: s.bank },
    features: [{ identity: ids[1], rows: s.telco }],
  });
  const wallSeconds = (performance.now() - t0) / 1000;
  try {
    const ts = run.active.testScores();
    const rounds = schedule(p).length;
    const total = Object.values(run.bytes).reduce((a, x) => a + x, 0);
    return {
      auc: auc(sigmoid(ts.margins), ts.labels),
      testRows: ts.rows.length,
      wallSeconds,
      rounds,
      wallSecondsPerRound: wallSeconds / rounds,
      bytesByKind: run.bytes,
      bytesPerRound: total / rounds,
      featureHolderHeCpuSeconds: run.passives[0].heMs / 1000,
      labelDp: run.active.dp && { epsilon: run.active.dp.epsilon, histogramStd: run.active.dp.histogram.std, leafStd: run.active.dp.leaf.std },
    };
  } finally {
    run.dispose();
  }
};

const split = alignedSplit(s.bank.n, params(null).testFraction, seed);
const plain = (layout: FeatureLayout, X: Float32Array) => plainGbdtAuc({ layout, X, y: s.bank.y, split, trees, depth, learningRate, bins });

const bankAlone = plain(s.bank.layout, s.bank.X);
const pooled = plain(
  concatLayouts([s.bank.layout, s.telco.layout]),
  concatColumns(
    [
      { X: s.bank.X, d: s.bank.layout.d },
      { X: s.telco.X, d: s.telco.layout.d },
    ],
    s.bank.n,
  ),
);
const noDp = await vertical(null);
const dp3 = await vertical({ epsilon: 3 });
const result = {
  benchmark: 'vertical-secureboost-auc',
  date: new Date().toISOString(),
  data: { dataset: 'bank-marketing (bundled)', alignedRows: s.bank.n, bankColumns: s.bank.layout.groups.length, telcoColumns: s.telco.layout.groups.length },
  settings: { trees, depth, bins, learningRate, edges: 'quantiles', seed },
  auc: { bankAlone, pooledNonPrivate: pooled, verticalNoDp: noDp.auc, verticalLabelDpEps3: dp3.auc },
  runs: { noDp, labelDpEps3: dp3 },
};
const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', `vertical-${rows}x${trees}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result.auc)}\n${out}\n`);
