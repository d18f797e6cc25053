import { describe, expect, it } from 'vitest';
import { SPLIT, LEAF } from '../../../src/trees/heap-tree.ts';
import { runInMemorySecureBoost } from '../../../src/vertical/secureboost/simulate.ts';
import { bankSplit, pooled, vparams } from './helpers.ts';

describe('vertical SecureBoost without label DP', () => {
  it('grows the same trees as the pooled histogram GBDT on the same rows and bins', async () => {
    const s = await bankSplit(2400, 7);
    const params = vparams(s, { trees: 3, depth: 3 });
    const ref = pooled(s, params);
    const run = await runInMemorySecureBoost({ jobId: 'vsb-eq', params, label: { identity: s.identities[0], rows: s.bank }, features: [{ identity: s.identities[1], rows: s.telco }] });
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
