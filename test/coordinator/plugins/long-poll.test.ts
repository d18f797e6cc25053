/**
 * The long-poll route (coordinator/plugins/long-poll.ts) against a listening coordinator: a held
 * request returns as soon as the job changes, a stale version is answered at once, an unsigned or
 * stranger's request is refused before anything is held, held requests are bounded per key and in
 * all (429 LONG_POLL_LIMIT), a client that goes away frees its slot, shutdown answers every held
 * request, a restarted coordinator gives the same state the same version, and a node's watcher
 * falls back to interval polling against a coordinator without the route.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildCoordinator } from '../../../coordinator/server.ts';
import type { LongPollLimits } from '../../../coordinator/plugins/long-poll.ts';
import { manifestLedgerEntry } from '../../../owner/genesis.ts';
import { generateIdentity } from '../../../src/crypto/identity.ts';
import { CoordinatorClient } from '../../../src/federation/protocol/client.ts';
import { StatusWatcher } from '../../../src/federation/protocol/status-watcher.ts';
import { watchRoutes, type WatchResponse } from '../../../src/federation/protocol/watch-routes.ts';
import { sgdWorkload } from '../../../src/federation/workloads/sgd/index.ts';
import { makeJob, telcoPartners } from '../../helpers/partners.ts';

const owner = generateIdentity('owner');
const partners = [generateIdentity('bank-a'), generateIdentity('telco-b')];
const stranger = generateIdentity('stranger');
const JOB = 'long-poll-job';
const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function coordinator(o: { dataDir?: string; limits?: Partial<LongPollLimits> } = {}) {
  const dir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'fedmark-long-poll-'));
  const built = await buildCoordinator({ dataDir: dir, logger: pino({ level: 'silent' }), ledgerSync: false, tickMs: 60_000, longPoll: o.limits });
  const url = await built.app.listen({ host: '127.0.0.1', port: 0 });
  let closed = false;
  const close = async () => {
    if (!closed) await built.app.close();
    closed = true;
  };
  cleanup.push(async () => {
    await close();
    if (!o.dataDir) rmSync(dir, { recursive: true, force: true });
  });
  return { ...built, url, dir, close };
}

async function withJob(o: { limits?: Partial<LongPollLimits> } = {}) {
  const c = await coordinator(o);
  const { schema } = await telcoPartners({ partners: 2, rowsPerPartner: 50 });
  const { manifest, signed } = makeJob({ jobId: JOB, schema, owner, partners, rounds: 2 });
  const coordinatorIdentity = (await c.app.inject({ method: 'GET', url: '/v1/identity' })).json();
  await c.engine.createJob(signed, manifestLedgerEntry(manifest, owner, coordinatorIdentity, sgdWorkload.privacy(manifest), null));
  return c;
}

const watchPath = (q: Record<string, string>) => `/v1/jobs/${JOB}/watch?${new URLSearchParams(q).toString()}`;

/** A signed long-poll as raw HTTP (the caller sees 429s instead of the client's retries). */
function rawWatch(url: string, who: typeof owner, q: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  return new CoordinatorClient(url, who, { unreachableRetryMs: 0 }).request('GET', watchPath(q), JOB, 0, undefined, signal);
}

async function etagOf(url: string): Promise<string> {
  return ((await (await rawWatch(url, partners[0], { waitMs: '0' })).json()) as WatchResponse).etag;
}

