import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, partnerNodes, silentLog, telcoPartners } from '../helpers/partners.ts';
import { runJobOwner } from '../../owner/node.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { MemoryBudgetGuard } from '../../src/privacy/budget/memory-guard.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { publicIdentity } from '../../src/crypto/identity.ts';

// Issue 19 item 1: a partner dies after charging, recording the release and persisting its envelope,
// before the bytes are sent. The node's process "dies" at that exact point (the send throws and the
// node's loop ends with it, as a SIGKILL there would leave the state dir); a new node on the same
// state dir resumes.
describe('a partner killed between persisting its envelope and sending it', () => {
  let coord: TestCoordinator;
  beforeAll(async () => {
    coord = await startTestCoordinator();
  });
  afterAll(async () => {
    await coord?.close();
  });
  afterEach(() => vi.restoreAllMocks());

  it("resends the same envelope, writes every round to its own ledger, is charged once, and removes a killed write's temp file", async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 2, rowsPerPartner: 200 });
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b']);
    const { manifest, signed } = makeJob({ jobId: 'killed-before-record', schema, owner, partners: ids, rounds: 2, epsilon: 3 });
    const guards = ids.map(() => new MemoryBudgetGuard(3));
    const stateDir = (i: number) => join(coord.dir, ids[i].name);
    const node = partnerNodes({ url: coord.url, identities: ids, parts, jobId: manifest.jobId, schemaHash, stateDir, budget: (i) => guards[i], pollMs: 50 });
    const real = CoordinatorClient.prototype.submit;
    let killedAtRound: number | null = null;
    vi.spyOn(CoordinatorClient.prototype, 'submit').mockImplementation(function (this: CoordinatorClient, ...args: Parameters<CoordinatorClient['submit']>) {
      // bank-a dies here the first time (charged, recorded and persisted; nothing sent).
      if (killedAtRound === null && (this as unknown as { identity: { name: string } }).identity.name === ids[0].name) {
        killedAtRound = args[1];
        throw new Error('killed between persisting the envelope and sending it');
      }
      return real.apply(this, args);
    });
    const ownerRun = runJobOwner({ coordinatorUrl: coord.url, identity: owner, signed, log: silentLog, pollMs: 50 });
    const b = node(1);
    await expect(node(0)).rejects.toThrow(/killed between persisting/);
    expect(killedAtRound).toBe(1);
    expect(existsSync(join(stateDir(0), `${manifest.jobId}.releases.json`))).toBe(true);
    const chargesBefore = guards[0].spent(manifest.jobId, manifest.dp!.delta);
    // What a write killed half way leaves behind.
    const tmp = join(stateDir(0), `.${manifest.jobId}.releases.json.99999.0123456789ab.tmp`);
    writeFileSync(tmp, '[[1,');

    const a = await node(0);
    const [ownerResult, rb] = await Promise.all([ownerRun, b]);
    expect(ownerResult.state).toBe('completed');
    expect(a.state).toBe('completed');
    expect(rb.state).toBe('completed');
    expect(a.modelHash).toBe(ownerResult.modelHash);
    expect(existsSync(tmp)).toBe(false);
    expect(chargesBefore).toBeGreaterThan(0);

    const ledgerA = readLedger(join(stateDir(0), 'partner.ledger.jsonl')).entries;
    expect(ledgerA.filter((e) => e.type === 'partner.round').map((e) => (e.payload as { round: number }).round)).toEqual([1, 2]);
    const audit = auditLedgers({
      coordinator: join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`),
      partners: ids.map((_, i) => join(stateDir(i), 'partner.ledger.jsonl')),
      epsilonOf: composedEpsilon,
    });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(audit.ok).toBe(true);
    const pa = audit.partners.find((p) => p.partner === publicIdentity(ids[0]).keyId)!;
    expect(pa.rounds).toBe(2);
    expect(pa.localLedgerChecked).toBe(true);
    // One charge per release: the ε recomputed from the ledgers is what bank-a's budget spent — the
    // resend did not buy a second release — and no more than the two-partner job's other node spent.
    expect(pa.epsilonRecomputed).toBeCloseTo(guards[0].spent(manifest.jobId, manifest.dp!.delta), 9);
    expect(guards[0].spent(manifest.jobId, manifest.dp!.delta)).toBeCloseTo(guards[1].spent(manifest.jobId, manifest.dp!.delta), 9);
  }, 120_000);
});
