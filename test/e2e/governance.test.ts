import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, silentLog, telcoPartners, waitForStatus, type PartnerData } from '../helpers/partners.ts';
import { runPartnerNode } from '../../partner/node.ts';
import { runJobOwner } from '../../owner/node.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { PartnerLedger } from '../../partner/ledger.ts';
import { MemoryBudgetGuard } from '../../src/privacy/budget/memory-guard.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { subjectStatement } from '../../src/privacy/ledger/subject-rights.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { readFileSync } from 'node:fs';

const POLL = 100;

describe('data governance over HTTP: consent withdrawal, data-subject requests, partner withdrawal, emergency brake', () => {
  let coord: TestCoordinator;
  let parts: PartnerData[];
  let schemaHash: string;
  let schema: Awaited<ReturnType<typeof telcoPartners>>['schema'];

  beforeAll(async () => {
    coord = await startTestCoordinator();
    ({ parts, schemaHash, schema } = await telcoPartners({ partners: 3, rowsPerPartner: 240 }));
  });
  afterAll(async () => {
    await coord?.close();
  });

  const node = (identity: ReturnType<typeof generateIdentity>, i: number, jobId: string, extra: Partial<Parameters<typeof runPartnerNode>[0]> = {}) =>
    runPartnerNode({
      coordinatorUrl: coord.url,
      identity,
      jobId,
      train: parts[i].train,
      test: parts[i].test,
      schemaHash,
      stateDir: join(coord.dir, `${jobId}-${identity.name}`),
      reviewJob: () => [],
      budget: new MemoryBudgetGuard(3),
      log: silentLog,
      pollMs: POLL,
      ...extra,
    });

  it('excludes withdrawn customers from later rounds, records it, and answers a data-subject request', async () => {
    const owner = generateIdentity('owner');
    const ids = makeIdentities(['bank-a', 'telco-b', 'retail-c']);
    const { manifest, signed } = makeJob({ jobId: 'gov-consent', schema, owner, partners: ids, rounds: 3, epsilon: 3 });
    const stayed = parts[0].train.ids![0];
    const leaver = parts[0].train.ids![1];
    let withdrawn = new Set<string>();
    const results = await Promise.all([
      runJobOwner({ coordinatorUrl: coord.url, identity: owner, signed, log: silentLog, pollMs: POLL }),
      node(ids[0], 0, manifest.jobId, {
        withdrawnIds: () => withdrawn,
        onRound: ({ round }) => {
          if (round === 1) withdrawn = new Set([leaver]);
        },
      }),
      node(ids[1], 1, manifest.jobId),
      node(ids[2], 2, manifest.jobId),
    ]);
    expect(results[0].state).toBe('completed');
    const stateDir = join(coord.dir, `${manifest.jobId}-bank-a`);
    const ledgerPath = join(stateDir, 'partner.ledger.jsonl');
    const entries = readLedger(ledgerPath).entries;
    const w = entries.find((e) => e.type === 'consent.withdrawal');
    expect(w).toBeDefined();
    expect(w!.payload).toMatchObject({ count: 1, totalWithdrawn: 1 });
    // The rounds after the withdrawal trained on one row fewer.
    const rows = entries.filter((e) => e.type === 'partner.round').map((e) => (e.payload as { rowsUsed: number }).rowsUsed);
    expect(rows[0]).toBe(parts[0].train.n);
    expect(rows.slice(1).every((r) => r === parts[0].train.n - 1)).toBe(true);

    const salt = readFileSync(join(stateDir, 'subject-salt'));
    const st = subjectStatement(ledgerPath, join(stateDir, 'subject-ids'), stayed, salt, { epsilonOf: composedEpsilon });
    expect(st.uses).toHaveLength(1);
    expect(st.uses[0].jobId).toBe(manifest.jobId);
    expect(st.uses[0].modelHash).toBe(results[0].modelHash);
    expect(st.uses[0].epsilon).toBeGreaterThan(0);
    expect(st.uses[0].epsilon).toBeLessThanOrEqual(3);
    const gone = subjectStatement(ledgerPath, join(stateDir, 'subject-ids'), leaver, salt, { epsilonOf: composedEpsilon });
    expect(gone.consentWithdrawn).toBeTruthy();
    const stranger = subjectStatement(ledgerPath, join(stateDir, 'subject-ids'), 'no-such-customer', salt, { epsilonOf: composedEpsilon });
    expect(stranger.uses).toHaveLength(0);
    // The customer id itself is nowhere in the partner's ledger.
    expect(readFileSync(ledgerPath, 'utf8')).not.toContain(stayed);

    const audit = auditLedgers({
      coordinator: join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`),
      partners: ids.map((id) => join(coord.dir, `${manifest.jobId}-${id.name}`, 'partner.ledger.jsonl')),
      epsilonOf: composedEpsilon,
    });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
  }, 90_000);

  it('lets a partner withdraw at once and the owner halt the job; both are recorded and stop the work', async () => {
    const owner = generateIdentity('owner');
    const ids = makeIdentities(['bank-a', 'telco-b', 'retail-c']);
    const { manifest, signed } = makeJob({ jobId: 'gov-brake', schema, owner, partners: ids, rounds: 50, epsilon: 8 });
    const ownerRun = runJobOwner({ coordinatorUrl: coord.url, identity: owner, signed, log: silentLog, pollMs: POLL });
    const nodes = ids.map((id, i) => node(id, i, manifest.jobId));
    const watcher = new CoordinatorClient(coord.url, owner);
    for (
      let i = 0;
      i < 200 &&
      !(await watcher.status(manifest.jobId).then(
        () => true,
        () => false,
      ));
      i++
    )
      await new Promise((r) => setTimeout(r, POLL));
    await waitForStatus(watcher, manifest.jobId, (s) => s.closedRounds.length >= 2, 'two closed rounds', { timeoutMs: 60_000, pollMs: POLL });

    // retail-c leaves: its own ledger and the coordinator's record it, and it stops.
    const leaverDir = join(coord.dir, `${manifest.jobId}-retail-c`);
    const partnerClient = new CoordinatorClient(coord.url, ids[2]);
    const status = await partnerClient.status(manifest.jobId);
    const ledger = PartnerLedger.open(join(leaverDir, 'withdrawal.ledger.jsonl'), ids[2], leaverDir);
    await partnerClient.withdraw(manifest.jobId, 'board decision', ledger.withdrawal(manifest.jobId, 'board decision', Math.max(...status.closedRounds)));
    ledger.close();
    const leaverResult = await nodes[2];
    // Its result names why it stopped (as a restart's join step does), not the job's state.
    expect(leaverResult.state).toBe('withdrawn');
    const after = await watcher.status(manifest.jobId);
    expect(after.partners.find((p) => p.keyId === manifest.partners[2].keyId)?.status).toBe('withdrawn');

    // The owner pulls the emergency brake; everyone stops.
    await watcher.halt(manifest.jobId, 'model misbehaving in A/B test');
    const [ownerResult, a, b] = await Promise.all([ownerRun, nodes[0], nodes[1]]);
    expect(ownerResult.state).toBe('halted');
    expect(a.state).toBe('halted');
    expect(b.state).toBe('halted');
    const jobLedger = readLedger(join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`)).entries;
    expect(jobLedger.some((e) => e.type === 'partner.withdraw')).toBe(true);
    expect(jobLedger.at(-1)!.type).toBe('job.halt');
    expect(jobLedger.at(-1)!.payload).toMatchObject({ reason: 'model misbehaving in A/B test' });
    // A halted job takes no more submissions.
    const late = await partnerClient.request('POST', `/v1/jobs/${manifest.jobId}/acceptance`, manifest.jobId, 0, { accepted: true });
    expect(late.status).toBe(409);
    const audit = auditLedgers({ coordinator: join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`), epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
  }, 120_000);
});
