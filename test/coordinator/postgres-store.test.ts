/**
 * The coordinator over HTTP on a PostgreSQL store: a database connection that goes away mid-run is a
 * 503 the nodes retry and a /health that says not ok — never a 500 or a crash — until the store has
 * reconnected (and taken its lock again); and a coordinator started on
 * another data dir against the same database (its key file copied) serves the same job.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCoordinator } from '../../coordinator/server.ts';
import { registerJob } from '../../owner/register.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { routes } from '../../src/federation/protocol/routes.ts';
import { makeIdentities, makeJob, telcoPartners } from '../helpers/partners.ts';
import { adminSql, freshDatabase, STORE_PG_SKIP_REASON, STORE_PG_URL } from '../helpers/postgres-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedmark-pg-coord-'));
const drops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const d of drops) await d();
  rmSync(dir, { recursive: true, force: true });
});
const silent = pino({ level: 'silent' });

if (!STORE_PG_URL) {
  console.warn(`PostgreSQL coordinator tests skipped: ${STORE_PG_SKIP_REASON}`);
  it.skip(`PostgreSQL store: ${STORE_PG_SKIP_REASON}`, () => {});
}

describe.skipIf(!STORE_PG_URL)('coordinator on a PostgreSQL store', () => {
  it('connection gone: 503 STORAGE_IO_ERROR and /health not ok, then a reconnect; restarted elsewhere on the same database: the job is there', async () => {
    const db = await freshDatabase('coord_http');
    drops.push(db.drop);
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b']);
    const { schema } = await telcoPartners({ partners: 2, rowsPerPartner: 50 });
    const first = await buildCoordinator({ dataDir: join(dir, 'machine-1'), store: db.url, logger: silent, tickMs: 50 });
    const url1 = await first.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { signed } = makeJob({ jobId: 'pg-job', schema, owner, partners: ids, rounds: 1 });
      await registerJob(new CoordinatorClient(url1, owner), signed, owner, null, null);
      const client = new CoordinatorClient(url1, owner, { unreachableRetryMs: 0 });
      expect((await client.request('GET', '/v1/jobs/pg-job', 'pg-job', 0)).status).toBe(200);

      // The database goes away (no new connections, the coordinator's own ended), as in a failover.
      await adminSql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
      await adminSql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}'`);
      const res = await client.request('GET', '/v1/jobs/pg-job', 'pg-job', 0);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { code: string }).code).toBe('STORAGE_IO_ERROR');
      const health = await client.call(routes.health, {});
      expect(health.ok).toBe(false);
      expect(health.store).toMatchObject({ writable: false, error: 'STORAGE_IO_ERROR' });
      // The database is back: within the reconnect interval the coordinator goes on by itself.
      await adminSql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
      await new Promise((r) => setTimeout(r, 2_500));
      expect((await client.request('GET', '/v1/jobs/pg-job', 'pg-job', 0)).status).toBe(200);
      expect((await client.call(routes.health, {})).ok).toBe(true);
    } finally {
      await first.app.close();
    }

    // "Another machine": a new data dir holding only the coordinator's key file.
    mkdirSync(join(dir, 'machine-2'));
    copyFileSync(join(dir, 'machine-1', 'coordinator.key.json'), join(dir, 'machine-2', 'coordinator.key.json'));
    const second = await buildCoordinator({ dataDir: join(dir, 'machine-2'), store: db.url, logger: silent, tickMs: 50 });
    const url2 = await second.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const status = await new CoordinatorClient(url2, owner).call(routes.status, { jobId: 'pg-job' });
      expect(status.state).toBe('awaiting-keys');
      // The genesis entry, read from the ledger file rebuilt from the database.
      const ledger = await new CoordinatorClient(url2, owner).request('GET', '/v1/jobs/pg-job/ledger', 'pg-job', 0);
      expect(ledger.status).toBe(200);
      expect((await ledger.text()).split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(1);
    } finally {
      await second.app.close();
    }
    // Without the key file it would fork the ledgers: refused.
    await expect(buildCoordinator({ dataDir: join(dir, 'machine-3'), store: db.url, logger: silent })).rejects.toThrow(
      /STORE_OTHER_COORDINATOR|belongs to coordinator key/,
    );
  }, 60_000);
});
