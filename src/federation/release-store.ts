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

const tag = (round: number, attempt: number) => `${round}.${attempt}`;

/** The store of simulate() and of in-process tests: the same rules, in memory. */
export class MemoryReleaseStore implements ReleaseStore {
  private readonly marks = new Set<string>();
  private readonly ledgered = new Set<string>();
  private readonly bodies = new Map<string, Uint8Array>();
  private readonly records = new Map<string, AttemptReleases | null>();
  private readonly signed = new Map<string, SubmissionRecord>();
  private readonly sent = new Set<string>();
  private readonly values: Record<string, Float64Array> = {};
  private last: { round: number; attempt: number } | null = null;

  envelope(round: number, attempt: number): Uint8Array | null {
    return this.bodies.get(tag(round, attempt)) ?? null;
  }
  released(round: number, attempt: number): AttemptReleases | null {
    return this.records.get(tag(round, attempt)) ?? null;
  }
  begun(round: number, attempt: number): boolean {
    return this.marks.has(tag(round, attempt));
  }
  latest(): { round: number; attempt: number } | null {
    return this.last && { ...this.last };
  }
  begin(round: number, attempt: number): void {
    this.marks.add(tag(round, attempt));
    this.last = { round, attempt };
  }
  built(
    round: number,
    attempt: number,
    body: Uint8Array,
    released: AttemptReleases | null,
    jobValues: Record<string, Float64Array>,
    record: SubmissionRecord,
  ): void {
    this.bodies.set(tag(round, attempt), body);
    this.records.set(tag(round, attempt), released);
    this.signed.set(tag(round, attempt), record);
    Object.assign(this.values, jobValues);
  }
  record(round: number, attempt: number): SubmissionRecord | null {
    return this.signed.get(tag(round, attempt)) ?? null;
  }
  markSent(round: number, attempt: number): void {
    this.sent.add(tag(round, attempt));
  }
  recording(round: number, attempt: number): void {
    this.ledgered.add(tag(round, attempt));
  }
  recorded(round: number, attempt: number): boolean {
    return this.ledgered.has(tag(round, attempt));
  }
  wasSent(round: number, attempt: number): boolean {
    return this.sent.has(tag(round, attempt));
  }
  jobValues(): Record<string, Float64Array> {
    return { ...this.values };
  }
  applied(round: number): void {
    for (const k of [...this.bodies.keys()]) if (Number(k.split('.')[0]) <= round) this.bodies.delete(k);
  }
}
