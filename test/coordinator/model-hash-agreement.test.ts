import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { ManualPartner, makeIdentities, makeJob, runFederation, telcoPartners, waitForStatus } from '../helpers/partners.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/index.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { join } from 'node:path';

describe("the coordinator refuses to go on when partners' model hashes disagree", () => {
  let coord: TestCoordinator;
  beforeAll(async () => {
    coord = await startTestCoordinator();
  });
  afterAll(async () => {
    await coord?.close();
  });

  it('stops the job, records why, and opens no further round', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 200 });
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b', 'retail-c']);
    const { manifest, signed } = makeJob({ jobId: 'hash-split', schema, owner, partners: ids, rounds: 3, encryption: DEFAULT_HE_PARAMS });
    const honest = runFederation({ url: coord.url, owner, identities: ids, signed, parts, schemaHash, stateDir: coord.dir, nodes: [1, 2], timeoutMs: 60_000 });
    const rogue = await ManualPartner.join({ url: coord.url, identity: ids[0], jobId: manifest.jobId, train: parts[0].train, test: parts[0].test });
    try {
      const watcher = new CoordinatorClient(coord.url, owner);
      await waitForStatus(watcher, manifest.jobId, (s) => s.round === 1 && s.roundState === 'open', 'round 1 to open');
      const { body } = await rogue.build(1);
      await rogue.submit(1, body);
      await waitForStatus(watcher, manifest.jobId, (s) => s.closedRounds.includes(1), 'round 1 to close');
      // bank-a claims a different model after round 1 (a partner out of step, or a tampered aggregate).
      await rogue.client.reportModelHash(manifest.jobId, 1, 'f'.repeat(64));
      const { owner: ownerResult, nodes } = await honest;
      expect(ownerResult.state).toBe('failed');
      expect(ownerResult.reason).toMatch(/model hashes disagree after round 1/);
      for (const n of nodes) expect(n.state).toBe('failed');
      const status = await watcher.status(manifest.jobId);
      expect(status.state).toBe('failed');
      expect(Math.max(...status.closedRounds)).toBeLessThanOrEqual(2);
      const ledger = readLedger(join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`)).entries;
      expect(ledger.at(-1)!.type).toBe('job.halt');
      expect(JSON.stringify(ledger.at(-1)!.payload)).toMatch(/model hashes disagree after round 1/);
    } finally {
      rogue.dispose();
    }
  }, 90_000);
});
