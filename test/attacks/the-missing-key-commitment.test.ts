/**
 * Issue 11 item 9 — the missing key commitment. docs/CRYPTO.md says each partner checks the job key
 * it unseals against the owner's commitment to the key's hash. Nothing checks it today: an owner (with
 * the coordinator relaying) that hands one partner a different sealed key than the others splits the
 * key holders — that partner's update is encrypted under a key only the owner holds. The partner must
 * compare the key it unsealed with the owner's commitment in the ledger and refuse before encrypting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { sealJobKey } from '../../src/crypto/key-ceremony.ts';
import { openSecureSum } from '../../src/federation/secure-sum.ts';
import { bytesResponse } from '../helpers/lying-proxy.ts';
import { acceptances, defineJob, startOwner, startPartner, startWorld, uploads, waitFor, writePolicy, type AttackWorld } from './harness.ts';

describe('attack: the missing key commitment', () => {
  let world: AttackWorld;
  beforeAll(async () => {
    world = await startWorld({ name: 'commitment' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('a partner handed a different sealed job key than the others refuses it before encrypting anything', async () => {
    const { manifest, signed } = defineJob(world, { jobId: 'commitment-1', rounds: 1 });
    const victim = world.partners[1];
    // The owner's node commits to (and seals to A) its real key; B receives another key, sealed by the same owner.
    const scheme = await openSecureSum(manifest.encryption);
    const otherKey = scheme.generateSecretKey();
    scheme.dispose();
    const swapped = sealJobKey(manifest.jobId, otherKey, victim.identity.boxPublicKey, world.owner);
    world.proxy.on({ method: 'GET', path: /\/keys\/mine$/, keyId: world.keyIdOf(1) }, () => bytesResponse(200, swapped));

    startOwner(world, signed);
    const nodes = await Promise.all([0, 1].map((i) => startPartner(world, i, { jobId: manifest.jobId, policyFile: writePolicy(world, i, manifest) })));
    const b = nodes[1];
    await waitFor(() => uploads(world, b.keyId).length > 0 || !b.proc.running, 'B to upload or stop', 45_000);
    // Control: A, whose key is the committed one, takes the job (B may refuse before or after accepting).
    await waitFor(() => acceptances(world, nodes[0].keyId, manifest.jobId).includes(true), 'A to accept', 45_000);
    await Promise.all(nodes.map((n) => n.kill()));
    const sent = uploads(world, b.keyId);
    expect(
      sent.length,
      `B accepted a job key (sha256 ${createHash('sha256').update(otherKey).digest('hex').slice(0, 16)}…) that is not the key the owner sealed to A, and uploaded ${sent.length} update(s) encrypted under it`,
    ).toBe(0);
  }, 240_000);
});
