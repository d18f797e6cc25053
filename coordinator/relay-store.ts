import type { SqlDb } from './sql/sql-db.ts';

/**
 * The relayed messages of relay rounds, and the labelled releases senders recorded, in the
 * coordinator's store database, SQLite or PostgreSQL (tables of their own beside store.ts's, in the same portable DDL; created here). A message is
 * stored once per (job, round, sender, recipient), unopened.
 */
export interface RelayRow {
  round: number;
  from_key: string;
  to_key: string;
  body: Buffer;
  sha256: string;
  bytes: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS relay_messages (
  job_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  from_key TEXT NOT NULL,
  to_key TEXT NOT NULL,
  body BLOB NOT NULL,
  sha256 TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, round, from_key, to_key)
);
CREATE TABLE IF NOT EXISTS relay_releases (
  job_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  statement TEXT NOT NULL,
  PRIMARY KEY (job_id, round, key_id)
);
`;

export class RelayStore {
  constructor(private readonly db: SqlDb) {
    db.exec(SCHEMA);
  }

  message(jobId: string, round: number, from: string, to: string): RelayRow | undefined {
    return this.db
      .prepare('SELECT round, from_key, to_key, body, sha256, bytes FROM relay_messages WHERE job_id = ? AND round = ? AND from_key = ? AND to_key = ?')
      .get(jobId, round, from, to) as RelayRow | undefined;
  }

  messages(jobId: string, round: number): RelayRow[] {
    return this.db
      .prepare('SELECT round, from_key, to_key, body, sha256, bytes FROM relay_messages WHERE job_id = ? AND round = ? ORDER BY from_key, to_key')
      .all(jobId, round) as RelayRow[];
  }

  /** How many messages of the job are addressed to `to`, over all rounds (the long-poll's version counts them). */
  inboxSize(jobId: string, to: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM relay_messages WHERE job_id = ? AND to_key = ?').get(jobId, to) as { n: number }).n;
  }

  /** Sizes and hashes only (the ledger's view). */
  digests(jobId: string, round: number): { from_key: string; to_key: string; sha256: string; bytes: number }[] {
    return this.db
      .prepare('SELECT from_key, to_key, sha256, bytes FROM relay_messages WHERE job_id = ? AND round = ? ORDER BY from_key, to_key')
      .all(jobId, round) as { from_key: string; to_key: string; sha256: string; bytes: number }[];
  }

  put(jobId: string, round: number, from: string, to: string, body: Uint8Array, sha256: string, at: number): boolean {
    return (
      this.db
        .prepare('INSERT INTO relay_messages VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(jobId, round, from, to, Buffer.from(body), sha256, body.length, at).changes === 1
    );
  }

  release(jobId: string, round: number, keyId: string): string | undefined {
    return (
      this.db.prepare('SELECT statement FROM relay_releases WHERE job_id = ? AND round = ? AND key_id = ?').get(jobId, round, keyId) as
        { statement: string } | undefined
    )?.statement;
  }

  releases(jobId: string, keyId: string): string[] {
    return (
      this.db.prepare('SELECT statement FROM relay_releases WHERE job_id = ? AND key_id = ? ORDER BY round').all(jobId, keyId) as { statement: string }[]
    ).map((r) => r.statement);
  }

  putRelease(jobId: string, round: number, keyId: string, statement: string): boolean {
    return this.db.prepare('INSERT INTO relay_releases VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(jobId, round, keyId, statement).changes === 1;
  }
}
