import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoordinatorStore } from '../../coordinator/store.ts';
import { RelayStore } from '../../coordinator/relay-store.ts';
import { PgDb } from '../../coordinator/sql/pg-db.ts';
import { thrown } from '../helpers/errors.ts';
import { adminSql, freshDatabase, STORE_PG_SKIP_REASON, STORE_PG_URL, withDatabase } from '../helpers/postgres-store.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedmark-store-'));
const dropAfter: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const d of dropAfter) await d();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
/** A fresh store location per test: a new data dir, and for PostgreSQL a new database. */
interface Backend {
  name: string;
  fresh(): Promise<{ dataDir: string; store?: string }>;
  /** Rewrites the recorded layout version, as an older fedmark would have left it. */
  setLayout(loc: { dataDir: string; store?: string }, layout: number): Promise<void>;
}
const backends: Backend[] = [
  {
    name: 'SQLite',
    fresh: async () => ({ dataDir: join(dir, `s${n++}`) }),
    setLayout: async (loc, layout) => {
      const db = new Database(join(loc.dataDir, 'coordinator.sqlite'));
      db.pragma(`user_version = ${layout}`);
      db.close();
    },
  },
];
if (STORE_PG_URL) {
  backends.push({
    name: 'PostgreSQL',
    fresh: async () => {
      const db = await freshDatabase('store_test');
      dropAfter.push(db.drop);
      return { dataDir: join(dir, `p${n++}`), store: db.url };
    },
    setLayout: async (loc, layout) =>
      void (await adminSql(`UPDATE store_meta SET value = '${layout}' WHERE key = 'layout'`, new URL(loc.store!).pathname.slice(1))),
  });
} else {
  console.warn(`PostgreSQL store tests skipped: ${STORE_PG_SKIP_REASON}`);
  it.skip(`PostgreSQL store: ${STORE_PG_SKIP_REASON}`, () => {});
}
const open = (loc: { dataDir: string; store?: string }) => new CoordinatorStore(loc.dataDir, loc.store);

describe.each(backends)('coordinator store on $name', (b) => {
  it("keeps a round's sums as one row per named part", async () => {
    const loc = await b.fresh();
    const store = open(loc);
    try {
      store.putPartSum('j', 1, 0, 'update', new Uint8Array([1, 2]));
      store.putPartSum('j', 1, 0, 'grad-hist', new Uint8Array([3]));
      store.putPartSum('j', 1, 0, 'update', new Uint8Array([4, 5, 6]));
      const sums = store.partSums('j', 1, 0);
      expect(Object.keys(sums).sort()).toEqual(['grad-hist', 'update']);
      expect(Buffer.isBuffer(sums.update)).toBe(true);
      expect(Array.from(sums.update)).toEqual([4, 5, 6]);
      expect(store.partSums('j', 1, 1)).toEqual({});
    } finally {
      store.close();
    }
    // Reopening a store of this layout is fine, and what was committed is there.
    const again = open(loc);
    expect(Array.from(again.partSums('j', 1, 0).update)).toEqual([4, 5, 6]);
    again.close();
  });

  it('refuses, with a message saying what to do, a store written by the earlier layout', async () => {
    const loc = await b.fresh();
    open(loc).close();
    await b.setLayout(loc, 0);
    expect(thrown(() => open(loc))).toMatch(/^STORE_LAYOUT: .*store layout 1, this build uses 2.*new --(data-dir|store database)/);
  });

  it('rolls a whole transaction back on a throw, nested ones to their savepoint; millisecond times and counts come back as numbers', async () => {
    const store = open(await b.fresh());
    try {
      const t = 1_790_000_000_123;
      store.insertJob({ job_id: 'j', signed_manifest: '{}', state: 'awaiting-keys', created_at: t });
      expect(() =>
        store.transaction(() => {
          store.updateJob('j', { state: 'running', current_round: 1 });
          throw new Error('boom');
        }),
      ).toThrow('boom');
      store.transaction(() => {
        store.updateJob('j', { current_round: 2 });
        expect(() =>
          store.transaction(() => {
            store.updateJob('j', { state: 'failed' });
            throw new Error('inner');
          }),
        ).toThrow('inner');
      });
      expect(store.getJob('j')).toMatchObject({ state: 'awaiting-keys', current_round: 2, created_at: t });
      expect(store.probe()).toMatchObject({ writable: true, openRounds: 0, jobs: { 'awaiting-keys': 1 } });
    } finally {
      store.close();
    }
  });

  it('sorts text by bytes on both backends (partner order feeds ledgers and sums)', async () => {
    const store = open(await b.fresh());
    try {
      for (const name of ['b', 'B', 'a', 'A_', 'a-']) {
        store.insertPartner({ job_id: 'j', key_id: `k${name}`, name, sign_public_key: 's', box_public_key: 'x', status: 'invited', acceptance: null });
      }
      expect(store.partners('j').map((p) => p.name)).toEqual(['A_', 'B', 'a', 'a-', 'b']);
      expect(store.insertDecline('j', 1, 0, 'ka', 'r')).toBe(true);
      expect(store.insertDecline('j', 1, 0, 'ka', 'r')).toBe(false);
    } finally {
      store.close();
    }
  });

  it('keeps replay protection, relayed messages and ledger lines across a restart (on PostgreSQL: from another data dir)', async () => {
    const loc = await b.fresh();
    const first = open(loc);
    expect(first.nonceStore().checkAndRecord('k', 'n1', Date.now() + 60_000)).toBe(true);
    expect(first.nonceStore().checkAndRecord('k', 'n1', Date.now() + 60_000)).toBe(false);
    const relays = new RelayStore(first.db);
    expect(relays.put('j', 1, 'a', 'b', new Uint8Array([9, 0, 255]), 'h', 1)).toBe(true);
    expect(relays.put('j', 1, 'a', 'b', new Uint8Array([1]), 'h', 1)).toBe(false);
    first.putLedgerLines('j', [
      { seq: 0, line: '{"seq":0}' },
      { seq: 1, line: '{"seq":1}' },
    ]);
    first.close();
    // On PostgreSQL, as a coordinator restarted on another machine would: another data dir, the same database.
    const second = open(loc.store ? { ...loc, dataDir: `${loc.dataDir}-elsewhere` } : loc);
    try {
      expect(second.nonceStore().checkAndRecord('k', 'n1', Date.now() + 60_000)).toBe(false);
      expect(Array.from(new RelayStore(second.db).message('j', 1, 'a', 'b')!.body)).toEqual([9, 0, 255]);
      expect(second.ledgerLines('j')).toEqual(['{"seq":0}', '{"seq":1}']);
    } finally {
      second.close();
    }
  });

  it('refuses a coordinator with another key than the one that wrote the store', async () => {
    const loc = await b.fresh();
    const s = open(loc);
    s.claimCoordinatorKey('key-1');
    s.claimCoordinatorKey('key-1');
    expect(thrown(() => s.claimCoordinatorKey('key-2'))).toMatch(/^STORE_OTHER_COORDINATOR: .*belongs to coordinator key key-1.*key file/);
    s.close();
  });
});

