import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NonceStore } from '../src/crypto/request-signing.ts';
import { FedmarkError } from '../src/errors.ts';
import { DirLock } from '../src/util/dir-lock.ts';
import { openStoreDb, type StoreLocation } from './sql/open.ts';
import type { SqlDb } from './sql/sql-db.ts';
import { jobStateSchema, type JobState, type PartnerStatus, type RoundState } from '../src/federation/protocol/schemas.ts';
import type { HashReport } from '../src/federation/round-machine.ts';
import type { ModelSelection } from '../src/federation/workload.ts';

/**
 * The coordinator's durable state. Everything accepted is written inside a transaction before the
 * HTTP response is sent, so a restart (even after SIGKILL) loses nothing that was acknowledged.
 * It stores manifests, public keys, opaque sealed key blobs and encrypted sums — never a secret key
 * or a plaintext update. A round's sums are one row per named part (the workload's plan says which).
 */

export type { JobState, RoundState };

/** Layout 2: partners table, a stage per round, one row per part sum (layout 1 had fixed update/eval columns). */
const STORE_LAYOUT = 2;

export interface JobRow {
  job_id: string;
  signed_manifest: string;
  state: JobState;
  current_round: number;
  attempt: number;
  status_reason: string | null;
  created_at: number;
}

export interface PartnerRow {
  job_id: string;
  key_id: string;
  name: string;
  sign_public_key: string;
  box_public_key: string;
  status: PartnerStatus;
  acceptance: string | null;
}

export interface RoundRow {
  job_id: string;
  round: number;
  attempt: number;
  kind: string;
  state: RoundState;
  stage: string | null;
  selected: string;
  opened_at: number;
  deadline_at: number;
  closed_at: number | null;
  base_model_hash: string | null;
  submissions: number;
}

export interface SubmissionRow {
  job_id: string;
  round: number;
  attempt: number;
  key_id: string;
  body_hash: string;
  meta: string;
  /** JSON array of sha256 of each ciphertext part, in the envelope's order. */
  part_hashes: string;
  received_at: number;
}

/** Portable DDL (sql/sql-db.ts): every table once, for both backends. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY,
  signed_manifest TEXT NOT NULL,
  state TEXT NOT NULL,
  current_round INTEGER NOT NULL DEFAULT 0,
  attempt INTEGER NOT NULL DEFAULT 0,
  status_reason TEXT,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partners (
  job_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  name TEXT NOT NULL,
  sign_public_key TEXT NOT NULL,
  box_public_key TEXT NOT NULL,
  status TEXT NOT NULL,
  acceptance TEXT,
  PRIMARY KEY (job_id, key_id)
);
CREATE TABLE IF NOT EXISTS sealed_keys (
  job_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  blob BLOB NOT NULL,
  PRIMARY KEY (job_id, key_id)
);
CREATE TABLE IF NOT EXISTS rounds (
  job_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  stage TEXT,
  selected TEXT NOT NULL,
  opened_at INTEGER NOT NULL,
  deadline_at INTEGER NOT NULL,
  closed_at INTEGER,
  base_model_hash TEXT,
  submissions INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, round, attempt)
);
CREATE TABLE IF NOT EXISTS round_parts (
  job_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  part TEXT NOT NULL,
  sum BLOB NOT NULL,
  PRIMARY KEY (job_id, round, attempt, part)
);
CREATE TABLE IF NOT EXISTS submissions (
  job_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  body_hash TEXT NOT NULL,
  meta TEXT NOT NULL,
  part_hashes TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, round, attempt, key_id)
);
CREATE TABLE IF NOT EXISTS declines (
  job_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  PRIMARY KEY (job_id, round, attempt, key_id)
);
CREATE TABLE IF NOT EXISTS model_hashes (
  job_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  hash TEXT NOT NULL,
  selection TEXT,
  PRIMARY KEY (job_id, round, key_id)
);
CREATE TABLE IF NOT EXISTS nonces (
  key_id TEXT NOT NULL,
  nonce TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (key_id, nonce)
);
CREATE TABLE IF NOT EXISTS store_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_lines (
  job_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  line TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
);
`;

/** Added within layout 2 (early stopping): a store written before it gains the column, empty for its reports. */
function addSelectionColumn(db: SqlDb): void {
  if (db.dialect === 'postgres') {
    db.exec('ALTER TABLE model_hashes ADD COLUMN IF NOT EXISTS selection TEXT');
    return;
  }
  const columns = db.prepare('PRAGMA table_info(model_hashes)').all() as { name: string }[];
  if (!columns.some((c) => c.name === 'selection')) db.exec('ALTER TABLE model_hashes ADD COLUMN selection TEXT');
}

