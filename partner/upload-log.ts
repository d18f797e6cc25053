import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { FedmarkError } from '../src/errors.ts';
import { BookedReleaseStore, type ReleaseBook } from '../src/federation/release-store.ts';
import { submissionRecordSchema } from '../src/federation/submission-record.ts';
import { attemptReleasesSchema } from '../src/privacy/ledger/entries.ts';
import { writeFileAtomic } from '../src/util/atomic-file.ts';

const FORMAT = 'fedmark-release-log';

const tagged = z.string().regex(/^\d+\.\d+$/);

/** The release book (src/federation/release-store.ts) as the node keeps it, with the file's format and job. */
const indexSchema = z
  .object({
    format: z.literal(FORMAT),
    version: z.literal(1),
    jobId: z.string(),
    begun: z.array(tagged),
    latest: z.object({ round: z.number().int().positive(), attempt: z.number().int().nonnegative() }).nullable(),
    envelopes: z.array(tagged),
    released: z.record(z.string(), attemptReleasesSchema.nullable()),
    jobValues: z.record(z.string(), z.array(z.number())),
    records: z.record(z.string(), submissionRecordSchema),
    sent: z.array(tagged),
    // Absent in files written before the mark existed: nothing was marked then.
    recorded: z.array(tagged).default([]),
  })
  .strict();

/**
 * The partner node's persisted release store (src/federation/release-store.ts): one index file per
 * job and one file per kept envelope, each replaced atomically (temp file, fsync, rename). It
 * survives a crash at any point: an attempt is marked begun before anything is computed for it,
 * and its envelope is on disk before the bytes leave, so after a restart the node re-sends the same
 * bytes or withholds the attempt — it never draws a fresh release for a charged one. An index it
 * cannot read is an error, never reset: a reset would let a charged attempt be computed again.
 */
export class UploadLog extends BookedReleaseStore {
  private readonly indexPath: string;

  constructor(
    private readonly stateDir: string,
    private readonly jobId: string,
  ) {
    super();
    this.indexPath = join(stateDir, `${jobId}.releases.json`);
    if (existsSync(this.indexPath)) this.book = this.read();
    // Temp files of a write killed half way (writeFileAtomic names them .<file>.<pid>.<rand>.tmp): the
    // node holds its state directory's lock, so no other process is writing them.
    for (const name of readdirSync(stateDir)) {
      if (name.startsWith(`.${jobId}.`) && name.endsWith('.tmp')) rmSync(join(stateDir, name), { force: true });
    }
  }

  private read(): ReleaseBook {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.indexPath, 'utf8'));
    } catch (err) {
      throw this.corrupt(`not valid JSON: ${(err as Error).message}`);
    }
    const parsed = indexSchema.safeParse(raw);
    if (!parsed.success) throw this.corrupt(`field "${parsed.error.issues[0]?.path.join('.')}": ${parsed.error.issues[0]?.message}`);
    const { format: _format, version: _version, jobId, ...book } = parsed.data;
    if (jobId !== this.jobId) throw this.corrupt(`it belongs to job ${jobId}`);
    return book;
  }

  private corrupt(why: string): FedmarkError {
    return new FedmarkError(
      'RELEASE_LOG_CORRUPT',
      `${this.indexPath}: the record of what this node released for job ${this.jobId} is unreadable (${why}); refusing to continue — restore it from a backup: without it a charged round could be released twice`,
    );
  }

  private envelopePath(t: string): string {
    return join(this.stateDir, `${this.jobId}.${t}.envelope`);
  }

  protected saveBook(): void {
    writeFileAtomic(this.indexPath, `${JSON.stringify({ format: FORMAT, version: 1, jobId: this.jobId, ...this.book })}\n`);
  }

  protected keepEnvelope(t: string, body: Uint8Array): void {
    writeFileAtomic(this.envelopePath(t), body);
  }

  protected loadEnvelope(t: string): Uint8Array {
    const path = this.envelopePath(t);
    if (!existsSync(path)) throw this.corrupt(`envelope ${t} is listed but ${path} is missing`);
    return new Uint8Array(readFileSync(path));
  }

  protected dropEnvelopes(ts: string[]): void {
    for (const t of ts) rmSync(this.envelopePath(t), { force: true });
  }
}
