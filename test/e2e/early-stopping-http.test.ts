import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { parseManifest, signManifest, MANIFEST_SCHEMA_VERSION } from '../../src/federation/manifest.ts';
import { epsilonAfterRounds, planDp } from '../../src/federation/workloads/sgd/dp-plan.ts';
import { runPartnerNode } from '../../partner/node.ts';
import { runJobOwner } from '../../owner/node.ts';
import { MemoryBudgetGuard } from '../../src/privacy/budget/memory-guard.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import type { SgdState } from '../../src/federation/workloads/sgd/index.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { silentLog, telcoPartners, TEST_POLL_MS, type PartnerData } from '../helpers/partners.ts';

describe('early stopping over HTTP: 2 partner nodes, CKKS + DP (ε = 3)', () => {
  let coord: TestCoordinator;
  let parts: PartnerData[];
  let schemaHash: string;
  let schema: Awaited<ReturnType<typeof telcoPartners>>['schema'];

  beforeAll(async () => {
    coord = await startTestCoordinator();
    ({ parts, schemaHash, schema } = await telcoPartners({ partners: 2, rowsPerPartner: 600 }));
  });
  afterAll(async () => {
    await coord?.close();
  });

  it('every node stops at the same round, the coordinator skips the rest, both ledgers record the chosen round, and the audit recomputes ε for what ran', async () => {
    const owner = generateIdentity('owner');
    const ids = ['bank-a', 'telco-b'].map((n) => generateIdentity(n));
    // minDelta 1: no checkpoint after the first can improve, so every node stops at the second (after round 2, scored in round 3).
    const manifest = parseManifest({
      ...jobPreset({
        jobId: 'es-http',
        schema,
        partners: 2,
        rounds: 6,
        epsilon: 3,
        seed: 7,
        earlyStopping: { every: 1, patience: 1, minDelta: 1, metric: 'auc' },
      }),
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      createdAt: new Date().toISOString(),
      owner: publicIdentity(owner),
      partners: ids.map(publicIdentity),
    });
    const nodes = ids.map((identity, i) =>
      runPartnerNode({
        coordinatorUrl: coord.url,
        identity,
        jobId: manifest.jobId,
        train: parts[i].train,
        test: parts[i].test,
        schemaHash,
        stateDir: join(coord.dir, identity.name),
        reviewJob: () => [],
        budget: new MemoryBudgetGuard(3),
        log: silentLog,
        pollMs: TEST_POLL_MS,
      }),
    );
    const ownerRun = runJobOwner({ coordinatorUrl: coord.url, identity: owner, signed: signManifest(manifest, owner), log: silentLog, pollMs: TEST_POLL_MS });
    const [ownerResult, ...results] = await Promise.all([ownerRun, ...nodes]);
    expect(ownerResult.state).toBe('completed');
    for (const r of results) expect(r.modelHash).toBe(ownerResult.modelHash);
    // Rounds 1–3 trained, 4–6 skipped, 7 evaluated the restored model.
    expect(ownerResult.roundMetrics.map((r) => r.round)).toEqual([1, 2, 3, 7]);
    const state = ownerResult.finalState as SgdState;
    expect(state.selection?.chosen).toEqual({ round: 1, stopped: true });
    expect([...state.params]).toEqual([...state.selection!.best!.params]);

    const coordLedger = join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`);
    const entries = readLedger(coordLedger).entries;
    const rounds = entries.filter((e) => e.type === 'round').map((e) => e.payload as { round: number; selection?: unknown });
    expect(rounds.map((r) => r.round)).toEqual([1, 2, 3]);
    expect(rounds[2].selection).toEqual({ round: 1, stopped: true });
    const final = entries.find((e) => e.type === 'model.final')!.payload as { rounds: number; selection?: unknown; modelHash: string };
    expect(final).toMatchObject({ rounds: 3, selection: { round: 1, stopped: true }, modelHash: ownerResult.modelHash });
    const partnerLedgers = ids.map((id) => join(coord.dir, id.name, 'partner.ledger.jsonl'));
    for (const path of partnerLedgers) {
      const sel = readLedger(path).entries.filter((e) => e.type === 'partner.selection');
      expect(sel.map((e) => e.payload)).toMatchObject([{ jobId: manifest.jobId, round: 3, selection: { round: 1, stopped: true } }]);
    }

    const audit = auditLedgers({ coordinator: coordLedger, partners: partnerLedgers, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    const plan = planDp(manifest)!;
    // What ran: the weight, 3 updates and 3 evaluations (rounds 2, 3 and 7) — less than the plan's 6 + 6, never less than spent.
    const spent = epsilonAfterRounds(plan, 3, 3);
    for (const p of audit.partners) {
      expect(p.epsilon).toBeCloseTo(spent, 6);
      expect(p.epsilon).toBeLessThan(plan.split.total);
    }
  }, 120_000);
});
