import type { AttemptReleases } from '../privacy/ledger/entries.ts';
import type { SubmissionRecord } from './submission-record.ts';

/**
 * What a partner keeps so that one charge buys one release (docs/PRIVACY.md): the envelope of every
 * (round, attempt) it built, kept until that round's aggregate is applied and re-sent as is
 * whenever the attempt is asked for again; a mark for every attempt it began and for every attempt
 * whose release it was about to record in its ledger, so an attempt that may have reached a ledger
 * before a crash is never computed a second time; and the values it released once per job (SGD's
 * noisy row count), reused by later rounds as post-processing. The partner node persists it
 * (`partner/upload-log.ts`); `simulate()` keeps it in memory. Nothing here trusts the coordinator:
 * what this partner sent comes from this store, not from the coordinator's status.
 */
export interface ReleaseStore {
  /** The envelope built for (round, attempt), if any. */
  envelope(round: number, attempt: number): Uint8Array | null;
  /** What the envelope of (round, attempt) released (null for an upload without DP); kept after the envelope is dropped. */
  released(round: number, attempt: number): AttemptReleases | null;
  /** True once (round, attempt) was begun: from then on it is never computed again. */
  begun(round: number, attempt: number): boolean;
  /** The latest (round, attempt) begun; rounds and attempts never go back before it. */
  latest(): { round: number; attempt: number } | null;
  /** Marks (round, attempt) begun, durably, before anything is computed for it. */
  begin(round: number, attempt: number): void;
  /** Marks (round, attempt) as about to be recorded in the partner's ledger, durably, before the record is written. */
  recording(round: number, attempt: number): void;
  /** True once `recording` was called for (round, attempt): its release may be in the ledger, so it is never computed again. */
  recorded(round: number, attempt: number): boolean;
  /**
   * Keeps the envelope of (round, attempt), what it released, and the job releases first made with
   * it — durably, before the bytes leave.
   */
  built(
    round: number,
    attempt: number,
    body: Uint8Array,
    released: AttemptReleases | null,
    jobValues: Record<string, Float64Array>,
    record: SubmissionRecord,
  ): void;
  /** This partner's signed record of the upload of (round, attempt), if it built one; kept after the envelope is dropped. */
  record(round: number, attempt: number): SubmissionRecord | null;
  /** The coordinator acknowledged the upload of (round, attempt): its sums must then list this partner's record. */
  markSent(round: number, attempt: number): void;
  wasSent(round: number, attempt: number): boolean;
  /** Values released once per job, by label. */
  jobValues(): Record<string, Float64Array>;
  /** The aggregate of `round` was applied: envelopes of rounds up to it are no longer needed. */
  applied(round: number): void;
}

/**
 * What a release store knows besides the envelope bytes, as plain JSON: the partner node writes it
 * to disk as it is (`partner/upload-log.ts`). Attempts are tagged "round.attempt".
 */
export interface ReleaseBook {
  /** Every (round, attempt) begun. */
  begun: string[];
  latest: { round: number; attempt: number } | null;
  /** Attempts whose envelope is kept, until their round's aggregate is applied. */
  envelopes: string[];
  /** What each built attempt released (null: no DP), kept for the ledger's round records. */
  released: Record<string, AttemptReleases | null>;
  /** Values released once per job (SGD: the noisy row count), by label. */
  jobValues: Record<string, number[]>;
  /** This partner's signed record of each upload it built. */
  records: Record<string, SubmissionRecord>;
  /** Uploads the coordinator acknowledged. */
  sent: string[];
  /** Attempts whose release was about to be written to the ledger (never computed again). */
  recorded: string[];
}

export const emptyReleaseBook = (): ReleaseBook => ({
  begun: [],
  latest: null,
  envelopes: [],
  released: {},
  jobValues: {},
  records: {},
  sent: [],
  recorded: [],
});

const tag = (round: number, attempt: number) => `${round}.${attempt}`;
const roundOf = (t: string) => Number(t.split('.')[0]);

