import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatasetSchema } from '../../../../src/data/schema.ts';
import type { EncryptionSpec } from '../../../../src/federation/manifest.ts';
import { releasePlan } from '../../../../src/federation/workload.ts';
import { gbdtJobPreset, gbdtModel, gbdtWorkload, type GbdtJobPresetOptions } from '../../../../src/federation/workloads/gbdt/index.ts';
import type { FederatedEvalMetrics } from '../../../../src/metrics/histogram.ts';
import { composedEpsilon } from '../../../../src/privacy/accountant.ts';
import { BudgetStore } from '../../../../src/privacy/budget/store.ts';
import { auditLedgers } from '../../../../src/privacy/ledger/audit.ts';
import { readLedger } from '../../../../src/privacy/ledger/reader.ts';
import type { GbdtState } from '../../../../src/trees/index.ts';
import { loadXgboostModel, predictProba } from '../../../../src/trees/index.ts';
import { concatDatasets } from '../../../../src/data/encode.ts';
import { saveJobModel } from '../../../../cli/job-model.ts';
import { startTestCoordinator, type TestCoordinator } from '../../../helpers/coordinator.ts';
import { findPython, xgboostPredict } from '../../../helpers/python-xgboost.ts';
import { telcoPartners, type PartnerData } from '../../../helpers/partners.ts';
import { runBudgetedJob } from '../../../helpers/budgeted-job.ts';
import { expectSameModel, pooledState } from './helpers.ts';

/**
 * Gradient-boosted trees through the real coordinator, partner nodes and owner node over HTTP on a
 * 3-way split: without DP the federated trees are the pooled histogram GBDT's (plaintext and CKKS);
 * with DP every release is charged before its upload, recorded in both ledgers, and the audit
 * recomputes each partner's ε.
 */

const { python, reason } = findPython();
if (!python) console.warn(`[gbdt/nodes] the exported model is not loaded in Python XGBoost: ${reason}`);

let schema: DatasetSchema;
let parts: PartnerData[];
let coord: TestCoordinator;
let dir: string;

