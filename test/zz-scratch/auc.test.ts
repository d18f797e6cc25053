import { it } from 'vitest';
import { auc } from '../../src/metrics/classification.ts';
import { runInMemorySecureBoost } from '../../src/vertical/secureboost/simulate.ts';
import { sigmoid } from '../../src/vertical/secureboost/model.ts';
import { bankSplit, vparams } from '../vertical/secureboost/helpers.ts';
import { parseGbdtParams } from '../../src/trees/params.ts';
import { trainPooled } from '../../src/trees/simulate.ts';
import { predictProba } from '../../src/trees/model.ts';
import { alignedSplit } from '../../src/vertical/secureboost/rows.ts';

it('auc', async () => {
  const s = await bankSplit(20000, 3);
  for (const cfg of [{ labelDp: null }, { labelDp: { epsilon: 3 } }] as const) {
    const params = vparams(s, { trees: 15, depth: 3, bins: 16, edges: 'quantiles', learningRate: 0.3, ...cfg });
    const t0 = performance.now();
    const run = await runInMemorySecureBoost({ jobId: 'x', params, label: { identity: s.identities[0], rows: s.bank }, features: [{ identity: s.identities[1], rows: s.telco }] });
    const ts = run.active.testScores();
    console.log(JSON.stringify(cfg), 'auc', auc(sigmoid(ts.margins), ts.labels), 'wall s', (performance.now() - t0) / 1000, 'FH he ms', run.passives[0].heMs, 'bytes', JSON.stringify(run.bytes), 'dp', JSON.stringify(run.active.dp && { hist: run.active.dp.histogram.std, leaf: run.active.dp.leaf.std, eps: run.active.dp.epsilon }));
    run.dispose();
  }
  const split = alignedSplit(s.bank.n, 0.25, 0);
  const sub = (X: Float32Array, d: number, rows: Int32Array) => { const o = new Float32Array(rows.length * d); rows.forEach((r, i) => o.set(X.subarray(r * d, (r + 1) * d), i * d)); return o; };
  const gp = parseGbdtParams({ trees: 15, depth: 3, learningRate: 0.3, bins: 16, splitMode: 'histogram', binEdges: 'dp-quantiles' });
  const r = trainPooled(gp, s.bank.layout, { n: split.train.length, d: s.bank.layout.d, X: sub(s.bank.X, s.bank.layout.d, split.train), y: Float32Array.from(split.train, (i) => s.bank.y[i]) });
  const p = predictProba(r.model, sub(s.bank.X, s.bank.layout.d, split.test), split.test.length);
  console.log('bank alone auc', auc(p, Float32Array.from(split.test, (i) => s.bank.y[i])));
}, 900_000);
