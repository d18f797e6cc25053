import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LedgerWriter } from '../src/privacy/ledger/writer.ts';
import { entryHash, signerFromSecretKey } from '../src/privacy/ledger/signing.ts';
import type { EntryOfType, EntryType, LedgerEntry, PayloadInput } from '../src/privacy/ledger/entries.ts';
import type { Identity } from '../src/crypto/identity.ts';

/**
 * One hash-chained, signed ledger per job, written by the coordinator's own key. Seq 0 is the job
 * manifest entry signed by the job owner, which anchors every key allowed in the ledger.
 */
export class JobLedgers {
  private readonly writers = new Map<string, LedgerWriter>();
  private readonly signer;

  constructor(
    private readonly dir: string,
    identity: Identity,
    private readonly sync = true,
  ) {
    mkdirSync(dir, { recursive: true });
    this.signer = signerFromSecretKey(identity.signSecretKey);
  }

  path(jobId: string): string {
    return join(this.dir, `${jobId}.ledger.jsonl`);
  }

  private writer(jobId: string): LedgerWriter {
    let w = this.writers.get(jobId);
    if (!w) {
      // A crash during an append leaves at most a torn last line: move it aside and record that.
      w = LedgerWriter.open(this.path(jobId), this.signer, { repairTruncatedTail: true, sync: this.sync });
      this.writers.set(jobId, w);
    }
    return w;
  }

  /** Appends the owner-signed manifest entry (seq 0) after checking its signature and place in the chain. */
  appendGenesis(jobId: string, entry: LedgerEntry, ownerSignPublicKey: Uint8Array): void {
    this.writer(jobId).appendSigned(entry, ownerSignPublicKey);
  }

  append<T extends EntryType>(jobId: string, type: T, payload: PayloadInput<T>): EntryOfType<T> {
    return this.writer(jobId).append(type, payload);
  }

  head(jobId: string): { seq: number; hash: string } {
    const w = this.writer(jobId);
    return { seq: w.lastSeq, hash: w.lastHash };
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