beforeAll(async () => {
  ({ schema, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 400, seed: 2 }));
  coord = await startTestCoordinator();
  dir = mkdtempSync(join(tmpdir(), 'fedmark-gbdt-nodes-'));
});
afterAll(async () => {
  await coord?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function runJob(jobId: string, o: { epsilon: number | null; encryption?: EncryptionSpec; gbdt: GbdtJobPresetOptions['gbdt'] }) {
  return runBudgetedJob<GbdtState, FederatedEvalMetrics>({
    url: coord.url,
    dir,
    prefix: `${jobId}-`,
    parts,
    preset: gbdtJobPreset({ jobId, schema, partners: 3, epsilon: o.epsilon, encryption: o.encryption, seed: 4, gbdt: o.gbdt }),
    policy: () => ({ maxEpsilonPerJob: 3, lifetimeEpsilon: 10, allowNonPrivateJobs: true }),
    guarded: o.epsilon !== null,
    timeoutMs: 150_000,
  });
}

describe('gbdt over the real nodes (3 partners, HTTP)', () => {
  for (const [name, encryption] of [
    ['plaintext', { scheme: 'plain-insecure' } as EncryptionSpec],
    ['CKKS', undefined],
  ] as const) {
    it(`without DP, ${name} aggregation: the owner's and every partner's trees are the pooled histogram GBDT's`, async () => {
      const { manifest, result, nodeResults } = await runJob(`gbdt-http-${name.toLowerCase()}`, {
        epsilon: null,
        encryption,
        gbdt: { trees: 5, depth: 3, learningRate: 0.3 },
      });
      expect(result.state, result.reason ?? '').toBe('completed');
      expect(nodeResults.map((r) => r.state)).toEqual(['completed', 'completed', 'completed']);
      expect(new Set([result.modelHash, ...nodeResults.map((r) => r.modelHash)]).size).toBe(1);
      expectSameModel(
        result.finalState,
        pooledState(
          manifest,
          parts.map((p) => p.train),
        ),
      );
      expect(result.finalMetrics!.auc).toBeGreaterThan(0.75);

      // The owner exports the final model as XGBoost JSON (what `fedmark job run` and the demo save): it
      // reloads into fedmark, and Python XGBoost predicts the pooled hold-out as fedmark does.
      const path = await saveJobModel(join(dir, `${manifest.jobId}-out`), manifest, result.finalState, { jobId: manifest.jobId });
      expect(path.endsWith('model.xgb.json')).toBe(true);
      const test = concatDatasets(parts.map((p) => p.test));
      const native = predictProba(gbdtModel(result.finalState), test.X, test.n);
      expect(Array.from(predictProba(await loadXgboostModel(path), test.X, test.n))).toEqual(Array.from(native));
      if (python) {
        const theirs = xgboostPredict(python, path, test.X, manifest.dataset.featureNames.length, dir);
        expect(theirs.length).toBe(test.n);
        let worst = 0;
        for (let i = 0; i < test.n; i++) worst = Math.max(worst, Math.abs(theirs[i] - native[i]));
        expect(worst).toBeLessThan(1e-6);
      }
    }, 180_000);
  }

  it('with DP (cyclic terms, CKKS): one charge per labelled release, both ledgers record them, the audit recomputes ε', async () => {
    const { manifest, result, nodeResults, stores, ledgers } = await runJob('gbdt-http-dp', { epsilon: 2, gbdt: { cyclicEpochs: 1, interactions: 1 } });
    expect(result.state, result.reason ?? '').toBe('completed');
    expect(nodeResults.map((r) => r.state)).toEqual(['completed', 'completed', 'completed']);
    const planned = releasePlan(gbdtWorkload, manifest).rounds.flatMap((r) => r.releases.map((e) => [r.round, e.label]));
    for (const s of stores) {
      const charges = BudgetStore.open(s.path).charges(manifest.jobId);
      expect(charges.map((c) => [c.round, c.label])).toEqual(planned);
      expect(new Set(charges.map((c) => c.label))).toEqual(new Set(['quantiles', 'term-grad', 'term-hess', 'screen-grad', 'screen-hess', 'evaluation']));
      // The final evaluation round's histograms are charged as `evaluation`, in that round.
      expect(charges.filter((c) => c.label === 'evaluation').map((c) => c.round)).toEqual([manifest.rounds + 1]);
    }
    // Each partner's own ledger holds a partner.release per round, before its upload, naming the plan's labels.
    const plannedByRound = new Map(releasePlan(gbdtWorkload, manifest).rounds.map((r) => [r.round, r.releases.map((e) => e.label)]));
    for (const path of ledgers) {
      const released = readLedger(path).entries.filter((e) => e.type === 'partner.release');
      const records = released.map((e) => e.payload as { round: number; releases: { label: string }[] });
      expect(records.map((x) => x.round)).toEqual([...plannedByRound.keys()].filter((r) => plannedByRound.get(r)!.length > 0));
      for (const x of records) expect(x.releases.map((e) => e.label)).toEqual(plannedByRound.get(x.round));
    }
    const coordLedger = coord.engine.ledgerPath(manifest.jobId);
    expect(readLedger(coordLedger).entries.filter((e) => e.type === 'round')).toHaveLength(manifest.rounds);
    const audit = auditLedgers({ coordinator: coordLedger, partners: ledgers, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(audit.ok).toBe(true);
    const want = composedEpsilon(
      releasePlan(gbdtWorkload, manifest).rounds.flatMap((r) => r.releases),
      1e-5,
    );
    for (const p of audit.partners) {
      expect(p.localLedgerChecked).toBe(true);
      expect(p.epsilonRecomputed).toBeCloseTo(want, 9);
      expect(p.epsilon).toBeLessThanOrEqual(2);
    }
  }, 180_000);
});
