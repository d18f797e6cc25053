import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatasetSchema } from '../../../../src/data/schema.ts';
import { featureStatsPreset } from '../../../../src/federation/presets/standardized.ts';
import type { FeatureStats } from '../../../../src/federation/workloads/feature-stats/index.ts';
import { composedEpsilon } from '../../../../src/privacy/accountant.ts';
import { BudgetStore } from '../../../../src/privacy/budget/store.ts';
import { auditLedgers } from '../../../../src/privacy/ledger/audit.ts';
import { startTestCoordinator, type TestCoordinator } from '../../../helpers/coordinator.ts';
import { telcoPartners, type PartnerData } from '../../../helpers/partners.ts';
import { runBudgetedJob } from '../../../helpers/budgeted-job.ts';

/**
 * The built-in feature-statistics workload through the real coordinator, partner nodes and owner
 * node (default registry, CKKS, DP): each partner charges its one `moments` release before the
 * upload leaves, every key holder reaches the same statistics, and the audit recomputes ε.
 */
let schema: DatasetSchema;
let parts: PartnerData[];
let coord: TestCoordinator;
let dir: string;

beforeAll(async () => {
  ({ schema, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 400 }));
  coord = await startTestCoordinator();
  dir = mkdtempSync(join(tmpdir(), 'fedmark-feature-stats-'));
});
afterAll(async () => {
  await coord?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('feature statistics over HTTP', () => {
  it('runs with DP: one charged release per partner, the same statistics everywhere, the audit agrees', async () => {
    const { manifest, result, nodeResults, stores, ledgers } = await runBudgetedJob<FeatureStats, FeatureStats>({
      url: coord.url,
      dir,
      parts,
      preset: featureStatsPreset({ jobId: 'feature-stats-http', schema, partners: 3, epsilon: 3, seed: 5 }),
      policy: () => ({ maxEpsilonPerJob: 1, lifetimeEpsilon: 5 }),
      timeoutMs: 60_000,
    });
    expect(result.state, result.reason ?? '').toBe('completed');
    expect(nodeResults.map((r) => r.state)).toEqual(['completed', 'completed', 'completed']);
    expect(new Set([result.modelHash, ...nodeResults.map((r) => r.modelHash)]).size).toBe(1);
    expect(result.finalState.columns).toEqual(['tenure', 'MonthlyCharges', 'TotalCharges']);
    expect(result.finalState.mean).toHaveLength(3);

    for (const s of stores) {
      const charges = BudgetStore.open(s.path).charges(manifest.jobId);
      expect(charges.map((c) => [c.round, c.attempt, c.label, c.samplingRate, c.steps])).toEqual([[1, 0, 'moments', 1, 1]]);
    }
    const coordLedger = coord.engine.ledgerPath(manifest.jobId);
    const audit = auditLedgers({ coordinator: coordLedger, partners: ledgers, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(audit.ok).toBe(true);
    for (const p of audit.partners) {
      expect(p.localLedgerChecked).toBe(true);
      expect(p.epsilonRecomputed).toBeGreaterThan(0);
      expect(p.epsilonRecomputed).toBeLessThanOrEqual(0.3 + 1e-9);
    }
  }, 90_000);
});
