import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import { join } from 'node:path';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { ManualPartner, makeIdentities, makeJob, runFederation, telcoPartners, waitForStatus } from '../helpers/partners.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/index.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { registerJob } from '../../owner/register.ts';
import { FedmarkError } from '../../src/errors.ts';
import type { JobEngine } from '../../coordinator/job-engine.ts';

// The coordinator's disk fills: its ledger (an injected ENOSPC on the entry's write) and its SQLite
// store (SQLITE_FULL raised by the upload's write inside its transaction). Every refusal is a
// retryable 507 with a code, nothing of the refused request is kept, and an accepted one is never
// answered with an error.
const errnoError = (code: string) => Object.assign(new Error(`${code}: injected`), { code });

describe("the coordinator's storage fills up", () => {
  let coord: TestCoordinator;
  beforeAll(async () => {
    coord = await startTestCoordinator({ logLevel: 'warn' });
  });
  afterAll(async () => {
    await coord?.close();
  });
  afterEach(() => vi.restoreAllMocks());

  it('a registration whose ledger genesis hits ENOSPC is refused with 507 STORAGE_FULL and leaves no job behind; the retry registers it with one genesis entry', async () => {
    const { schema } = await telcoPartners({ partners: 2, rowsPerPartner: 50 });
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b']);
    const { manifest, signed } = makeJob({ jobId: 'disk-genesis', schema, owner, partners: ids, rounds: 1 });
    const real = fs.writeSync;
    // Only the ledger entry's own write (canonical JSON starts with its sorted first key), not the log's.
    vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buf: unknown, ...rest: unknown[]) => {
      if (Buffer.isBuffer(buf) && buf.subarray(0, 10).toString() === '{"author":') throw errnoError('ENOSPC');
      return (real as (...a: unknown[]) => number)(fd, buf, ...rest);
    }) as typeof fs.writeSync);
    const client = new CoordinatorClient(coord.url, owner, { unreachableRetryMs: 0 });
    const refused = await registerJob(client, signed, owner, null, null).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(FedmarkError);
    expect((refused as FedmarkError).code).toBe('STORAGE_FULL');
    expect(coord.store.getJob(manifest.jobId)).toBeUndefined();
    vi.restoreAllMocks();
    await registerJob(client, signed, owner, null, null);
    const ledger = readLedger(join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`));
    expect(ledger.problems).toEqual([]);
    expect(ledger.entries.map((e) => e.type)).toEqual(['job.manifest']);
  });

  it('an upload that meets a full SQLite store gets 507 and is not kept; after space returns it is accepted, and a storage failure after its commit still answers success; the job completes with exact counts', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 2, rowsPerPartner: 150 });
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b']);
    const { manifest, signed } = makeJob({ jobId: 'disk-store', schema, owner, partners: ids, rounds: 1, encryption: DEFAULT_HE_PARAMS });
    const honest = runFederation({ url: coord.url, owner, identities: ids, signed, parts, schemaHash, stateDir: coord.dir, nodes: [1], timeoutMs: 90_000 });
    const manual = await ManualPartner.join({ url: coord.url, identity: ids[0], jobId: manifest.jobId, train: parts[0].train, test: parts[0].test });
    try {
      const watcher = new CoordinatorClient(coord.url, owner);
      await waitForStatus(watcher, manifest.jobId, (s) => s.round === 1 && s.roundState === 'open', 'round 1 to open', { timeoutMs: 60_000 });
      const { body } = await manual.build(1);
      // The store is full for this upload: better-sqlite3 raises SQLITE_FULL from the write inside the
      // upload's transaction (injected at that write; whether a real max_page_count trips depends on
      // whether the honest partner's upload already made the rows this one updates in place).
      const realInsert = coord.store.insertSubmission.bind(coord.store);
      let full = true;
      vi.spyOn(coord.store, 'insertSubmission').mockImplementation((row) => {
        if (full) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
        realInsert(row);
      });
      const once = new CoordinatorClient(coord.url, ids[0], { unreachableRetryMs: 0 });
      const res = await once.request('PUT', `/v1/jobs/${manifest.jobId}/rounds/1/submission`, manifest.jobId, 1, body);
      const answer = (await res.json()) as { code: string; error: string };
      full = false;
      expect(res.status).toBe(507);
      expect(answer.code).toBe('STORAGE_FULL');
      expect(answer.error).toMatch(/nothing of this request was kept/);
      expect(res.headers.get('retry-after')).toBe('30');
      expect(coord.store.submission(manifest.jobId, 1, 0, manual.keyId)).toBeUndefined();

      // Space is back. The upload commits; the step after it (closing the round) fails on storage once:
      // the answer is still success, and the coordinator's tick carries the step out.
      const engine = coord.engine as unknown as { drive: JobEngine['advance'] & ((jobId: string, event: { type: string }) => void) };
      const drive = engine.drive.bind(engine);
      let failedAfterCommit = 0;
      vi.spyOn(engine, 'drive').mockImplementation((jobId: string, event: { type: string; keyId?: string }) => {
        // Only this partner's upload: the honest node's may arrive at any moment.
        if (event.type === 'uploaded' && event.keyId === manual.keyId && failedAfterCommit++ === 0) throw errnoError('ENOSPC');
        drive(jobId, event);
      });
      expect(await manual.submit(1, body)).toEqual({ duplicate: false });
      expect(failedAfterCommit).toBe(1);
      vi.restoreAllMocks();
      await waitForStatus(watcher, manifest.jobId, (s) => s.closedRounds.includes(1), 'round 1 to close', { timeoutMs: 60_000 });
      await manual.applyRound(1);
      await waitForStatus(watcher, manifest.jobId, (s) => s.round === 2 && s.roundState === 'open', 'the evaluation round to open', { timeoutMs: 60_000 });
      await manual.submit(2, (await manual.build(2)).body);
      const { owner: ownerResult, nodes } = await honest;
      expect(ownerResult.state).toBe('completed');
      expect(nodes[0].state).toBe('completed');
      const ledger = readLedger(join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`));
      expect(ledger.problems).toEqual([]);
      const rounds = ledger.entries.filter((e) => e.type === 'round');
      expect(rounds).toHaveLength(1);
      expect(JSON.stringify(rounds[0].payload)).toContain(manual.keyId);
    } finally {
      manual.dispose();
    }
  }, 150_000);
});
