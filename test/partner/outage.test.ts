import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import pino from 'pino';
import { backoffDelay } from '../../src/util/backoff.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { FedmarkError } from '../../src/errors.ts';
import { freePort } from '../../cli/free-port.ts';
import { buildCoordinator } from '../../coordinator/server.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { startTestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, silentLog, telcoPartners } from '../helpers/partners.ts';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/index.ts';
import { registerJob } from '../../owner/register.ts';
import { runPartnerNode } from '../../partner/node.ts';

describe('riding out a coordinator outage, and a key that never comes', () => {
  it('backoff: exponential up to the cap, half of each wait random', () => {
    expect(backoffDelay(0, { baseMs: 100, capMs: 1000, random: () => 0 })).toBe(50);
    expect(backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => 0 })).toBe(400);
    expect(backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => 0.999 })).toBeCloseTo(799.6, 5);
    for (const a of [4, 10, 40, 1000]) expect(backoffDelay(a, { baseMs: 100, capMs: 1000 })).toBeLessThanOrEqual(1000);
    expect(backoffDelay(1000, { baseMs: 100, capMs: 1000, random: () => 0 })).toBe(500);
  });

  it('a coordinator that is down (nothing listens on its port) and comes back: the request goes through, waits are capped and jittered; one that stays down ends with COORDINATOR_UNREACHABLE naming the limit', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const waits: number[] = [];
    const client = new CoordinatorClient(url, generateIdentity('p'), {
      unreachableRetryMs: 30_000,
      maxBackoffMs: 800,
      onUnreachable: (i) => waits.push(i.retryInMs),
    });
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-outage-'));
    const pending = client.request('GET', '/v1/jobs/none', 'none', 0);
    await new Promise((r) => setTimeout(r, 3000));
    const built = await buildCoordinator({ dataDir: join(dir, 'data'), logger: pino({ level: 'silent' }) });
    try {
      await built.app.listen({ host: '127.0.0.1', port });
      const res = await pending;
      expect(res.status).toBe(401);
    } finally {
      await built.app.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(waits.length).toBeGreaterThanOrEqual(5);
    expect(Math.max(...waits)).toBeLessThanOrEqual(800);
    const capped = waits.slice(-3);
    // At the cap, waits lie in [cap/2, cap) and differ (jitter), so partners do not retry in lockstep.
    for (const w of capped) expect(w).toBeGreaterThanOrEqual(400);
    expect(new Set(waits.map((w) => w.toFixed(3))).size).toBe(waits.length);

    const gone = new CoordinatorClient(`http://127.0.0.1:${await freePort()}`, generateIdentity('q'), { unreachableRetryMs: 1500, maxBackoffMs: 300 });
    const started = Date.now();
    const err = await gone.request('GET', '/v1/jobs/none', 'none', 0).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FedmarkError);
    expect((err as FedmarkError).code).toBe('COORDINATOR_UNREACHABLE');
    expect((err as FedmarkError).message).toMatch(/for \d+ s \(the limit\)/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(Date.now() - started).toBeLessThan(5000);
  }, 60_000);

  it('an owner that registered the job and died before its key ceremony: the partner stops at its key deadline with KEY_TIMEOUT naming the owner', async () => {
    const coord = await startTestCoordinator();
    try {
      const { schema, schemaHash, parts } = await telcoPartners({ partners: 2, rowsPerPartner: 60 });
      const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b']);
      const { signed } = makeJob({ jobId: 'owner-died', schema, owner, partners: ids, rounds: 1, encryption: DEFAULT_HE_PARAMS });
      await registerJob(new CoordinatorClient(coord.url, owner), signed, owner, null, null);
      const waiting: string[] = [];
      const started = Date.now();
      const err = await runPartnerNode({
        coordinatorUrl: coord.url,
        identity: ids[0],
        jobId: 'owner-died',
        train: parts[0].train,
        test: parts[0].test,
        schemaHash,
        stateDir: join(coord.dir, 'bank-a'),
        reviewJob: () => [],
        budget: undefined,
        log: silentLog,
        pollMs: 100,
        keyTimeoutMs: 2500,
        onWaiting: (m) => waiting.push(m),
      }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FedmarkError);
      expect((err as FedmarkError).code).toBe('KEY_TIMEOUT');
      expect((err as FedmarkError).message).toMatch(/gave up waiting for the job key of "owner-died" from its owner owner after \d+ s/);
      expect((err as FedmarkError).message).toContain('--key-timeout');
      expect(waiting.some((m) => m.includes('the job key of "owner-died"'))).toBe(true);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await coord.close();
    }
  }, 60_000);
});
