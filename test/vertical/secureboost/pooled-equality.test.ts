import { describe, expect, it } from 'vitest';
import { SPLIT, LEAF } from '../../../src/trees/heap-tree.ts';
import { runInMemorySecureBoost } from '../../../src/vertical/secureboost/simulate.ts';
import { predictMargin } from '../../../src/trees/model.ts';
import { bankSplit, pooled, vparams } from './helpers.ts';

describe('vertical SecureBoost without label DP', () => {
  it('grows the same trees as the pooled histogram GBDT on the same rows and bins', async () => {
    const s = await bankSplit(2400, 7);
    const params = vparams(s, { trees: 3, depth: 3 });
    const ref = pooled(s, params);
    const run = await runInMemorySecureBoost({
      jobId: 'vsb-eq',
      params,
      label: { identity: s.identities[0], rows: s.bank },
      features: [{ identity: s.identities[1], rows: s.telco }],
    });
    try {
      const mine = run.active.heapTrees();
      const theirs = ref.run.state.trees;
      expect(mine.length).toBe(theirs.length);
      let foreignSplits = 0;
      mine.forEach((t, k) => {
        const r = theirs[k];
        expect(t.kind).toEqual(r.kind);
        for (let i = 0; i < t.kind.length; i++) {
          if (t.kind[i] === SPLIT) {
            expect([k, i, t.group[i], t.cut[i]]).toEqual([k, i, r.group[i], r.cut[i]]);
            if (t.owner[i] === 1) foreignSplits++;
          }
          if (t.kind[i] === LEAF) expect(Math.abs(t.value[i] - r.value[i])).toBeLessThan(1e-6);
        }
      });
      // The telco side's columns matter on bank marketing: some split must be the feature holder's.
      expect(foreignSplits).toBeGreaterThan(0);
    } finally {
      run.dispose();
    }
  }, 120_000);
});

describe('joint prediction', () => {
  it('scores the hold-out rows exactly as the pooled model does, each split answered by its owner', async () => {
    const s = await bankSplit(2000, 13);
    const params = vparams(s, { trees: 3, depth: 3, edges: 'schema' });
    const ref = pooled(s, params);
    const run = await runInMemorySecureBoost({
      jobId: 'vsb-score',
      params,
      label: { identity: s.identities[0], rows: s.bank },
      features: [{ identity: s.identities[1], rows: s.telco }],
    });
    try {
      const ts = run.active.testScores();
      const d = ref.layout.d;
      const Xtest = new Float32Array(ts.rows.length * d);
      ts.rows.forEach((r, i) => Xtest.set(ref.X.subarray(r * d, (r + 1) * d), i * d));
      const want = predictMargin(ref.run.model, Xtest, ts.rows.length);
      for (let i = 0; i < want.length; i++) expect(Math.abs(ts.margins[i] - want[i])).toBeLessThan(1e-5);
    } finally {
      run.dispose();
    }
  }, 120_000);
});
