import type { SqliteDb } from '../../coordinator/sql/sql-db.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startTestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, telcoPartners } from '../helpers/partners.ts';
import { buildCoordinator } from '../../coordinator/server.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { routes } from '../../src/federation/protocol/routes.ts';
import { registerJob } from '../../owner/register.ts';

describe('/health says what an operator needs', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('on this host: store writable, disk free, job counts, open rounds; a store that refuses writes and a caller off-host', async () => {
    const coord = await startTestCoordinator();
    try {
      const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b']);
      const { schema } = await telcoPartners({ partners: 2, rowsPerPartner: 50 });
      await registerJob(
        new CoordinatorClient(coord.url, owner),
        makeJob({ jobId: 'health-job', schema, owner, partners: ids, rounds: 1 }).signed,
        owner,
        null,
        null,
      );
      const h = await new CoordinatorClient(coord.url, owner).call(routes.health, {});
      expect(h.ok).toBe(true);
      expect(h.store).toEqual({ writable: true });
      expect(h.disk!.freeBytes).toBeGreaterThan(0);
      expect(h.disk!.low).toBe(false);
      expect(h.jobs).toEqual({ 'awaiting-keys': 1, running: 0, completed: 0, halted: 0, failed: 0 });
      expect(h.openRounds).toBe(0);

      // A stranger learns only whether it is up.
      const off = await coord.app.inject({ method: 'GET', url: '/health', remoteAddress: '10.1.2.3' });
      expect(off.json()).toEqual({ ok: true });

      // The store refuses writes (as a read-only or failing device would): ok false, with the reason.
      (coord.store.db as SqliteDb).db.pragma('query_only = 1');
      const ro = (await coord.app.inject({ method: 'GET', url: '/health' })).json();
      (coord.store.db as SqliteDb).db.pragma('query_only = 0');
      expect(ro.ok).toBe(false);
      expect(ro.store.writable).toBe(false);
      expect(ro.store.error).toMatch(/SQLITE_READONLY/);
    } finally {
      await coord.close();
    }
  });

  it('below the free-space floor: not ok, and a warning in the log before any write fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-health-'));
    dirs.push(dir);
    const logPath = join(dir, 'log.jsonl');
    const built = await buildCoordinator({
      dataDir: join(dir, 'data'),
      logger: pino({ level: 'info' }, pino.destination({ dest: logPath, sync: true })),
      minFreeBytes: Number.MAX_SAFE_INTEGER,
    });
    try {
      const h = (await built.app.inject({ method: 'GET', url: '/health' })).json();
      expect(h.ok).toBe(false);
      expect(h.disk.low).toBe(true);
      expect(h.store.writable).toBe(true);
      expect(readFileSync(logPath, 'utf8')).toMatch(/low disk space: .* free under/);
    } finally {
      await built.app.close();
    }
  });
});