describe.skipIf(!STORE_PG_URL)('PostgreSQL store: refusals an operator can act on', () => {
  it('one coordinator per database: a second is refused while the first runs, and may start once it stopped', async () => {
    const db = await freshDatabase('store_lock');
    dropAfter.push(db.drop);
    const first = new CoordinatorStore(join(dir, 'lock-a'), db.url);
    expect(thrown(() => new CoordinatorStore(join(dir, 'lock-b'), db.url, { lockWaitMs: 300 }))).toMatch(
      /^STORE_LOCKED: .*in use by another fedmark coordinator \(server pid \d+/,
    );
    first.close();
    new CoordinatorStore(join(dir, 'lock-b'), db.url).close();
  });

  it('a coordinator whose connection dies answers STORAGE_IO_ERROR (a 503), and its lock is gone with it', async () => {
    const db = await freshDatabase('store_gone');
    dropAfter.push(db.drop);
    const store = new CoordinatorStore(join(dir, 'gone-a'), db.url);
    await adminSql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
    await adminSql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}'`);
    expect(thrown(() => store.getJob('j'))).toMatch(/^STORAGE_IO_ERROR: the PostgreSQL store .* is unavailable/);
    // The reconnect fails too (the database takes no connections), and says so.
    expect(thrown(() => store.getJob('j'))).toMatch(/^STORAGE_IO_ERROR: cannot connect to the PostgreSQL store .*not currently accepting connections/);
    expect(store.probe().writable).toBe(false);
    store.close();
    await adminSql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
    new CoordinatorStore(join(dir, 'gone-b'), db.url).close();
  });

  it('unreachable server, missing database, bad URL, missing grants: each a clear error', async () => {
    const u = new URL(STORE_PG_URL!);
    u.port = '1';
    expect(thrown(() => new CoordinatorStore(join(dir, 'bad-1'), u.toString()))).toMatch(
      /^STORE_UNREACHABLE: cannot connect to the PostgreSQL store .*ECONNREFUSED|^STORE_UNREACHABLE: .*connect/,
    );
    expect(thrown(() => new CoordinatorStore(join(dir, 'bad-2'), withDatabase(STORE_PG_URL!, 'fedmark_no_such_db')))).toMatch(
      /^STORE_UNREACHABLE: .*database "fedmark_no_such_db" does not exist/,
    );
    expect(thrown(() => new CoordinatorStore(join(dir, 'bad-3'), 'mysql://x@y/z'))).toMatch(/^STORE_URL: .*not mysql:\/\//);
    expect(thrown(() => PgDb.open('postgres://[bad'))).toMatch(/^STORE_URL: /);
    // A role that may connect but not create tables (PostgreSQL 15's default on schema public).
    const db = await freshDatabase('store_grants');
    dropAfter.push(async () => {
      await db.drop();
      await adminSql('DROP ROLE IF EXISTS fedmark_store_nogrant');
    });
    await adminSql('DROP ROLE IF EXISTS fedmark_store_nogrant; CREATE ROLE fedmark_store_nogrant LOGIN');
    await adminSql('REVOKE CREATE ON SCHEMA public FROM PUBLIC', db.name);
    const limited = new URL(db.url);
    limited.username = 'fedmark_store_nogrant';
    expect(thrown(() => new CoordinatorStore(join(dir, 'bad-4'), limited.toString()))).toMatch(
      /^STORE_PERMISSION: .*permission denied for schema public.*docs\/OPERATIONS.md/,
    );
  });
});
