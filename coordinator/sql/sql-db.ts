import Database from 'better-sqlite3';

/**
 * The one SQL surface the coordinator's stores are written against, so every table and statement
 * is written once and runs on the embedded SQLite default and on PostgreSQL (pg-db.ts). It mirrors
 * better-sqlite3's synchronous `prepare(sql).run/get/all` and `transaction(fn)`: the job engine's
 * read-check-write steps stay free of interleaving because nothing in them awaits.
 *
 * Portable SQL only: `?` or `@name` parameters, `INSERT … ON CONFLICT … DO NOTHING / DO UPDATE`
 * (never `INSERT OR …`), and DDL typed with TEXT, INTEGER and BLOB, which each backend maps
 * (`pgDdl`). A PostgreSQL store refuses `INSERT OR` and `PRAGMA` with a message saying so.
 */
export type SqlValue = string | number | bigint | null | Uint8Array;
export type SqlParams = unknown[];

export interface SqlStatement {
  run(...params: SqlParams): { changes: number };
  get(...params: SqlParams): unknown;
  all(...params: SqlParams): unknown[];
}

export interface SqlDb {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where the data lives, for messages (a PostgreSQL URL without its password). */
  readonly where: string;
  prepare(sql: string): SqlStatement;
  /** Runs portable DDL (several statements) in this backend's dialect. */
  exec(ddl: string): void;
  /** Runs fn in one transaction (nested calls are savepoints); a throw rolls it all back. */
  transaction<T>(fn: () => T): T;
  tableExists(name: string): boolean;
  close(): void;
}

/** Portable DDL for PostgreSQL: 64-bit integers (millisecond times), bytea, and byte-order text sorting as SQLite's. */
export function pgDdl(ddl: string): string {
  return ddl
    .replace(/\bINTEGER\b/g, 'BIGINT')
    .replace(/\bBLOB\b/g, 'BYTEA')
    .replace(/\bTEXT\b/g, 'TEXT COLLATE "C"');
}

export class SqliteDb implements SqlDb {
  readonly dialect = 'sqlite';
  private readonly statements = new Map<string, SqlStatement>();

  constructor(
    readonly db: Database.Database,
    readonly where: string,
  ) {}

  static open(path: string, opts: { readonly?: boolean } = {}): SqliteDb {
    return new SqliteDb(new Database(path, opts.readonly ? { readonly: true, fileMustExist: true } : {}), path);
  }

  prepare(sql: string): SqlStatement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql) as unknown as SqlStatement;
      this.statements.set(sql, s);
    }
    return s;
  }

  exec(ddl: string): void {
    this.db.exec(ddl);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  tableExists(name: string): boolean {
    return this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
  }

  close(): void {
    this.db.close();
  }
}
