import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { FedmarkError } from '../src/errors.ts';
import type { ReleaseStore } from '../src/federation/release-store.ts';
import { submissionRecordSchema, type SubmissionRecord } from '../src/federation/submission-record.ts';
import { attemptReleasesSchema, type AttemptReleases } from '../src/privacy/ledger/entries.ts';
import { writeFileAtomic } from '../src/util/atomic-file.ts';

const FORMAT = 'fedmark-release-log';

const indexSchema = z
  .object({
    format: z.literal(FORMAT),
    version: z.literal(1),
    jobId: z.string(),
    /** Every (round, attempt) begun, as "round.attempt". */
    begun: z.array(z.string().regex(/^\d+\.\d+$/)),
    latest: z.object({ round: z.number().int().positive(), attempt: z.number().int().nonnegative() }).nullable(),
    /** Envelopes kept on disk (one file each), until their round's aggregate is applied. */
    envelopes: z.array(z.string().regex(/^\d+\.\d+$/)),
    /** What each built attempt released (null: no DP), kept for the ledger's round records. */
    released: z.record(z.string(), attemptReleasesSchema.nullable()),
    /** Values released once per job (SGD: the noisy row count), by label. */
    jobValues: z.record(z.string(), z.array(z.number())),
    /** This node's signed record of each upload it built, and the uploads the coordinator acknowledged. */
    records: z.record(z.string(), submissionRecordSchema),
    sent: z.array(z.string().regex(/^\d+\.\d+$/)),
    /** Attempts whose release was about to be written to the ledger (never computed again). */
    recorded: z.array(z.string().regex(/^\d+\.\d+$/)).default([]),
  })
  .strict();
type Index = z.infer<typeof indexSchema>;

const tag = (round: number, attempt: number) => `${round}.${attempt}`;

/**
 * The partner node's persisted release store (src/federation/release-store.ts): one index file per
 * job and one file per kept envelope, each replaced atomically (temp file, fsync, rename). It
 * survives a crash at any point: an attempt is marked begun before anything is computed for it,
 * and its envelope is on disk before the bytes leave, so after a restart the node re-sends the same
 * bytes or withholds the attempt — it never draws a fresh release for a charged one. An index it
 * cannot read is an error, never reset: a reset would let a charged attempt be computed again.
 */
export class UploadLog implements ReleaseStore {
  private readonly indexPath: string;
  private index: Index;

  constructor(
    private readonly stateDir: string,
    private readonly jobId: string,
  ) {
    this.indexPath = join(stateDir, `${jobId}.releases.json`);
    this.index = existsSync(this.indexPath)
      ? this.read()
      : { format: FORMAT, version: 1, jobId, begun: [], latest: null, envelopes: [], released: {}, jobValues: {}, records: {}, sent: [], recorded: [] };
    // Temp files of a write killed half way (writeFileAtomic names them .<file>.<pid>.<rand>.tmp): the
    // node holds its state directory's lock, so no other process is writing them.
    for (const name of readdirSync(stateDir)) {
      if (name.startsWith(`.${jobId}.`) && name.endsWith('.tmp')) rmSync(join(stateDir, name), { force: true });
    }
  }

  private read(): Index {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.indexPath, 'utf8'));
    } catch (err) {
      throw this.corrupt(`not valid JSON: ${(err as Error).message}`);
    }
    const parsed = indexSchema.safeParse(raw);
    if (!parsed.success) throw this.corrupt(`field "${parsed.error.issues[0]?.path.join('.')}": ${parsed.error.issues[0]?.message}`);
    if (parsed.data.jobId !== this.jobId) throw this.corrupt(`it belongs to job ${parsed.data.jobId}`);
    return parsed.data;
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

  private save(): void {
    writeFileAtomic(this.indexPath, `${JSON.stringify(this.index)}\n`);
  }

  envelope(round: number, attempt: number): Uint8Array | null {
    const t = tag(round, attempt);
    if (!this.index.envelopes.includes(t)) return null;
    const path = this.envelopePath(t);
    if (!existsSync(path)) throw this.corrupt(`envelope ${t} is listed but ${path} is missing`);
    return new Uint8Array(readFileSync(path));
  }

  released(round: number, attempt: number): AttemptReleases | null {
    return this.index.released[tag(round, attempt)] ?? null;
  }

  begun(round: number, attempt: number): boolean {
    return this.index.begun.includes(tag(round, attempt));
  }

  latest(): { round: number; attempt: number } | null {
    return this.index.latest && { ...this.index.latest };
  }

  begin(round: number, attempt: number): void {
    const t = tag(round, attempt);
    this.index = { ...this.index, begun: this.index.begun.includes(t) ? this.index.begun : [...this.index.begun, t], latest: { round, attempt } };
    this.save();
  }

  built(
    round: number,
    attempt: number,
    body: Uint8Array,
    released: AttemptReleases | null,
    jobValues: Record<string, Float64Array>,
    record: SubmissionRecord,
  ): void {
    const t = tag(round, attempt);
    // The envelope first, then the index that names it: a crash in between leaves an unlisted file
    // (the attempt is then withheld, never recomputed).
    writeFileAtomic(this.envelopePath(t), body);
    const values = { ...this.index.jobValues };
    for (const [label, v] of Object.entries(jobValues)) values[label] = Array.from(v);
    this.index = {
      ...this.index,
      envelopes: [...this.index.envelopes.filter((x) => x !== t), t],
      released: { ...this.index.released, [t]: released },
      jobValues: values,
      records: { ...this.index.records, [t]: record },
    };
    this.save();
  }

  record(round: number, attempt: number): SubmissionRecord | null {
    return this.index.records[tag(round, attempt)] ?? null;
  }

  markSent(round: number, attempt: number): void {
    const t = tag(round, attempt);
    if (this.index.sent.includes(t)) return;
    this.index = { ...this.index, sent: [...this.index.sent, t] };
    this.save();
  }

  recording(round: number, attempt: number): void {
    const t = tag(round, attempt);
    if (this.index.recorded.includes(t)) return;
    this.index = { ...this.index, recorded: [...this.index.recorded, t] };
    this.save();
  }

  recorded(round: number, attempt: number): boolean {
    return this.index.recorded.includes(tag(round, attempt));
  }

  wasSent(round: number, attempt: number): boolean {
    return this.index.sent.includes(tag(round, attempt));
  }

  jobValues(): Record<string, Float64Array> {
    return Object.fromEntries(Object.entries(this.index.jobValues).map(([k, v]) => [k, Float64Array.from(v)]));
  }

  applied(round: number): void {
    const gone = this.index.envelopes.filter((t) => Number(t.split('.')[0]) <= round);
    if (!gone.length) return;
    this.index = { ...this.index, envelopes: this.index.envelopes.filter((t) => !gone.includes(t)) };
    this.save();
    for (const t of gone) rmSync(this.envelopePath(t), { force: true });
  }
}