export class CoordinatorStore {
  readonly db: SqlDb;
  readonly dataDir: string;
  /** Where the store lives: the data dir's SQLite file, or a PostgreSQL database. */
  readonly location: StoreLocation;
  /** One coordinator per data directory: a second would write the same ledgers and store. */
  private readonly lock: DirLock;

  /** `store`: a postgres:// URL, or absent for `<dataDir>/coordinator.sqlite`; `lockWaitMs`: see openStoreDb. */
  constructor(dataDir: string, store?: string, opts: { lockWaitMs?: number } = {}) {
    mkdirSync(dataDir, { recursive: true });
    this.dataDir = dataDir;
    this.lock = DirLock.acquire(dataDir, 'fedmark coordinator');
    try {
      const opened = openStoreDb(store ?? join(dataDir, 'coordinator.sqlite'), { writer: true, lockWaitMs: opts.lockWaitMs });
      this.db = opened.db;
      this.location = opened.location;
      try {
        const layout = opened.layout();
        if (this.db.tableExists('jobs') && layout !== STORE_LAYOUT) {
          throw new FedmarkError(
            'STORE_LAYOUT',
            `${this.db.where} was written by an earlier fedmark (store layout ${layout || 1}, this build uses ${STORE_LAYOUT}); its jobs' manifests use the old vocabulary too — finish them with that build, or start this coordinator with a new ${this.location.kind === 'sqlite' ? '--data-dir' : '--store database'}`,
          );
        }
        this.db.transaction(() => {
          this.db.exec(SCHEMA);
          addSelectionColumn(this.db);
          opened.setLayout(STORE_LAYOUT);
        });
      } catch (err) {
        opened.db.close();
        throw err;
      }
    } catch (err) {
      this.lock.release();
      throw err;
    }
  }

