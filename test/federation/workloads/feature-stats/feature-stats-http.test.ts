import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJobOwner } from '../../../../owner/node.ts';
import { runPartnerNode } from '../../../../partner/node.ts';
import { publicIdentity } from '../../../../src/crypto/identity.ts';
import type { DatasetSchema } from '../../../../src/data/schema.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest, signManifest } from '../../../../src/federation/manifest.ts';
import { featureStatsPreset } from '../../../../src/federation/presets/standardized.ts';
import type { FeatureStats } from '../../../../src/federation/workloads/feature-stats/index.ts';
import { composedEpsilon } from '../../../../src/privacy/accountant.ts';
import { PolicyBudgetGuard } from '../../../../src/privacy/budget/policy-guard.ts';
import { BudgetStore } from '../../../../src/privacy/budget/store.ts';
import { auditLedgers } from '../../../../src/privacy/ledger/audit.ts';
import { parsePolicy } from '../../../../src/privacy/policy.ts';
import { startTestCoordinator, type TestCoordinator } from '../../../helpers/coordinator.ts';
import { makeIdentities, silentLog, TEST_POLL_MS, telcoPartners, type PartnerData } from '../../../helpers/partners.ts';

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
    const owner = makeIdentities(['owner'])[0];
    const ids = makeIdentities(parts.map((p) => p.name));
    const manifest = parseManifest({
      ...featureStatsPreset({ jobId: 'feature-stats-http', schema, partners: 3, epsilon: 3, seed: 5 }),
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      createdAt: new Date().toISOString(),
      owner: publicIdentity(owner),
      partners: ids.map(publicIdentity),
    });
    const signed = signManifest(manifest, owner);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error('feature-stats job did not finish in time')), 60_000);
    const stores = parts.map((p) => BudgetStore.open(join(dir, `${p.name}.budget.json`)));
    const ledgers = parts.map((p) => join(dir, `${p.name}.ledger.jsonl`));
    try {
      const nodes = parts.map((p, i) => {
        const policy = parsePolicy({
          partner: p.name,
          datasetId: `${p.name}-customers`,
          maxEpsilonPerJob: 1,
          lifetimeEpsilon: 5,
          maxDelta: 1e-5,
          allowedColumns: manifest.dataset.columns,
          allowedPurposes: [manifest.purpose],
        });
        return runPartnerNode({
          coordinatorUrl: coord.url,
          identity: ids[i],
          jobId: manifest.jobId,
          train: p.train,
          test: p.test,
          schemaHash: manifest.dataset.schemaHash,
          reviewJob: () => [],
          log: silentLog,
          pollMs: TEST_POLL_MS,
          stateDir: join(dir, p.name),
          budget: new PolicyBudgetGuard(policy, stores[i]),
          ledgerPath: ledgers[i],
          signal: abort.signal,
        });
      });
      const ownerRun = runJobOwner<FeatureStats, FeatureStats>({
        coordinatorUrl: coord.url,
        identity: owner,
        signed,
        log: silentLog,
        pollMs: TEST_POLL_MS,
        signal: abort.signal,
      });
      const [result, ...nodeResults] = await Promise.all([ownerRun, ...nodes]);
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
    } finally {
      clearTimeout(timer);
    }
  }, 90_000);
});
