import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { ManualPartner, makeIdentities, partnerNodes, silentLog, telcoPartners, waitForStatus } from '../helpers/partners.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { runJobOwner } from '../../owner/node.ts';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { parseManifest, signManifest, MANIFEST_SCHEMA_VERSION } from '../../src/federation/manifest.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';

describe('dropouts and stragglers', () => {
  let coord: TestCoordinator;
  beforeAll(async () => {
    coord = await startTestCoordinator();
  });
  afterAll(async () => {
    await coord?.close();
  });

  it('closes rounds at the deadline with the quorum, refuses late uploads, and lets the absent partner rejoin and catch up', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 200 });
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b', 'retail-c']);
    const manifest = parseManifest({
      ...jobPreset({ jobId: 'stragglers', schema, partners: 3, rounds: 4, epsilon: null }),
      quorum: 2,
      roundDeadlineSeconds: 3,
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      createdAt: new Date().toISOString(),
      owner: publicIdentity(owner),
      partners: ids.map(publicIdentity),
    });
    const start = partnerNodes({
      url: coord.url,
      identities: ids,
      parts,
      jobId: manifest.jobId,
      schemaHash,
      stateDir: (i) => join(coord.dir, ids[i].name),
      pollMs: 100,
    });
    const ownerRun = runJobOwner({ coordinatorUrl: coord.url, identity: owner, signed: signManifest(manifest, owner), log: silentLog, pollMs: 100 });
    const a = start(0);
    const b = start(1);
    const watcher = new CoordinatorClient(coord.url, owner);
    for (
      let i = 0;
      i < 100 &&
      !(await watcher.status(manifest.jobId).then(
        () => true,
        () => false,
      ));
      i++
    )
      await new Promise((r) => setTimeout(r, 100));

    // retail-c accepts and gets the key, then goes silent: it is selected, and every round waits for
    // it until the deadline, then closes with the two partners that made it (quorum 2).
    const silent = await ManualPartner.join({ url: coord.url, identity: ids[2], jobId: manifest.jobId, train: parts[2].train, test: parts[2].test });
    let lateUpload: Response;
    try {
      const stale = await silent.build(1);
      const s2 = await waitForStatus(watcher, manifest.jobId, (s) => s.closedRounds.includes(2), 'round 2 to close', { timeoutMs: 40_000, pollMs: 100 });
      expect(s2.partners.find((p) => p.name === 'retail-c')?.status).toBe('accepted');
      // Its upload for round 1, long closed, is refused with a clear error.
      lateUpload = await silent.client.request('PUT', `/v1/jobs/${manifest.jobId}/rounds/1/submission`, manifest.jobId, 1, stale.body);
    } finally {
      silent.dispose();
    }
    expect(lateUpload.status).toBe(409);
    expect(((await lateUpload.json()) as { code: string }).code).toBe('ROUND_CLOSED');

    // retail-c comes back: its node replays the published aggregates to catch up, and takes part again.
    const c = start(2);
    const [ownerResult, ra, rb, rc] = await Promise.all([ownerRun, a, b, c]);
    expect(ownerResult.state).toBe('completed');
    for (const r of [ra, rb, rc]) {
      expect(r.state).toBe('completed');
      expect(r.modelHash).toBe(ownerResult.modelHash);
    }
    const ledger = readLedger(join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`)).entries;
    const rounds = ledger
      .filter((e) => e.type === 'round')
      .map((e) => e.payload as { round: number; selected: string[]; submitted: string[]; dropped: string[] });
    const cKey = manifest.partners[2].keyId;
    expect(rounds[0].selected).toContain(cKey);
    expect(rounds[0].dropped).toContain(cKey);
    expect(rounds.some((r) => r.submitted.includes(cKey))).toBe(true);
    for (const r of rounds) expect(r.submitted.length).toBeGreaterThanOrEqual(2);
    const audit = auditLedgers({ coordinator: join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`), epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
  }, 120_000);
});
