import { FedmarkError } from '../../src/errors.ts';
import { PgDb } from './pg-db.ts';
import { SqliteDb, type SqlDb } from './sql-db.ts';

export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** The environment variable `fedmark coordinator` reads when --store is not given. */
export const STORE_ENV = 'FEDMARK_COORDINATOR_STORE';

/**
 * Two coordinators on one database would both answer for the same jobs and fork their ledgers.
 * A session-level advisory lock is held by the store's own connection, so the server releases it
 * the moment that connection ends — a coordinator killed with SIGKILL never leaves it behind.
 * (Two arbitrary 32-bit keys: "fedm", 1.)
 */
const LOCK_KEYS = '1717855341, 1';

/** A postgres:// (or postgresql://) URL is PostgreSQL; any other URL is refused; anything else is a SQLite file path. */
export function storeLocation(spec: string): StoreLocation {
  if (/^postgres(ql)?:\/\//i.test(spec)) return { kind: 'postgres', url: spec };
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec);
  if (scheme) throw new FedmarkError('STORE_URL', `the coordinator store is a PostgreSQL database (postgres://user@host:port/database), not ${scheme[1]}://`);
  return { kind: 'sqlite', path: spec };
}

export interface OpenedStore {
  db: SqlDb;
  location: StoreLocation;
  /** The store layout version recorded in the database (0 when none is). */
  layout(): number;
  setLayout(n: number): void;
}

/**
 * Opens a coordinator store: a path is SQLite, a postgres:// URL is PostgreSQL. `writer` takes the
 * single-writer lock (PostgreSQL, waiting up to `lockWaitMs`, default 5 s; SQLite's is the data dir's
 * DirLock) and sets the durability pragmas.
 */
export function openStoreDb(spec: string, o: { writer: boolean; lockWaitMs?: number }): OpenedStore {
  const location = storeLocation(spec);
  if (location.kind === 'sqlite') {
    const db = SqliteDb.open(location.path, { readonly: !o.writer });
    if (o.writer) {
      db.db.pragma('journal_mode = WAL');
      db.db.pragma('synchronous = FULL');
    }
    return {
      db,
      location,
      layout: () => db.db.pragma('user_version', { simple: true }) as number,
      setLayout: (n) => void db.db.pragma(`user_version = ${Math.trunc(n)}`),
    };
  }
  const db = PgDb.open(location.url);
  try {
    if (o.writer) {
      takeLock(db, o.lockWaitMs ?? 5_000);
      // After a reconnect the lock must be ours again before anything is written.
      db.onConnect = (d) => takeLock(d, 0);
    }
  } catch (err) {
    db.close();
    throw err;
  }
  return {
    db,
    location,
    layout: () => {
      if (!db.tableExists('store_meta')) return 0;
      const row = db.query("SELECT value FROM store_meta WHERE key = 'layout'").rows[0];
      return row ? Number(row.value) : 0;
    },
    setLayout: (n) =>
      void db.query("INSERT INTO store_meta (key, value) VALUES ('layout', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [String(n)]),
  };
}

/** The single-writer lock on this connection's session, waiting up to `waitMs` for a predecessor's session to end. */
function takeLock(db: PgDb, waitMs: number): void {
  // A coordinator restarted right after a SIGKILL may find its old session still ending: wait a little.
  const until = Date.now() + waitMs;
  let got = db.query(`SELECT pg_try_advisory_lock(${LOCK_KEYS}) AS ok`).rows[0];
  while (got?.ok !== true && Date.now() < until) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    got = db.query(`SELECT pg_try_advisory_lock(${LOCK_KEYS}) AS ok`).rows[0];
  }
  if (got?.ok !== true) {
    const holder = db.query(
      `SELECT a.pid, a.backend_start, a.client_addr, a.application_name FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.classid = ${LOCK_KEYS.split(',')[0]} AND l.objid = 1 AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    ).rows[0];
    const who = holder
      ? `server pid ${String(holder.pid)}${holder.client_addr ? ` from ${String(holder.client_addr)}` : ''}, connected since ${new Date(String(holder.backend_start)).toISOString()}`
      : 'another session';
    throw new FedmarkError(
      'STORE_LOCKED',
      `${db.where} is in use by another fedmark coordinator (${who}): one coordinator per store database — stop that one first (its lock ends with its connection)`,
    );
  }
}
