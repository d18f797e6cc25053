/**
 * Issue 13 — attacks on masked aggregation, end to end against real nodes. The coordinator is a
 * lying proxy in front of a real one that holds the coordinator's own signing key (a deviating
 * coordinator signs whatever it likes):
 * - it presents one partner a survivor set without another survivor (to learn that survivor's mask
 *   key from the victim while the others reveal its seed): the victim signs the set it saw, finds
 *   that the unmask request's t consistency signatures are over another set, and reveals nothing;
 * - it replays a signed roster of an earlier round to a partner: refused, that partner shares nothing;
 * - after a partner revealed its shares, it is asked again (after a restart) with another survivor
 *   set, which would give the key share of a partner whose seed share it already revealed: refused;
 * - a stage message of an earlier round posted again (by its own, authenticated sender) is refused by
 *   the coordinator's checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readIdentityFile, type Identity } from '../../src/crypto/identity.ts';
import { signBody, type SignedSurvivors, type SignedUnmask } from '../../src/crypto/secagg/index.ts';
import { parseManifest, signManifest } from '../../src/federation/manifest.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { postSecagg } from '../../src/federation/protocol/secagg-client.ts';
import { defaultSecaggSpec } from '../../src/federation/secagg/spec.ts';
import { SecaggStore } from '../../coordinator/secagg-store.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { jsonResponse, LyingProxy, parseJson } from '../helpers/lying-proxy.ts';
import { makeIdentities, makeJob, partnerNodes, runFederation, silentLog, telcoPartners, TEST_POLL_MS } from '../helpers/partners.ts';
import { runJobOwner } from '../../owner/node.ts';

describe('attack: a coordinator lying about who submitted, and replayed stage messages (masked aggregation)', () => {
  let coord: TestCoordinator;
  let proxy: LyingProxy;
  let stateDir: string;
  let data: Awaited<ReturnType<typeof telcoPartners>>;
  let owner: Identity;
  let identities: Identity[];
  let coordinatorKey: Identity;

  beforeAll(async () => {
    coord = await startTestCoordinator();
    proxy = await LyingProxy.start(coord.url);
    stateDir = mkdtempSync(join(tmpdir(), 'fedmark-attack-survivors-'));
    data = await telcoPartners({ partners: 4, rowsPerPartner: 200 });
    owner = makeIdentities(['owner'])[0];
    identities = makeIdentities(['a', 'b', 'c', 'd']);
    coordinatorKey = readIdentityFile(join(coord.dataDir, 'coordinator.key.json'));
  });
  afterAll(async () => {
    await proxy?.close();
    await coord?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const job = (jobId: string) => {
    const { manifest } = makeJob({ jobId, schema: data.schema, owner, partners: identities, rounds: 1, encryption: defaultSecaggSpec() });
    // Stages close at k/6 of the deadline when someone is missing: 30 s leaves slow (loaded) nodes time to join each stage.
    const m = parseManifest({ ...manifest, quorum: 3, roundDeadlineSeconds: 30 });
    return { manifest: m, signed: signManifest(m, owner) };
  };
  const run = (signed: ReturnType<typeof job>['signed']) =>
    runFederation({ url: proxy.url, owner, identities, signed, parts: data.parts, schemaHash: data.schemaHash, stateDir, timeoutMs: 120_000 });

  it('different survivor sets to different partners: the deceived partner detects it and reveals no share', async () => {
    const { manifest, signed } = job('lie-survivors');
    const victim = manifest.partners[0].keyId;
    const hidden = manifest.partners[1].keyId;
    const removers = [
      // The victim is shown the survivors without `hidden`, signed with the coordinator's own key.
      proxy.rewriteJson<{ message: SignedSurvivors }>(
        { method: 'GET', path: /lie-survivors\/rounds\/1\/secagg\/\d+\/survivors$/, keyId: victim },
        ({ message }) => ({
          message: signBody({ ...message.body, survivors: message.body.survivors.filter((k) => k !== hidden) }, coordinatorKey) as SignedSurvivors,
        }),
      ),
      // Its signature over that set is kept from the honest machine (which would refuse it): the lie goes on.
      proxy.on({ method: 'POST', path: /lie-survivors\/rounds\/1\/secagg\/consistency$/, keyId: victim }, () => jsonResponse(200, { duplicate: false })),
    ];
    try {
      const r = await run(signed);
      // The others saw one set, signed it, revealed, and the round completed without the victim's reveal.
      expect(r.owner.state).toBe('completed');
      for (const n of r.nodes) expect(n.modelHash).toBe(r.owner.modelHash);
    } finally {
      for (const off of removers) off();
    }
    expect(proxy.requests({ method: 'POST', path: /lie-survivors\/rounds\/1\/secagg\/consistency$/, keyId: victim }).length).toBeGreaterThan(0);
    // The unmask request carried t signatures over the true set, not the one the victim signed: no reveal left the victim.
    expect(proxy.requests({ method: 'GET', path: /lie-survivors\/rounds\/1\/secagg\/\d+\/unmask$/, keyId: victim }).length).toBeGreaterThan(0);
    expect(proxy.requests({ method: 'POST', path: /lie-survivors\/rounds\/1\/secagg\/reveal$/, keyId: victim })).toHaveLength(0);
    expect(proxy.requests({ method: 'POST', path: /lie-survivors\/rounds\/1\/secagg\/reveal$/ }).length).toBeGreaterThanOrEqual(3);
  }, 150_000);

  it("a roster replayed from an earlier round is refused by the partner (no share leaves it); an earlier round's message posted again is refused by the coordinator", async () => {
    const { manifest, signed } = job('replay-roster');
    const victim = manifest.partners[2].keyId;
    let round1Roster: unknown = null;
    let replayed: unknown = null;
    const store = new SecaggStore(coord.store.db);
    const client = new CoordinatorClient(coord.url, identities[2]);
    const removers = [
      proxy.on({ method: 'GET', path: /replay-roster\/rounds\/1\/secagg\/\d+\/roster$/, keyId: victim }, async (_req, ctx) => {
        const real = await ctx.forward();
        if (real.status === 200) round1Roster = parseJson(real);
        return real;
      }),
      // Round 2 (the final evaluation, also masked), every attempt: the victim is handed round 1's signed roster.
      proxy.on({ method: 'GET', path: /replay-roster\/rounds\/2\/secagg\/\d+\/roster$/, keyId: victim }, async (_req, ctx) => {
        // While round 2 collects shares, the victim's round-1 shares message is posted to it again (by its own, authenticated key).
        if (replayed === null && round1Roster) {
          const attempt = (round1Roster as { message: { body: { attempt: number } } }).message.body.attempt;
          const old = JSON.parse(store.event(manifest.jobId, 1, attempt, 'shares', victim)!.body) as Record<string, unknown>;
          replayed = await postSecagg(client, manifest.jobId, 2, 'shares', 0, old).catch((err: unknown) => err);
        }
        return round1Roster ? jsonResponse(200, round1Roster) : ctx.forward();
      }),
    ];
    try {
      const r = await run(signed);
      expect(r.owner.state).toBe('completed');
    } finally {
      for (const off of removers) off();
    }
    expect(round1Roster).not.toBeNull();
    expect(proxy.requests({ method: 'POST', path: /replay-roster\/rounds\/1\/secagg\/shares$/, keyId: victim }).length).toBeGreaterThan(0);
    expect(proxy.requests({ method: 'POST', path: /replay-roster\/rounds\/2\/secagg\/shares$/, keyId: victim })).toHaveLength(0);

    expect(replayed).toMatchObject({
      code: 'SECAGG_REFUSED',
      message: expect.stringMatching(/SECAGG_WRONG_ATTEMPT.*round 1 attempt \d, not job replay-roster round 2 attempt 0/),
    });
  }, 150_000);

  it('a second unmask request that would reveal the other share of a partner is refused (never both shares of one partner)', async () => {
    const { manifest, signed } = job('both-shares');
    const [victim, target, , silent] = manifest.partners.map((p) => p.keyId);
    const node = partnerNodes({
      url: proxy.url,
      identities,
      parts: data.parts,
      jobId: manifest.jobId,
      schemaHash: data.schemaHash,
      stateDir: (i) => join(stateDir, `${manifest.jobId}-${identities[i].name}`),
    });
    const start = (i: number, signal: AbortSignal) => node(i, { signal });
    const reveals = () => proxy.requests({ method: 'POST', path: /both-shares\/rounds\/1\/secagg\/reveal$/, keyId: victim });
    let restarted = false;
    const removers = [
      // One partner never reveals, so the unmask stage stays open until its deadline.
      proxy.on({ method: 'POST', path: /both-shares\/rounds\/1\/secagg\/reveal$/, keyId: silent }, () =>
        jsonResponse(409, { statusCode: 409, code: 'SECAGG_ATTEMPT_OVER', error: 'lying proxy: dropped' }),
      ),
      // After the restart, the victim is asked again with `target` out of the sum: its key share instead of the seed share it revealed.
      proxy.rewriteJson<{ message: SignedUnmask }>({ method: 'GET', path: /both-shares\/rounds\/1\/secagg\/\d+\/unmask$/, keyId: victim }, ({ message }) =>
        restarted
          ? { message: signBody({ ...message.body, survivors: message.body.survivors.filter((k) => k !== target) }, coordinatorKey) as SignedUnmask }
          : { message },
      ),
    ];
    try {
      const all = new AbortController();
      const stop = new AbortController();
      const ownerRun = runJobOwner({ coordinatorUrl: proxy.url, identity: owner, signed, log: silentLog, pollMs: TEST_POLL_MS, signal: all.signal });
      const others = [1, 2, 3].map((i) => start(i, all.signal));
      const first = start(0, stop.signal).catch((err: unknown) => err);
      for (let i = 0; i < 1200 && reveals().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(reveals()).toHaveLength(1);
      stop.abort(new Error('operator stop'));
      await first;
      restarted = true;
      const again = await start(0, all.signal);
      const [ownerResult, ...rest] = await Promise.all([ownerRun, ...others]);
      expect(ownerResult.state).toBe('completed');
      for (const n of [...rest, again]) expect(n.modelHash).toBe(ownerResult.modelHash);
    } finally {
      for (const off of removers) off();
    }
    // The restarted victim was asked, and sent nothing more: one reveal, naming the target's seed share only.
    expect(proxy.requests({ method: 'GET', path: /both-shares\/rounds\/1\/secagg\/\d+\/unmask$/, keyId: victim }).length).toBeGreaterThan(1);
    expect(reveals()).toHaveLength(1);
    const sent = parseJson<{ message: { body: { seedShares: { of: string }[]; keyShares: { of: string }[] } } }>(reveals()[0].request).message.body;
    expect(sent.seedShares.map((x) => x.of)).toContain(target);
    expect(sent.keyShares.map((x) => x.of)).not.toContain(target);
  }, 180_000);
});
