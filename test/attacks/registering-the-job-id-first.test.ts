/**
 * Issue 11 item 3 — registering the job id first. A partner is told "join job X"; an outsider who
 * registers X first, naming itself owner, with `plain-insecure` aggregation and quorum 1, reads the
 * partner's update in plaintext. The partner decides who it works for: a pinned owner key (policy
 * `trustedOwnerKeyIds` or `--owner-key-id`), the encryption it requires (`allowPlaintextAggregation`,
 * default false), a minimum quorum (`minQuorum`, default 2), a maximum number of rounds
 * (`maxRounds`), and a pinned coordinator identity (`--coordinator-key-id`).
 *
 * Every job here is acceptable except for the one property under test, and the last test checks that
 * the same pinned partner accepts the real owner's job, so a node that refuses everything fails it.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { WEIGHT_UNIT } from '../../src/federation/workloads/sgd/index.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { LyingProxy, jsonResponse } from '../helpers/lying-proxy.ts';
import {
  defineJob,
  readPlaintextVector,
  registerJob,
  startOwner,
  startPartner,
  startWorld,
  uploadParts,
  uploads,
  verdictOf,
  waitFor,
  writePolicy,
  type AttackWorld,
} from './harness.ts';

const outsider = generateIdentity('outsider');

describe.concurrent('attack: registering the job id first', () => {
  let world: AttackWorld;
  let impostor: TestCoordinator;
  let impostorProxy: LyingProxy;
  beforeAll(async () => {
    world = await startWorld({ name: 'squat' });
    impostor = await startTestCoordinator({ logLevel: 'warn' });
    impostorProxy = await LyingProxy.start(impostor.url);
  });
  afterAll(async () => {
    await world?.close();
    await impostorProxy?.close();
    await impostor?.close();
  });

  it('an outsider who registers the job id first, naming itself owner, with plain-insecure aggregation and quorum 1, is refused by a partner pinned to its real owner', async ({
    expect,
  }) => {
    const { manifest, signed } = defineJob(world, {
      jobId: 'squat-headline',
      owner: outsider,
      partners: [0],
      overrides: { encryption: { scheme: 'plain-insecure' }, quorum: 1, partnersPerRound: 1 },
    });
    startOwner(world, signed, { identity: outsider });
    const node = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest) });
    const v = await verdictOf(world, node, manifest.jobId, { keepRunning: true });
    let read = '';
    if (v.accepted) {
      // What the outsider gets for it: the partner's update in plaintext, weight = training rows / 10⁴.
      const up = await waitFor(() => uploads(world, node.keyId)[0], 'the partner to upload', 20_000).catch(() => null);
      const vec = up && readPlaintextVector(uploadParts(up.body).update);
      if (vec)
        read = `; the outsider read its plaintext update: weight ${vec[vec.length - 1]} = ${Math.round(vec[vec.length - 1] * WEIGHT_UNIT)} training rows (true: ${(await world.partnerData(0)).train.n})`;
      await node.kill();
    }
    expect(v.accepted, `the partner accepted the outsider's job${read}`).toBe(false);
    expect(uploads(world, node.keyId).length).toBe(0);
  }, 240_000);

  it("is refused on the policy's trustedOwnerKeyIds alone", async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'squat-policy-pin', owner: outsider });
    startOwner(world, signed, { identity: outsider });
    const node = await startPartner(world, 0, {
      jobId: manifest.jobId,
      policyFile: writePolicy(world, 0, manifest, { extra: { trustedOwnerKeyIds: [publicIdentity(world.owner).keyId] } }),
      flags: { '--coordinator-key-id': world.coordinatorKeyId },
    });
    const v = await verdictOf(world, node, manifest.jobId);
    expect(
      v.accepted,
      `a partner whose policy trusts only owner ${publicIdentity(world.owner).keyId} accepted a job owned by ${publicIdentity(outsider).keyId}`,
    ).toBe(false);
    expect(v.uploaded).toBe(0);
  }, 240_000);

  it('is refused on --owner-key-id alone', async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'squat-flag-pin', owner: outsider });
    startOwner(world, signed, { identity: outsider });
    const node = await startPartner(world, 0, {
      jobId: manifest.jobId,
      policyFile: writePolicy(world, 0, manifest, { extra: {} }),
      flags: { '--owner-key-id': publicIdentity(world.owner).keyId, '--coordinator-key-id': world.coordinatorKeyId },
    });
    const v = await verdictOf(world, node, manifest.jobId);
    expect(
      v.accepted,
      `a partner started with --owner-key-id ${publicIdentity(world.owner).keyId} accepted a job owned by ${publicIdentity(outsider).keyId}`,
    ).toBe(false);
    expect(v.uploaded).toBe(0);
  }, 240_000);

  it('plain-insecure aggregation is refused unless the policy sets allowPlaintextAggregation', async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'squat-plain', overrides: { encryption: { scheme: 'plain-insecure' } } });
    startOwner(world, signed);
    const refusing = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest) });
    const allowing = await startPartner(world, 1, {
      jobId: manifest.jobId,
      policyFile: writePolicy(world, 1, manifest, { extra: { trustedOwnerKeyIds: [publicIdentity(world.owner).keyId], allowPlaintextAggregation: true } }),
    });
    const [r, a] = await Promise.all([verdictOf(world, refusing, manifest.jobId), verdictOf(world, allowing, manifest.jobId)]);
    expect(r.accepted, 'a partner with a default policy accepted a plain-insecure job').toBe(false);
    expect(a.accepted, 'a partner whose policy allows plaintext aggregation refused the job').toBe(true);
  }, 240_000);

  it('a quorum below 2 is refused (minQuorum defaults to 2)', async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'squat-quorum', overrides: { quorum: 1 } });
    startOwner(world, signed);
    const node = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest) });
    const v = await verdictOf(world, node, manifest.jobId);
    expect(v.accepted, 'a partner with a default policy accepted a job with quorum 1').toBe(false);
  }, 240_000);

  it("more rounds than the policy's maxRounds are refused", async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'squat-rounds', rounds: 12 });
    startOwner(world, signed);
    const node = await startPartner(world, 0, {
      jobId: manifest.jobId,
      policyFile: writePolicy(world, 0, manifest, { extra: { trustedOwnerKeyIds: [publicIdentity(world.owner).keyId], maxRounds: 5 } }),
    });
    const v = await verdictOf(world, node, manifest.jobId);
    expect(v.accepted, 'a partner whose policy sets maxRounds 5 accepted a 12-round job').toBe(false);
  }, 240_000);

  it('a coordinator whose identity is not the pinned one is refused, even when it claims the pinned identity', async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'squat-impostor' });
    // The job is registered (by its real owner) at an impostor coordinator, which tells nodes it is the real one.
    const real = await (await fetch(`${world.coordinator.url}/v1/identity`)).json();
    impostorProxy.on({ method: 'GET', path: /^\/v1\/identity$/ }, () => jsonResponse(200, real));
    await registerJob(impostor.url, signed, world.owner);
    startOwner(world, signed, { url: impostor.url });
    const node = await startPartner(world, 0, { jobId: manifest.jobId, url: impostorProxy.url, policyFile: writePolicy(world, 0, manifest) });
    const v = await verdictOf(world, node, manifest.jobId, { proxy: impostorProxy });
    expect(v.accepted, `a partner pinned to coordinator ${world.coordinatorKeyId} accepted a job at an impostor coordinator`).toBe(false);
  }, 240_000);

  it("the same pinned partner accepts its real owner's job at its real coordinator (control)", async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'squat-control' });
    startOwner(world, signed);
    const node = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest) });
    const v = await verdictOf(world, node, manifest.jobId);
    expect(v.accepted, `the pinned partner refused its real owner's job: ${v.exit?.tail.slice(-3).join(' | ')}`).toBe(true);
  }, 240_000);
});
