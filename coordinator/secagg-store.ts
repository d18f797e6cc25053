import type { SqlDb } from './sql/sql-db.ts';

/**
 * Masked aggregation's stage log, in the coordinator's store (SQLite or PostgreSQL: portable SQL, a
 * table of its own beside store.ts's; created here). Every accepted stage message and every stage close is one row, written
 * in the transaction that accepts it, so a restarted coordinator replays the log into the same
 * state machine (Ed25519 signatures are deterministic: its replayed views are byte-identical).
 */
export type SecaggEventKind =
  | 'advertise'
  | 'close-advertise'
  | 'shares'
  | 'close-shares'
  /** A partner's signed masked commitment, before its upload arrives (not yet in the machine). */
  | 'masked-pending'
  | 'masked'
  | 'close-upload'
  | 'consistency'
  | 'close-consistency'
  | 'reveal'
  | 'close-unmask'
  | 'failed';

export interface SecaggEventRow {
  seq: number;
  kind: SecaggEventKind;
  from_key: string;
  body: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS secagg_events (
  job_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  from_key TEXT NOT NULL,
  body TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (job_id, round, attempt, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS secagg_events_once ON secagg_events (job_id, round, attempt, kind, from_key);
`;

export class SecaggStore {
  constructor(private readonly db: SqlDb) {
    db.exec(SCHEMA);
  }

  events(jobId: string, round: number, attempt: number): SecaggEventRow[] {
    return this.db
      .prepare('SELECT seq, kind, from_key, body FROM secagg_events WHERE job_id = ? AND round = ? AND attempt = ? ORDER BY seq')
      .all(jobId, round, attempt) as SecaggEventRow[];
  }

  event(jobId: string, round: number, attempt: number, kind: SecaggEventKind, from: string): SecaggEventRow | undefined {
    return this.db
      .prepare('SELECT seq, kind, from_key, body FROM secagg_events WHERE job_id = ? AND round = ? AND attempt = ? AND kind = ? AND from_key = ?')
      .get(jobId, round, attempt, kind, from) as SecaggEventRow | undefined;
  }

  /** Appends one event (the caller's transaction); a kind is stored once per sender and attempt. */
  append(jobId: string, round: number, attempt: number, kind: SecaggEventKind, from: string, body: unknown, at: number): void {
    const next = this.db
      .prepare('SELECT COALESCE(MAX(seq), -1) + 1 AS seq FROM secagg_events WHERE job_id = ? AND round = ? AND attempt = ?')
      .get(jobId, round, attempt) as { seq: number };
    this.db.prepare('INSERT INTO secagg_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(jobId, round, attempt, next.seq, kind, from, JSON.stringify(body), at);
  }
}
