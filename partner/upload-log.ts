import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DpReport } from '../src/federation/update-codec.ts';
import { writeFileAtomic } from '../src/util/atomic-file.ts';

/** What a partner keeps about a round it uploaded to, until that round's aggregate is applied and recorded in its ledger. */
export interface SubmittedRound {
  /** Null in a job without differential privacy (the round is still recorded: its release is unbounded). */
  dp: DpReport | null;
  ciphertextHashes: string[];
}

const TEMP_OF = [(jobId: string) => `${jobId}.pending-submission`, (jobId: string) => `${jobId}.submitted.json`];

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
    // Temp files of a write killed half way (writeFileAtomic names them .<file>.<pid>.<rand>.tmp): the
    // node holds its state directory's lock, so no other process is writing them.
    for (const name of readdirSync(stateDir)) {
      if (TEMP_OF.some((f) => name.startsWith(`.${f(jobId)}.`)) && name.endsWith('.tmp')) rmSync(join(stateDir, name), { force: true });
    }
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