const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('the long-poll route', () => {
  it('holds a request on an unchanged job and answers within moments of a change', async () => {
    const c = await withJob();
    const since = await etagOf(c.url);
    let answeredAt = 0;
    const pending = rawWatch(c.url, partners[0], { since, waitMs: '20000' }).then(async (r) => {
      answeredAt = Date.now();
      return { status: r.status, body: (await r.json()) as WatchResponse };
    });
    await until(() => c.app.heldRequests.size === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(answeredAt).toBe(0);
    const changedAt = Date.now();
    c.engine.halt(JOB, 'test: the owner stops the job');
    const { status, body } = await pending;
    expect(status).toBe(200);
    expect(body.changed).toBe(true);
    expect(body.status.state).toBe('halted');
    expect(body.etag).not.toBe(since);
    expect(answeredAt - changedAt).toBeLessThan(500);
    expect(c.app.heldRequests.size).toBe(0);
  }, 60_000);

  it('answers a stale version at once, and an unchanged one with changed: false when the wait runs out', async () => {
    const c = await withJob();
    const since = await etagOf(c.url);
    const stale = await rawWatch(c.url, partners[1], { since: 'ab'.repeat(32), waitMs: '20000' });
    expect(((await stale.json()) as WatchResponse).etag).toBe(since);
    const t0 = Date.now();
    const r = (await (await rawWatch(c.url, partners[1], { since, waitMs: '300' })).json()) as WatchResponse;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(r).toMatchObject({ changed: false, etag: since });
  }, 60_000);

  it('refuses an unsigned request and a stranger before holding anything', async () => {
    const c = await withJob();
    const since = await etagOf(c.url);
    const t0 = Date.now();
    const unsigned = await fetch(c.url + watchPath({ since, waitMs: '20000' }));
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { code: string }).code).toBe('AUTH_MISSING');
    const foreign = await rawWatch(c.url, stranger, { since, waitMs: '20000' });
    expect(foreign.status).toBe(401);
    expect(((await foreign.json()) as { code: string }).code).toBe('AUTH_REJECTED');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(c.app.heldRequests.size).toBe(0);
  }, 60_000);

  it('bounds held requests per key and in all with 429 LONG_POLL_LIMIT, and frees the slot of a client that leaves', async () => {
    const c = await withJob({ limits: { perKey: 2, total: 3 } });
    const since = await etagOf(c.url);
    const aborts = [new AbortController(), new AbortController()];
    const held = aborts.map((a) => rawWatch(c.url, partners[0], { since, waitMs: '20000' }, a.signal).catch((e: Error) => e));
    await until(() => c.app.heldRequests.size === 2);
    const third = await rawWatch(c.url, partners[0], { since, waitMs: '20000' });
    expect(third.status).toBe(429);
    expect(((await third.json()) as { code: string }).code).toBe('LONG_POLL_LIMIT');
    expect(third.headers.get('retry-after')).toBe('1');
    // Another key still gets a slot, until the total is reached.
    const other = rawWatch(c.url, partners[1], { since, waitMs: '20000' });
    await until(() => c.app.heldRequests.size === 3);
    const overTotal = await rawWatch(c.url, owner, { since, waitMs: '20000' });
    expect(overTotal.status).toBe(429);
    expect(((await overTotal.json()) as { error: string }).error).toMatch(/its limit/);
    // A client that goes away frees its slot at once: the key may hold another.
    aborts[0]!.abort();
    await until(() => c.app.heldRequests.size === 2);
    const again = rawWatch(c.url, partners[0], { since, waitMs: '20000' });
    await until(() => c.app.heldRequests.size === 3);
    c.engine.halt(JOB, 'test: release everyone');
    for (const r of [again, other, held[1]!]) expect(((await ((await r) as Response).json()) as WatchResponse).status.state).toBe('halted');
  }, 60_000);

  it('answers every held request when the coordinator shuts down, and close() does not wait for their timeout', async () => {
    const c = await withJob();
    const since = await etagOf(c.url);
    const held = [0, 1].map((i) => rawWatch(c.url, partners[i]!, { since, waitMs: '20000' }));
    await until(() => c.app.heldRequests.size === 2);
    const t0 = Date.now();
    await c.close();
    for (const r of held) {
      const res = await r;
      expect(res.status).toBe(200);
      expect(((await res.json()) as WatchResponse).changed).toBe(false);
    }
    expect(Date.now() - t0).toBeLessThan(3000);
  }, 60_000);

  it('gives the same state the same version after a restart, and a new one to any change', async () => {
    const first = await withJob();
    const since = await etagOf(first.url);
    await first.close();
    const second = await coordinator({ dataDir: first.dir });
    expect(await etagOf(second.url)).toBe(since);
    second.engine.halt(JOB, 'test: a change after the restart');
    const r = (await (await rawWatch(second.url, partners[0], { since, waitMs: '20000' })).json()) as WatchResponse;
    expect(r).toMatchObject({ changed: true, status: { state: 'halted' } });
  }, 60_000);
});

describe("a node's status watcher", () => {
  it('returns at once first, then on the next change; against a coordinator without the route it polls every pollMs', async () => {
    const c = await withJob();
    const client = new CoordinatorClient(c.url, partners[0]);
    const watcher = new StatusWatcher(client, JOB, { pollMs: 50, waitMs: 20_000 });
    expect((await watcher.next()).state).toBe('awaiting-keys');
    const next = watcher.next();
    await until(() => c.app.heldRequests.size === 1);
    c.engine.halt(JOB, 'test');
    expect((await next).state).toBe('halted');

    // An older coordinator: the watch path is an unknown route there.
    const watchUrl = watchRoutes.watch.url.replace(':jobId', JOB);
    const seen: string[] = [];
    const oldCoordinator: typeof fetch = (input, init) => {
      const u = String(input);
      seen.push(u);
      if (u.includes(watchUrl))
        return Promise.resolve(new Response(JSON.stringify({ statusCode: 404, code: 'NOT_FOUND', error: 'no route' }), { status: 404 }));
      return fetch(input, init);
    };
    const fallbacks: string[] = [];
    const old = new StatusWatcher(new CoordinatorClient(c.url, partners[1], { fetchImpl: oldCoordinator }), JOB, {
      pollMs: 200,
      onFallback: (m) => fallbacks.push(m),
    });
    expect((await old.next()).state).toBe('halted');
    expect(old.longPolling).toBe(false);
    expect(fallbacks).toHaveLength(1);
    const t0 = Date.now();
    await old.next();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(seen.filter((u) => u.includes(watchUrl))).toHaveLength(1);
  }, 60_000);
});
