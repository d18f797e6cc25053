import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LedgerWriter } from '../src/privacy/ledger/writer.ts';
import { entryHash, signerFromSecretKey } from '../src/privacy/ledger/signing.ts';
import { LEDGER_SCHEMA_VERSION, type EntryType, type LedgerEntry, type PayloadInput } from '../src/privacy/ledger/entries.ts';
import { signHead, type HeadPointer } from '../src/privacy/ledger/head.ts';
import type { Identity } from '../src/crypto/identity.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { canonicalJson } from '../src/privacy/ledger/canonical.ts';
import { reconcileLedgerFile, type LedgerMirror } from './ledger-mirror.ts';

/** What makes two entries "the same event" for the coordinator's redo-safe appends. */
function entryKey(e: Pick<LedgerEntry, 'type' | 'payload'>): string {
  const p = e.payload as { round?: number; partner?: string; origin?: string };
  switch (e.type) {
    case 'round':
    case 'evaluation':
    case 'relay.round':
      return `${e.type}:${p.round}`;
    case 'vertical.release':
      return `${e.type}:${p.round}:${p.partner}`;
    case 'psi.full':
      return `${e.type}:${p.origin}`;
    case 'budget.refusal':
      return `${e.type}:${p.round}:${p.partner}`;
    case 'attempt.failed':
      return `${e.type}:${p.round}:${(p as { attempt?: number }).attempt}`;
    case 'partner.acceptance':
    case 'partner.refusal':
    case 'partner.withdraw':
      return `${e.type}:${p.partner}`;
    default:
      return e.type;
  }
}

/**
 * One hash-chained, signed ledger per job, written by the coordinator's own key. Seq 0 is the job
 * manifest entry signed by the job owner, which anchors every key allowed in the ledger.
 */
export class JobLedgers {
  private readonly writers = new Map<string, LedgerWriter>();
  /** Per job, the identity of every entry already written (see `entryKey`). */
  private readonly written = new Map<string, Set<string>>();
  private readonly signer;
  /** Per job, lines written to the file but not yet to the mirror (its database was unavailable). */
  private readonly unmirrored = new Map<string, { seq: number; line: string }[]>();

  constructor(
    private readonly dir: string,
    identity: Identity,
    private readonly sync = true,
    /** The database copy of every ledger (PostgreSQL stores), see ledger-mirror.ts. */
    private readonly mirror?: LedgerMirror,
  ) {
    mkdirSync(dir, { recursive: true });
    this.signer = signerFromSecretKey(identity.signSecretKey);
  }

  /** The job's ledger file; with a mirror, opened first so that it is complete (rebuilt from the database). */
  path(jobId: string): string {
    if (this.mirror) this.writer(jobId);
    return this.fileOf(jobId);
  }

  private fileOf(jobId: string): string {
    return join(this.dir, `${jobId}.ledger.jsonl`);
  }

  private writer(jobId: string): LedgerWriter {
    let w = this.writers.get(jobId);
    if (!w) {
      if (this.mirror) reconcileLedgerFile(this.fileOf(jobId), jobId, this.mirror);
      // A crash during an append leaves at most a torn last line: move it aside and record that.
      w = LedgerWriter.open(this.fileOf(jobId), this.signer, { repairTruncatedTail: true, sync: this.sync });
      // Opening may itself append (the record of a repaired torn tail): copy that too.
      if (this.mirror) reconcileLedgerFile(this.fileOf(jobId), jobId, this.mirror);
      this.writers.set(jobId, w);
      this.written.set(jobId, new Set(readLedger(this.fileOf(jobId)).entries.map(entryKey)));
    }
    return w;
  }

  /** Appends the owner-signed manifest entry (seq 0) after checking its signature and place in the chain. */
  appendGenesis(jobId: string, entry: LedgerEntry, ownerSignPublicKey: Uint8Array): void {
    const w = this.writer(jobId);
    this.flushMirror(jobId);
    const written = w.appendSigned(entry, ownerSignPublicKey);
    this.written.get(jobId)!.add(entryKey(entry));
    this.toMirror(jobId, written);
  }

  /**
   * Copies an appended entry to the database. If that fails the entry stays queued and the error
   * goes to the caller (who has not committed the matching state change yet); the next append, or
   * the next start's reconcile, copies it.
   */
  private toMirror(jobId: string, entry: LedgerEntry): void {
    if (!this.mirror) return;
    const queue = this.unmirrored.get(jobId) ?? [];
    queue.push({ seq: entry.seq, line: canonicalJson(entry) });
    this.unmirrored.set(jobId, queue);
    this.flushMirror(jobId);
  }

  private flushMirror(jobId: string): void {
    const queue = this.unmirrored.get(jobId);
    if (!this.mirror || !queue?.length) return;
    this.mirror.putLedgerLines(jobId, queue);
    this.unmirrored.delete(jobId);
  }

  /**
   * Appends unless an entry with the same identity (e.g. the record of round 3, the final model) is
   * already there. The coordinator writes its ledger before it commits the matching state change, so
   * after a crash between the two it redoes the step, and this keeps the redo from writing twice.
   */
  append<T extends EntryType>(jobId: string, type: T, payload: PayloadInput<T>): void {
    const w = this.writer(jobId);
    this.flushMirror(jobId);
    const written = this.written.get(jobId)!;
    const key = entryKey({ type, payload } as LedgerEntry);
    if (written.has(key)) return;
    const entry = w.append(type, payload);
    written.add(key);
    this.toMirror(jobId, entry as unknown as LedgerEntry);
  }

  head(jobId: string): { seq: number; hash: string } {
    const w = this.writer(jobId);
    return { seq: w.lastSeq, hash: w.lastHash };
  }

  /** The head as the coordinator's signed statement (a head pointer, timestamped now). */
  signedHead(jobId: string): HeadPointer {
    const { seq, hash } = this.head(jobId);
    return signHead({ schemaVersion: LEDGER_SCHEMA_VERSION, seq, hash, ts: new Date().toISOString(), author: this.signer.keyId }, this.signer);
  }

  /** Hash of the manifest entry partners name in their acceptances. */
  manifestEntryHash(entry: LedgerEntry): string {
    return entryHash(entry);
  }

  close(): void {
    for (const w of this.writers.values()) w.close();
    this.writers.clear();
  }
}
