/**
 * A partner node that accepted a job waits for its sealed key; when the job fails its key ceremony
 * (the other partner refuses, so the quorum can never be met) it stops with the job's state and
 * reason instead of polling `GET …/keys/mine` forever.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestLedgerEntry } from '../../../owner/genesis.ts';
import { runPartnerNode } from '../../../partner/node.ts';
import { publicIdentity } from '../../../src/crypto/identity.ts';
import { CoordinatorClient } from '../../../src/federation/protocol/client.ts';
import { sgdWorkload } from '../../../src/federation/workloads/sgd/index.ts';
import { attestPayload, signerFromSecretKey } from '../../../src/privacy/ledger/signing.ts';
import { startTestCoordinator, type TestCoordinator } from '../../helpers/coordinator.ts';
import { rejection } from '../../helpers/errors.ts';
import { makeIdentities, makeJob, silentLog, telcoPartners, TEST_POLL_MS } from '../../helpers/partners.ts';

let coord: TestCoordinator;
let dir: string;
beforeAll(async () => {
  coord = await startTestCoordinator({ logLevel: 'warn' });
  dir = mkdtempSync(join(tmpdir(), 'fedmark-keys-step-'));
});
afterAll(async () => {
  await coord?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('waiting for the job key', () => {
  it('stops with a clear message when the job fails before this node gets its key', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 2, rowsPerPartner: 100 });
    const [owner, a, b] = makeIdentities(['owner', 'bank-a', 'telco-b']);
    const { manifest, signed } = makeJob({ jobId: 'keys-fail', schema, owner, partners: [a, b], rounds: 1, encryption: undefined });
    expect(manifest.encryption.scheme).toBe('ckks');
    const ownerClient = new CoordinatorClient(coord.url, owner);
    await ownerClient.createJob(signed, manifestLedgerEntry(manifest, owner, await ownerClient.coordinatorIdentity(), sgdWorkload.privacy(manifest), null));
    const waiting: string[] = [];
    const node = runPartnerNode({
      coordinatorUrl: coord.url,
      identity: a,
      jobId: manifest.jobId,
      train: parts[0].train,
      test: parts[0].test,
      schemaHash,
      stateDir: join(dir, 'a'),
      reviewJob: () => [],
      budget: undefined,
      log: silentLog,
      pollMs: TEST_POLL_MS,
      onWaiting: (m) => waiting.push(m),
    });
    node.catch(() => undefined);
    // B refuses once A waits for its key: every partner answered, fewer than the quorum accepted.
    const bClient = new CoordinatorClient(coord.url, b);
    for (let i = 0; i < 400 && !waiting.some((m) => m.includes('job key')); i++) await new Promise((r) => setTimeout(r, 50));
    const anchor = (await bClient.manifest(manifest.jobId)).ledgerManifestHash;
    const statement = attestPayload(
      {
        jobId: manifest.jobId,
        partner: publicIdentity(b).keyId,
        manifestHash: anchor,
        code: 'POLICY',
        reason: 'not for us',
        policy: { maxEpsilon: 1, maxDelta: 1e-5 },
      },
      signerFromSecretKey(b.signSecretKey),
    );
    await bClient.accept(manifest.jobId, { accepted: false, reason: 'not for us', statement });
    const err = await rejection(node);
    expect(err.code).toBe('KEY_CEREMONY');
    expect(err.message).toMatch(/job keys-fail is failed \(only 1 partner\(s\) accepted, quorum is 2\) and this node never received its job key: stopping/);
    expect(waiting.find((m) => m.includes('job key'))).toMatch(
      /^waiting for the job key of "keys-fail" from its owner owner: the owner has not uploaded it yet/,
    );
  }, 60_000);
});
