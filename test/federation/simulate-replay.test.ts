import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBundled } from '../../src/data/bundled.ts';
import { subsetDataset } from '../../src/data/encode.ts';
import { partitionIid } from '../../src/data/partition.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import { jobPreset, type JobPresetOptions } from '../../src/federation/job-presets.ts';
import { simulate, type SimulationPartner } from '../../src/federation/simulate.ts';
import { hashParameters } from '../../src/util/hash.ts';
import { splitPartnerData } from '../../cli/partner-data.ts';

/**
 * The refactoring guard: seeded simulations without DP noise (plaintext aggregation, so nothing
 * random is left) must give bit-identical parameters, round by round, to the recorded runs (first
 * recorded before the workload seam and the round machine replaced the fixed round loop; re-recorded
 * when the release grid was introduced, whose AUC must stay within 1e-4 of the earlier one).
 */
const baseline = JSON.parse(readFileSync(new URL('../fixtures/reference/simulate-baseline.json', import.meta.url), 'utf8')) as Record<
  string,
  { modelHash: string; roundHashes: string[]; participants: string[][]; finalAuc: number; finalAucBeforeGrid: number }
>;

const RECORDED_LOCAL_TRAINING = { epochs: 1, batchSize: 64, learningRate: 0.1, optimizer: 'sgd' as const, l2: 0 };

let schema: DatasetSchema;
let parts: SimulationPartner[];

beforeAll(async () => {
  const loaded = await loadBundled('telco-churn');
  schema = loaded.schema;
  const sample = subsetDataset(
    loaded.dataset,
    Array.from({ length: 2000 }, (_, i) => i),
  );
  parts = partitionIid(sample.n, 4, 5).map((idx, i) => ({ name: `p${i}`, ...splitPartnerData(subsetDataset(sample, idx), 0.25, 3) }));
});

const cases: Record<string, { partners: number; o: Partial<JobPresetOptions>; perRound?: number; quorum?: number }> = {
  'logistic-fedavg': { partners: 3, o: {} },
  'mlp-fedadam-sampled': {
    partners: 4,
    o: { model: { kind: 'mlp', hidden: [8], activation: 'relu' }, strategy: { name: 'fedadam', serverLr: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 } },
    perRound: 2,
    quorum: 2,
  },
  'logistic-fedprox': { partners: 3, o: { strategy: { name: 'fedprox', serverLr: 1, mu: 0.1 } } },
};

describe('seeded simulations replay bit for bit against the recorded baseline', () => {
  for (const [name, c] of Object.entries(cases)) {
    it(name, async () => {
      const job = jobPreset({
        jobId: `baseline-${name}`,
        schema,
        partners: c.partners,
        rounds: 3,
        epsilon: null,
        encryption: { scheme: 'plain-insecure' },
        seed: 11,
        ...c.o,
      });
      if (c.perRound) Object.assign(job, { partnersPerRound: c.perRound, quorum: c.quorum });
      // The baseline was recorded with these local-training settings (the non-private preset of the time).
      job.localTraining = RECORDED_LOCAL_TRAINING;
      const r = await simulate({ job: { ...job, createdAt: '2025-01-01T00:00:00.000Z' }, partners: parts.slice(0, c.partners) });
      const want = baseline[name];
      expect(r.rounds.map((x) => x.modelHash)).toEqual(want.roundHashes);
      expect(r.rounds.map((x) => x.partners)).toEqual(want.participants);
      expect(hashParameters(r.params)).toBe(want.modelHash);
      expect(r.finalMetrics.auc).toBe(want.finalAuc);
      expect(Math.abs(r.finalMetrics.auc - want.finalAucBeforeGrid)).toBeLessThan(1e-4);
    });
  }
});
