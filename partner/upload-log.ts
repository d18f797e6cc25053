import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AttemptReleases } from '../src/privacy/ledger/entries.ts';
import { writeFileAtomic } from '../src/util/atomic-file.ts';

/** What a partner keeps about a round it uploaded to, until that round's aggregate is applied and recorded in its ledger. */
/** A round of a job without differential privacy: what was sent (no ε bounds it; it is recorded all the same). */
export interface NonPrivateSubmission {
  nonPrivate: true;
  attempt: number;
  ciphertextHashes: string[];
}
export type SubmittedRound = AttemptReleases | NonPrivateSubmission;

/**
 * The node's own record of its uploads, on disk so it survives a crash: the envelope of the attempt
 * it is uploading to (re-sent as is after a restart, never rebuilt: a rebuilt one would be a fresh,
 * uncharged release) and the DP report of every round it submitted to.
 */
export class UploadLog {
  private readonly pendingPath: string;
  private readonly submittedPath: string;
  private readonly rounds: Map<number, SubmittedRound>;

  constructor(stateDir: string, jobId: string) {
    this.pendingPath = join(stateDir, `${jobId}.pending-submission`);
    this.submittedPath = join(stateDir, `${jobId}.submitted.json`);
    this.rounds = new Map(existsSync(this.submittedPath) ? (JSON.parse(readFileSync(this.submittedPath, 'utf8')) as [number, SubmittedRound][]) : []);
  }

  /** The persisted envelope for (round, attempt), if this node built one before. */
  pending(round: number, attempt: number): Uint8Array | null {
    if (!existsSync(this.pendingPath)) return null;
    const p = JSON.parse(readFileSync(this.pendingPath, 'utf8')) as { tag: string; body: string };
    return p.tag === `${round}.${attempt}` ? Buffer.from(p.body, 'base64') : null;
  }

  /** Persisted before the bytes are sent. */
  savePending(round: number, attempt: number, body: Uint8Array): void {
    writeFileAtomic(this.pendingPath, JSON.stringify({ tag: `${round}.${attempt}`, body: Buffer.from(body).toString('base64') }));
  }

  clearPending(): void {
    rmSync(this.pendingPath, { force: true });
  }

  submitted(round: number): SubmittedRound | undefined {
    return this.rounds.get(round);
  }

  recordSubmitted(round: number, r: SubmittedRound): void {
    this.rounds.set(round, r);
    this.save();
  }

  forget(round: number): void {
    this.rounds.delete(round);
    this.save();
  }

  private save(): void {
    writeFileAtomic(this.submittedPath, JSON.stringify([...this.rounds]));
  }
}