/**
 * The rules of a release store over its book, once for every store; a store decides only where the
 * envelope bytes live and how a changed book is kept. Each change is saved before the method
 * returns, so the caller acts on it only once it is kept.
 */
export abstract class BookedReleaseStore implements ReleaseStore {
  protected book: ReleaseBook = emptyReleaseBook();

  /** Keeps the bytes of envelope `t`; called before the book names it. */
  protected abstract keepEnvelope(t: string, body: Uint8Array): void;
  /** The bytes of envelope `t`, which the book names. */
  protected abstract loadEnvelope(t: string): Uint8Array;
  /** Drops the bytes of envelopes the book no longer names; called after the book is saved. */
  protected abstract dropEnvelopes(ts: string[]): void;
  /** Keeps the book as it is now. */
  protected abstract saveBook(): void;

  private update(change: Partial<ReleaseBook>): void {
    this.book = { ...this.book, ...change };
    this.saveBook();
  }

  /** Adds `t` to a list of the book, saving only when it was not there yet. */
  private mark(list: 'sent' | 'recorded', t: string): void {
    if (!this.book[list].includes(t)) this.update({ [list]: [...this.book[list], t] });
  }

  envelope(round: number, attempt: number): Uint8Array | null {
    const t = tag(round, attempt);
    return this.book.envelopes.includes(t) ? this.loadEnvelope(t) : null;
  }
  released(round: number, attempt: number): AttemptReleases | null {
    return this.book.released[tag(round, attempt)] ?? null;
  }
  begun(round: number, attempt: number): boolean {
    return this.book.begun.includes(tag(round, attempt));
  }
  latest(): { round: number; attempt: number } | null {
    return this.book.latest && { ...this.book.latest };
  }
  begin(round: number, attempt: number): void {
    const t = tag(round, attempt);
    this.update({ begun: this.book.begun.includes(t) ? this.book.begun : [...this.book.begun, t], latest: { round, attempt } });
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
    // The envelope first, then the book that names it: a crash in between leaves an unlisted
    // envelope (the attempt is then withheld, never recomputed).
    this.keepEnvelope(t, body);
    const values = { ...this.book.jobValues };
    for (const [label, v] of Object.entries(jobValues)) values[label] = Array.from(v);
    this.update({
      envelopes: [...this.book.envelopes.filter((x) => x !== t), t],
      released: { ...this.book.released, [t]: released },
      jobValues: values,
      records: { ...this.book.records, [t]: record },
    });
  }
  record(round: number, attempt: number): SubmissionRecord | null {
    return this.book.records[tag(round, attempt)] ?? null;
  }
  markSent(round: number, attempt: number): void {
    this.mark('sent', tag(round, attempt));
  }
  recording(round: number, attempt: number): void {
    this.mark('recorded', tag(round, attempt));
  }
  recorded(round: number, attempt: number): boolean {
    return this.book.recorded.includes(tag(round, attempt));
  }
  wasSent(round: number, attempt: number): boolean {
    return this.book.sent.includes(tag(round, attempt));
  }
  jobValues(): Record<string, Float64Array> {
    return Object.fromEntries(Object.entries(this.book.jobValues).map(([k, v]) => [k, Float64Array.from(v)]));
  }
  applied(round: number): void {
    const gone = this.book.envelopes.filter((t) => roundOf(t) <= round);
    if (!gone.length) return;
    this.update({ envelopes: this.book.envelopes.filter((t) => !gone.includes(t)) });
    this.dropEnvelopes(gone);
  }
}

/** The store of simulate() and of in-process tests: the same rules, in memory. */
export class MemoryReleaseStore extends BookedReleaseStore {
  private readonly bodies = new Map<string, Uint8Array>();

  protected keepEnvelope(t: string, body: Uint8Array): void {
    this.bodies.set(t, body);
  }
  protected loadEnvelope(t: string): Uint8Array {
    return this.bodies.get(t)!;
  }
  protected dropEnvelopes(ts: string[]): void {
    for (const t of ts) this.bodies.delete(t);
  }
  protected saveBook(): void {}
}
