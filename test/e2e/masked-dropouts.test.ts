import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity } from '../../src/crypto/identity.ts';
import { parseManifest, signManifest } from '../../src/federation/manifest.ts';
import { defaultSecaggSpec } from '../../src/federation/secagg/spec.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { SecaggStore } from '../../coordinator/secagg-store.ts';
import { checkSecaggLedger } from '../../src/federation/secagg/ledger-record.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { jsonResponse, LyingProxy, parseJson } from '../helpers/lying-proxy.ts';
import { makeIdentities, makeJob, partnerNodes, runFederation, silentLog, telcoPartners, TEST_POLL_MS } from '../helpers/partners.ts';
import { runJobOwner } from '../../owner/node.ts';

/**
 * Dropouts at every stage of masked aggregation, in real nodes over HTTP: a proxy in front of the
 * coordinator answers one partner's stage message as if the attempt were over, so that partner sends
 * nothing more for it (it never advertises / never uploads / never reveals). Four partners, t = 3;
 * stages close at k/6 of a 12 s round deadline when someone is missing.
 */
const over = jsonResponse(409, { statusCode: 409, code: 'SECAGG_ATTEMPT_OVER', error: 'lying proxy: this partner dropped out' });

describe('masked aggregation in real nodes: dropouts and restarts', () => {
  let coord: TestCoordinator;
  let proxy: LyingProxy;
  let stateDir: string;
  let data: Awaited<ReturnType<typeof telcoPartners>>;
  let owner: Identity;
  let identities: Identity[];
  let n = 0;

  beforeAll(async () => {
    coord = await startTestCoordinator();
    proxy = await LyingProxy.start(coord.url);
    stateDir = mkdtempSync(join(tmpdir(), 'fedmark-masked-drop-'));
    data = await telcoPartners({ partners: 4, rowsPerPartner: 200 });
    owner = makeIdentities(['owner'])[0];
    identities = makeIdentities(['a', 'b', 'c', 'd']);
  });
  let removers: (() => void)[] = [];
  const rule = (...args: Parameters<LyingProxy['on']>) => removers.push(proxy.on(...args));
  afterEach(() => {
    for (const r of removers) r();
    removers = [];
  });
  afterAll(async () => {
    await proxy?.close();
    await coord?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const job = (jobId: string, roundDeadlineSeconds = 12) => {
    const { manifest } = makeJob({ jobId, schema: data.schema, owner, partners: identities, rounds: 1, encryption: defaultSecaggSpec() });
    const m = parseManifest({ ...manifest, quorum: 3, roundDeadlineSeconds });
    return { manifest: m, signed: signManifest(m, owner) };
  };
  const run = (signed: ReturnType<typeof job>['signed']) =>
    runFederation({ url: proxy.url, owner, identities, signed, parts: data.parts, schemaHash: data.schemaHash, stateDir, timeoutMs: 120_000 });
  const ledger = (jobId: string) => readLedger(join(coord.dataDir, 'ledgers', `${jobId}.ledger.jsonl`)).entries;
  const roundEntry = (jobId: string, round: number) => ledger(jobId).find((e) => e.type === 'round' && (e.payload as { round: number }).round === round)!;
  const expectAllAgree = (r: Awaited<ReturnType<typeof run>>) => {
    expect(r.owner.state).toBe('completed');
    for (const node of r.nodes) expect(node.modelHash).toBe(r.owner.modelHash);
  };

  for (const [stage, path] of [
    ['never advertises', 'advertise'],
    ['drops before uploading (shared its keys)', 'masked'],
    ['drops during unmasking (uploaded, never reveals)', 'reveal'],
  ] as const) {
    it(`a partner that ${stage}: the attempt completes with the others, the sum unmasks exactly, every node agrees`, async () => {
      const { manifest, signed } = job(`masked-drop-${path}-${n++}`);
      const victim = manifest.partners[1].keyId;
      rule({ method: 'POST', path: new RegExp(`/rounds/1/secagg/${path}$`), keyId: victim }, () => over);
      const r = await run(signed);
      expectAllAgree(r);
      const p = roundEntry(manifest.jobId, 1).payload as { submitted: string[]; attempt: number };
      expect(p.attempt).toBe(0);
      // A partner that dropped during unmasking did upload: its update is in the sum (its self-mask removed by the others' seed shares).
      expect(p.submitted.includes(victim)).toBe(path === 'reveal');
      expect(p.submitted).toHaveLength(path === 'reveal' ? 4 : 3);
    }, 150_000);
  }

  it('fewer than t responders in unmasking fails the attempt like a missed quorum (attempt.failed); the next attempt uses fresh keys and completes', async () => {
    const { manifest, signed } = job(`masked-fail-${n++}`);
    for (const k of [0, 1]) {
      rule({ method: 'POST', path: /\/rounds\/1\/secagg\/reveal$/, keyId: manifest.partners[k].keyId }, async (req, ctx) =>
        parseJson<{ attempt: number }>(req).attempt === 0 ? over : ctx.forward(),
      );
    }
    const r = await run(signed);
    expectAllAgree(r);
    const failed = ledger(manifest.jobId).filter((e) => e.type === 'attempt.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].payload).toMatchObject({ round: 1, attempt: 0, reason: expect.stringMatching(/masked aggregation failed at its unmask stage/) });
    // Every uploader of the failed attempt is on record (its charge stays spent).
    expect((failed[0].payload as { submitted: string[] }).submitted).toHaveLength(4);
    expect((roundEntry(manifest.jobId, 1).payload as { attempt: number }).attempt).toBe(1);
    // Both attempts record their own config (a different attempt, a different config id), and the audit recomputes each.
    const ids = [failed[0], roundEntry(manifest.jobId, 1)].map((e) => (e.payload as { secagg?: { configId: string } }).secagg?.configId);
    expect(ids.every((x) => typeof x === 'string') && ids[0] !== ids[1]).toBe(true);
    expect(await checkSecaggLedger('job', ledger(manifest.jobId))).toEqual([]);
    const store = new SecaggStore(coord.store.db);
    const keys = (attempt: number) =>
      store
        .events(manifest.jobId, 1, attempt)
        .filter((e) => e.kind === 'advertise')
        .map((e) => (JSON.parse(e.body) as { body: { maskPublicKey: string } }).body.maskPublicKey);
    expect(keys(0)).toHaveLength(4);
    expect(keys(1)).toHaveLength(4);
    for (const k of keys(1)) expect(keys(0)).not.toContain(k);
  }, 150_000);

  it('a partner node stopped mid-attempt (after sharing) and restarted on its state dir resumes the same attempt with the same keys', async () => {
    const { manifest, signed } = job(`masked-restart-${n++}`, 40);
    const store = new SecaggStore(coord.store.db);
    const victim = 2;
    const node = partnerNodes({
      url: proxy.url,
      identities,
      parts: data.parts,
      jobId: manifest.jobId,
      schemaHash: data.schemaHash,
      stateDir: (i) => join(stateDir, `${manifest.jobId}-${identities[i].name}`),
    });
    const start = (i: number, signal: AbortSignal) => node(i, { signal });
    // The victim's inbox is held back until it is stopped: it has shared, and has not uploaded.
    let release!: () => void;
    const held = new Promise<void>((res) => (release = res));
    rule({ method: 'GET', path: /\/rounds\/1\/secagg\/0\/inbox$/, keyId: manifest.partners[victim].keyId }, async (_req, ctx) => {
      await held;
      return ctx.forward();
    });
    const stop = new AbortController();
    const all = new AbortController();
    const others = [0, 1, 3].map((i) => start(i, all.signal));
    const first = start(victim, stop.signal).catch((err: unknown) => err);
    const ownerRun = runJobOwner({ coordinatorUrl: proxy.url, identity: owner, signed, log: silentLog, pollMs: TEST_POLL_MS, signal: all.signal });
    const shared = () => store.event(manifest.jobId, 1, 0, 'shares', manifest.partners[victim].keyId);
    for (let i = 0; i < 600 && !shared(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(shared()).toBeDefined();
    stop.abort(new Error('operator stop'));
    release();
    expect(await first).toBeInstanceOf(Error);
    const advertised = store.event(manifest.jobId, 1, 0, 'advertise', manifest.partners[victim].keyId)!.body;
    const again = await start(victim, all.signal);
    const [ownerResult, ...rest] = await Promise.all([ownerRun, ...others]);
    expect(ownerResult.state).toBe('completed');
    for (const node of [...rest, again]) expect(node.modelHash).toBe(ownerResult.modelHash);
    // Same attempt, same keys: the restarted node's advertisement is the one on record, and its upload is in the sum.
    expect(store.event(manifest.jobId, 1, 0, 'advertise', manifest.partners[victim].keyId)!.body).toBe(advertised);
    const p = roundEntry(manifest.jobId, 1).payload as { submitted: string[]; attempt: number };
    expect(p.attempt).toBe(0);
    expect(p.submitted).toContain(manifest.partners[victim].keyId);
  }, 150_000);
});