  close(): void {
    this.db.close();
    this.lock.release();
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn);
  }

  /**
   * The coordinator's key id signs every ledger this store's jobs have: a coordinator started on
   * the same store with another key (a moved coordinator that left its key file behind) would fork
   * them, and partners pin the key. The first start records it; later starts must match.
   */
  claimCoordinatorKey(keyId: string): void {
    this.transaction(() => {
      const row = this.db.prepare("SELECT value FROM store_meta WHERE key = 'coordinator_key_id'").get() as { value: string } | undefined;
      if (row && row.value !== keyId) {
        throw new FedmarkError(
          'STORE_OTHER_COORDINATOR',
          `${this.db.where} belongs to coordinator key ${row.value}, but this coordinator's key is ${keyId}: start it with that coordinator's key file (coordinator.key.json in its --data-dir; see docs/OPERATIONS.md)`,
        );
      }
      if (!row) this.db.prepare("INSERT INTO store_meta (key, value) VALUES ('coordinator_key_id', ?)").run(keyId);
    });
  }

  /** The job ledger's lines as stored in the database (PostgreSQL stores; see job-ledgers.ts). */
  ledgerLines(jobId: string): string[] {
    return (this.db.prepare('SELECT line FROM ledger_lines WHERE job_id = ? ORDER BY seq').all(jobId) as { line: string }[]).map((r) => r.line);
  }
  putLedgerLines(jobId: string, lines: { seq: number; line: string }[]): void {
    if (!lines.length) return;
    this.transaction(() => {
      const put = this.db.prepare('INSERT INTO ledger_lines (job_id, seq, line) VALUES (?, ?, ?) ON CONFLICT (job_id, seq) DO NOTHING');
      for (const l of lines) put.run(jobId, l.seq, l.line);
    });
  }

  // jobs
  insertJob(row: Omit<JobRow, 'current_round' | 'attempt' | 'status_reason'>): void {
    this.db
      .prepare('INSERT INTO jobs (job_id, signed_manifest, state, created_at) VALUES (?, ?, ?, ?)')
      .run(row.job_id, row.signed_manifest, row.state, row.created_at);
  }
  getJob(jobId: string): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE job_id = ?').get(jobId) as JobRow | undefined;
  }
  listJobs(): JobRow[] {
    return this.db.prepare('SELECT * FROM jobs ORDER BY created_at').all() as JobRow[];
  }
  /** For /health: a real committed write (net zero), and how many jobs are in each state. */
  probe(): { writable: boolean; error?: string; jobs: Record<JobState, number>; openRounds: number } {
    let writable = true;
    let error: string | undefined;
    try {
      this.transaction(() => {
        this.db.prepare("INSERT INTO nonces VALUES ('health-probe', 'probe', 0) ON CONFLICT (key_id, nonce) DO NOTHING").run();
        this.db.prepare("DELETE FROM nonces WHERE key_id = 'health-probe'").run();
      });
    } catch (err) {
      writable = false;
      error = (err as { code?: string }).code ?? (err as Error).message;
    }
    const jobs = Object.fromEntries(jobStateSchema.options.map((st) => [st, 0])) as Record<JobState, number>;
    let openRounds = 0;
    try {
      for (const r of this.db.prepare('SELECT state, COUNT(*) AS n FROM jobs GROUP BY state').all() as { state: JobState; n: number }[]) jobs[r.state] = r.n;
      openRounds = (this.db.prepare("SELECT COUNT(*) AS n FROM rounds WHERE state = 'open'").get() as { n: number }).n;
    } catch (err) {
      // A database that is gone (PostgreSQL) cannot be counted either: /health says so, it does not fail.
      if (writable) throw err;
    }
    return { writable, ...(error ? { error } : {}), jobs, openRounds };
  }

  activeJobs(): JobRow[] {
    return this.db.prepare("SELECT * FROM jobs WHERE state IN ('awaiting-keys','running')").all() as JobRow[];
  }
  updateJob(jobId: string, fields: Partial<Pick<JobRow, 'state' | 'current_round' | 'attempt' | 'status_reason'>>): void {
    const keys = Object.keys(fields) as (keyof typeof fields)[];
    if (!keys.length) return;
    this.db.prepare(`UPDATE jobs SET ${keys.map((k) => `${k} = @${k}`).join(', ')} WHERE job_id = @job_id`).run({ ...fields, job_id: jobId });
  }

  // partners
  /** Undoes a registration whose ledger genesis could not be written (only jobs and partners rows exist then). */
  deleteNewJob(jobId: string): void {
    this.transaction(() => {
      this.db.prepare('DELETE FROM partners WHERE job_id = ?').run(jobId);
      this.db.prepare('DELETE FROM jobs WHERE job_id = ?').run(jobId);
    });
  }

  insertPartner(row: PartnerRow): void {
    this.db.prepare('INSERT INTO partners VALUES (@job_id, @key_id, @name, @sign_public_key, @box_public_key, @status, @acceptance)').run(row);
  }
  partners(jobId: string): PartnerRow[] {
    return this.db.prepare('SELECT * FROM partners WHERE job_id = ? ORDER BY name').all(jobId) as PartnerRow[];
  }
  partner(jobId: string, keyId: string): PartnerRow | undefined {
    return this.db.prepare('SELECT * FROM partners WHERE job_id = ? AND key_id = ?').get(jobId, keyId) as PartnerRow | undefined;
  }
  setPartnerStatus(jobId: string, keyId: string, status: PartnerRow['status'], acceptance: string | null): void {
    this.db
      .prepare('UPDATE partners SET status = ?, acceptance = COALESCE(?, acceptance) WHERE job_id = ? AND key_id = ?')
      .run(status, acceptance, jobId, keyId);
  }

  // sealed keys
  putSealedKey(jobId: string, keyId: string, blob: Uint8Array): void {
    this.db
      .prepare('INSERT INTO sealed_keys VALUES (?, ?, ?) ON CONFLICT (job_id, key_id) DO UPDATE SET blob = excluded.blob')
      .run(jobId, keyId, Buffer.from(blob));
  }
  sealedKey(jobId: string, keyId: string): Buffer | undefined {
    const row = this.db.prepare('SELECT blob FROM sealed_keys WHERE job_id = ? AND key_id = ?').get(jobId, keyId) as { blob: Buffer } | undefined;
    return row?.blob;
  }
  sealedKeyCount(jobId: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM sealed_keys WHERE job_id = ?').get(jobId) as { n: number }).n;
  }

  // rounds
  insertRound(row: Omit<RoundRow, 'closed_at' | 'submissions'>): void {
    this.db
      .prepare(
        'INSERT INTO rounds (job_id, round, attempt, kind, state, stage, selected, opened_at, deadline_at, base_model_hash) VALUES (@job_id, @round, @attempt, @kind, @state, @stage, @selected, @opened_at, @deadline_at, @base_model_hash)',
      )
      .run(row);
  }
  round(jobId: string, round: number, attempt: number): RoundRow | undefined {
    return this.db.prepare('SELECT * FROM rounds WHERE job_id = ? AND round = ? AND attempt = ?').get(jobId, round, attempt) as RoundRow | undefined;
  }
  closedRound(jobId: string, round: number): RoundRow | undefined {
    return this.db.prepare("SELECT * FROM rounds WHERE job_id = ? AND round = ? AND state = 'closed'").get(jobId, round) as RoundRow | undefined;
  }
  rounds(jobId: string): RoundRow[] {
    return this.db.prepare('SELECT * FROM rounds WHERE job_id = ? ORDER BY round, attempt').all(jobId) as RoundRow[];
  }
  updateRound(jobId: string, round: number, attempt: number, fields: Partial<Pick<RoundRow, 'state' | 'stage' | 'closed_at' | 'submissions'>>): void {
    const keys = Object.keys(fields) as (keyof typeof fields)[];
    this.db
      .prepare(`UPDATE rounds SET ${keys.map((k) => `${k} = @${k}`).join(', ')} WHERE job_id = @job_id AND round = @round AND attempt = @attempt`)
      .run({ ...fields, job_id: jobId, round, attempt });
  }

  // the running sums of a round, one per part
  partSums(jobId: string, round: number, attempt: number): Record<string, Buffer> {
    const rows = this.db.prepare('SELECT part, sum FROM round_parts WHERE job_id = ? AND round = ? AND attempt = ?').all(jobId, round, attempt) as {
      part: string;
      sum: Buffer;
    }[];
    return Object.fromEntries(rows.map((r) => [r.part, r.sum]));
  }
  putPartSum(jobId: string, round: number, attempt: number, part: string, sum: Uint8Array): void {
    this.db
      .prepare('INSERT INTO round_parts VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, round, attempt, part) DO UPDATE SET sum = excluded.sum')
      .run(jobId, round, attempt, part, Buffer.from(sum));
  }

  // submissions
  submission(jobId: string, round: number, attempt: number, keyId: string): SubmissionRow | undefined {
    return this.db.prepare('SELECT * FROM submissions WHERE job_id = ? AND round = ? AND attempt = ? AND key_id = ?').get(jobId, round, attempt, keyId) as
      SubmissionRow | undefined;
  }
  /** Every submission of the job, failed attempts included, in (round, attempt) order (for ε totals). */
  allSubmissions(jobId: string): SubmissionRow[] {
    return this.db.prepare('SELECT * FROM submissions WHERE job_id = ? ORDER BY round, attempt, key_id').all(jobId) as SubmissionRow[];
  }
  submissions(jobId: string, round: number, attempt: number): SubmissionRow[] {
    return this.db
      .prepare('SELECT * FROM submissions WHERE job_id = ? AND round = ? AND attempt = ? ORDER BY key_id')
      .all(jobId, round, attempt) as SubmissionRow[];
  }
  insertSubmission(row: SubmissionRow): void {
    this.db.prepare('INSERT INTO submissions VALUES (@job_id, @round, @attempt, @key_id, @body_hash, @meta, @part_hashes, @received_at)').run(row);
  }
  insertDecline(jobId: string, round: number, attempt: number, keyId: string, reason: string): boolean {
    return this.db.prepare('INSERT INTO declines VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING').run(jobId, round, attempt, keyId, reason).changes === 1;
  }
  declines(jobId: string, round: number, attempt: number): { key_id: string; reason: string }[] {
    return this.db.prepare('SELECT key_id, reason FROM declines WHERE job_id = ? AND round = ? AND attempt = ?').all(jobId, round, attempt) as {
      key_id: string;
      reason: string;
    }[];
  }

  // model hashes
  putModelHash(jobId: string, round: number, keyId: string, hash: string, selection: ModelSelection | null = null): boolean {
    return (
      this.db
        .prepare('INSERT INTO model_hashes (job_id, round, key_id, hash, selection) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(jobId, round, keyId, hash, selection ? JSON.stringify(selection) : null).changes === 1
    );
  }
  /** The reports of a round, by key id: each state hash and the model selection reported with it. */
  modelHashes(jobId: string, round: number): HashReport[] {
    const rows = this.db.prepare('SELECT key_id, hash, selection FROM model_hashes WHERE job_id = ? AND round = ? ORDER BY key_id').all(jobId, round) as {
      key_id: string;
      hash: string;
      selection: string | null;
    }[];
    return rows.map((r) => ({ keyId: r.key_id, hash: r.hash, selection: r.selection ? (JSON.parse(r.selection) as ModelSelection) : null }));
  }

  /** Replay protection that survives restarts. */
  nonceStore(): NonceStore {
    const insert = this.db.prepare('INSERT INTO nonces VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    const prune = this.db.prepare('DELETE FROM nonces WHERE expires_at < ?');
    let lastPrune = 0;
    return {
      checkAndRecord: (keyId, nonce, expiresAtMs) => {
        const now = Date.now();
        if (now - lastPrune > 60_000) {
          prune.run(now);
          lastPrune = now;
        }
        return insert.run(keyId, nonce, expiresAtMs).changes === 1;
      },
    };
  }
}
