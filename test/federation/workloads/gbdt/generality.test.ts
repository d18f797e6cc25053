/**
 * Data the defaults were not chosen on (issue 14: "works on data you have not seen"): numeric, skewed,
 * categorical (with a value outside the vocabulary) and boolean columns, about 3 % positives, and one
 * partner of 500 rows next to two larger ones. Through simulate() — the partner runtime, round
 * machine and key holders the nodes run — the job finishes, every partner's accountant stays within
 * the target and equals the composed release plan, and the released model scores every row.
 */
import { describe, expect, it } from 'vitest';
import { splitPartnerData } from '../../../../cli/partner-data.ts';
import { concatDatasets } from '../../../../src/data/encode.ts';
import { simulate } from '../../../../src/federation/simulate.ts';
import { releasePlan } from '../../../../src/federation/workload.ts';
import { gbdtJobPreset, gbdtModel, gbdtWorkload, type GbdtJobPresetOptions } from '../../../../src/federation/workloads/gbdt/index.ts';
import type { FederatedEvalMetrics } from '../../../../src/metrics/histogram.ts';
import { composedEpsilon } from '../../../../src/privacy/accountant.ts';
import { predictProba, type GbdtState } from '../../../../src/trees/index.ts';
import { SYNTH_SCHEMA, syntheticDataset } from '../../../trees/helpers.ts';

// positiveShift −1.5: about 3 % positives (the synthetic label's base rate is ≈ 12 % at 0).
const sizes = [4000, 2500, 500];
const partners = sizes.map((n, i) => {
  const all = syntheticDataset(n, 40 + i, -1.5);
  return { name: `p${i}`, all, ...splitPartnerData(all, 0.25, 3) };
});

describe('gbdt on unseen, imbalanced data with a small partner', () => {
  it('has the imbalance and the small partner the test claims', () => {
    const all = concatDatasets(partners.map((p) => p.all));
    const rate = all.y.reduce((a, b) => a + b, 0) / all.n;
    expect(rate).toBeGreaterThan(0.015);
    expect(rate).toBeLessThan(0.05);
    expect(partners[2].train.n).toBeLessThanOrEqual(400);
  });

  const cases: [string, GbdtJobPresetOptions['gbdt']][] = [
    ['the private defaults (cyclic terms)', undefined],
    ['hybrid trees', { splitMode: 'hybrid', trees: 8, depth: 3 }],
  ];
  for (const [name, gbdt] of cases) {
    it(`${name} at ε = 2: the job completes, ε per partner is the plan's and ≤ 2, the model scores every row`, async () => {
      const r = await simulate<GbdtState, FederatedEvalMetrics>({
        job: gbdtJobPreset({ jobId: 'gbdt-general', schema: SYNTH_SCHEMA, partners: 3, epsilon: 2, seed: 11, encryption: { scheme: 'plain-insecure' }, gbdt }),
        partners,
      });
      expect(r.rounds.at(-1)!.kind).toBe('evaluate');
      const want = composedEpsilon(
        releasePlan(gbdtWorkload, r.manifest).rounds.flatMap((x) => x.releases),
        1e-5,
      );
      for (const p of partners) {
        expect(r.epsilon[p.name]).toBeCloseTo(want, 9);
        expect(r.epsilon[p.name]).toBeLessThanOrEqual(2);
      }
      const test = concatDatasets(partners.map((p) => p.test));
      const scores = predictProba(gbdtModel(r.state), test.X, test.n);
      expect(scores).toHaveLength(test.n);
      for (const s of scores) expect(s > 0 && s < 1).toBe(true);
      // The owner's metrics come from noised evaluation histograms (a charged release): an estimate, but one.
      expect(r.finalMetrics.auc).toBeGreaterThanOrEqual(0);
      expect(r.finalMetrics.auc).toBeLessThanOrEqual(1);
    }, 60_000);
  }
});
