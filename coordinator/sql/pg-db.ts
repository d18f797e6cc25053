import { FedmarkError } from '../../src/errors.ts';
import { redactUrl } from '../../src/data/sources/postgres.ts';
import { pgCall, type PgReply, type PgRequest } from './pg-bridge.ts';
import { pgDdl, type SqlDb, type SqlParams, type SqlStatement, type SqlValue } from './sql-db.ts';

const CONNECT_TIMEOUT_MS = 10_000;
const QUERY_TIMEOUT_MS = 30_000;
/** Longer than pg's own timeouts, so the worker normally answers (with pg's error) first. */
const WAIT_MS = QUERY_TIMEOUT_MS + 5_000;
/** A database that is down is tried again at most this often (each try may block up to CONNECT_TIMEOUT_MS). */
const RECONNECT_EVERY_MS = 2_000;

/** SQLSTATE classes and driver errors that mean "the database is not there (any more)". */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'CLOSED']);
const isConnectionLoss = (code: string | null, message: string) =>
  (code !== null && (CONNECTION_CODES.has(code) || code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03')) ||
  /Connection terminated|not queryable|timeout/i.test(message);

/** Compiles `?` and `@name` placeholders to `$n`, once per statement text. */
function compile(sql: string): { text: string; names: string[] | null } {
  if (/^\s*(PRAGMA\b|INSERT\s+OR\b)/i.test(sql)) {
    throw new FedmarkError('STORE_SQL', `not portable SQL (write INSERT … ON CONFLICT instead of INSERT OR …, and no PRAGMA): ${sql.slice(0, 80)}`);
  }
  const names: string[] = [];
  let positional = 0;
  const text = sql.replace(/\?|@([A-Za-z_][A-Za-z0-9_]*)/g, (_m, name: string | undefined) => {
    if (name === undefined) return `$${++positional}`;
    let i = names.indexOf(name);
    if (i < 0) i = names.push(name) - 1;
    return `$${i + 1}`;
  });
  if (positional && names.length) throw new FedmarkError('STORE_SQL', `mixes ? and @name parameters: ${sql.slice(0, 80)}`);
  return { text, names: names.length ? names : null };
}

function bind(c: { names: string[] | null }, params: SqlParams): SqlValue[] {
  if (!c.names) return params as SqlValue[];
  const obj = (params[0] ?? {}) as Record<string, SqlValue | undefined>;
  return c.names.map((n) => obj[n] ?? null);
}

/** bytea arrives as a Uint8Array (structured clone drops Buffer); the stores hand out Buffers, as better-sqlite3 does. */
function asBuffers(row: Record<string, unknown>): Record<string, unknown> {
  for (const k of Object.keys(row)) {
    const v = row[k];
    if (v instanceof Uint8Array && !Buffer.isBuffer(v)) row[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  return row;
}

/**
 * The coordinator's store on PostgreSQL: one connection (one session, which also holds the
 * single-writer advisory lock), queried synchronously through pg-bridge.ts.
 */
export class PgDb implements SqlDb {
  readonly dialect = 'postgres';
  readonly where: string;
  private readonly compiled = new Map<string, { text: string; names: string[] | null }>();
  private depth = 0;
  private closed = false;
  /** The connection was lost: the next call outside a transaction reconnects (at most every RECONNECT_EVERY_MS). */
  private lost = false;
  private lastReconnect = 0;
  /** Runs on each new connection before it is used (open.ts takes the single-writer lock again). */
  onConnect: (db: PgDb) => void = () => {};

  private constructor(
    private handle: number,
    private readonly url: string,
  ) {
    this.where = redactUrl(url);
  }

  /**
   * A database that restarted or failed over: reconnect, take the lock again, go on. The statement
   * that failed is not retried (it may have committed); its request was answered 503 and is resent.
   */
  private reconnect(): void {
    if (Date.now() - this.lastReconnect < RECONNECT_EVERY_MS) {
      throw new FedmarkError('STORAGE_IO_ERROR', `the PostgreSQL store ${this.where} is unavailable (reconnecting)`);
    }
    this.lastReconnect = Date.now();
    pgCall({ op: 'close', handle: this.handle }, 5_000);
    const fresh = PgDb.open(this.url, 'STORAGE_IO_ERROR');
    this.handle = fresh.handle;
    this.lost = false;
    try {
      this.onConnect(this);
    } catch (err) {
      this.lost = true;
      // E.g. another coordinator took the store while this one was cut off: this one must not write.
      throw err instanceof FedmarkError && err.code === 'STORAGE_IO_ERROR' ? err : new FedmarkError('STORAGE_IO_ERROR', (err as Error).message);
    }
  }

  static open(url: string, unreachable: 'STORE_UNREACHABLE' | 'STORAGE_IO_ERROR' = 'STORE_UNREACHABLE'): PgDb {
    const where = redactUrl(url);
    if (!/^postgres(ql)?:\/\//.test(url)) throw new FedmarkError('STORE_URL', `${where}: a PostgreSQL store is given as postgres://user@host:port/database`);
    try {
      new URL(url);
    } catch {
      throw new FedmarkError('STORE_URL', `${where}: not a valid postgres:// URL`);
    }
    const reply = pgCall({ op: 'connect', url, connectTimeoutMs: CONNECT_TIMEOUT_MS, queryTimeoutMs: QUERY_TIMEOUT_MS }, CONNECT_TIMEOUT_MS + 5_000);
    if (!reply || !reply.ok) {
      const why = reply ? reply.message : `no answer within ${CONNECT_TIMEOUT_MS / 1000} s`;
      const code = reply && !reply.ok ? reply.code : null;
      if (code === '42501')
        throw new FedmarkError('STORE_PERMISSION', `${where}: ${why} (the store's role needs CONNECT on the database; see docs/OPERATIONS.md)`);
      throw new FedmarkError(unreachable, `cannot connect to the PostgreSQL store ${where}: ${why}`, { pgCode: code });
    }
    return new PgDb(reply.handle!, url);
  }

  private call(req: PgRequest): PgReply & { ok: true } {
    if (this.closed) throw new FedmarkError('STORE_CLOSED', `the PostgreSQL store ${this.where} is closed`);
    if (this.lost) {
      // Inside a transaction the server has already rolled it back: fail it to its end.
      if (this.depth > 0) throw new FedmarkError('STORAGE_IO_ERROR', `the PostgreSQL store ${this.where} connection was lost in a transaction`);
      this.reconnect();
    }
    const reply = pgCall(req.op === 'query' ? { ...req, handle: this.handle } : req, WAIT_MS);
    if (reply?.ok) return reply;
    const message = reply ? reply.message : `no answer within ${WAIT_MS / 1000} s`;
    const code = reply ? reply.code : 'ETIMEDOUT';
    if (isConnectionLoss(code, message)) {
      this.lost = true;
      // Handled as a failing disk is: 503 "nothing of this request was kept; retry later".
      throw new FedmarkError('STORAGE_IO_ERROR', `the PostgreSQL store ${this.where} is unavailable: ${message}`, { pgCode: code });
    }
    if (code === '42501') {
      throw new FedmarkError('STORE_PERMISSION', `${this.where}: ${message} (the store's role must own its tables or hold the grants in docs/OPERATIONS.md)`, {
        pgCode: code,
      });
    }
    // Anything else is a bug or a constraint violation: a plain error (500), as a SqliteError would be.
    throw Object.assign(new Error(`PostgreSQL store: ${message}`), { code });
  }

  query(sql: string, params: SqlValue[] = []): { rows: Record<string, unknown>[]; rowCount: number } {
    const r = this.call({ op: 'query', handle: this.handle, sql, params });
    return { rows: (r.rows ?? []).map(asBuffers), rowCount: r.rowCount ?? 0 };
  }

  prepare(sql: string): SqlStatement {
    let c = this.compiled.get(sql);
    if (!c) {
      c = compile(sql);
      this.compiled.set(sql, c);
    }
    const stmt = c;
    return {
      run: (...params) => ({ changes: this.query(stmt.text, bind(stmt, params)).rowCount }),
      get: (...params) => this.query(stmt.text, bind(stmt, params)).rows[0],
      all: (...params) => this.query(stmt.text, bind(stmt, params)).rows,
    };
  }

  exec(ddl: string): void {
    this.query(pgDdl(ddl));
  }

  transaction<T>(fn: () => T): T {
    const savepoint = this.depth > 0 ? `fedmark_sp${this.depth}` : null;
    this.query(savepoint ? `SAVEPOINT ${savepoint}` : 'BEGIN');
    this.depth++;
    let result: T;
    try {
      result = fn();
      if (result instanceof Promise) throw new TypeError('a store transaction must be synchronous');
    } catch (err) {
      this.depth--;
      try {
        if (!this.lost) this.query(savepoint ? `ROLLBACK TO SAVEPOINT ${savepoint}` : 'ROLLBACK');
      } catch {
        // The connection is gone: the server rolls the transaction back itself.
      }
      throw err;
    }
    this.depth--;
    this.query(savepoint ? `RELEASE SAVEPOINT ${savepoint}` : 'COMMIT');
    return result;
  }

  tableExists(name: string): boolean {
    return this.query('SELECT to_regclass($1) IS NOT NULL AS present', [name]).rows[0]?.present === true;
  }

  close(): void {
    if (this.closed) return;
    // (A lost connection's handle is closed too: the worker forgets it.)
    pgCall({ op: 'close', handle: this.handle }, 5_000);
    this.closed = true;
  }
}
