/** The audit's types and the small helpers its sections share. */
import { parsePayload, type AttemptReleases, type EntryType, type LedgerEntry, type PayloadOf, type PolicyLimits } from '../entries.ts';
import { readLedger, type ReadLedgerResult } from '../reader.ts';
import type { LedgerFinding, Severity } from '../verify.ts';
import type { DpEvent } from '../../dp-event.ts';

export type { DpEvent };

/** ε after composing `events` (in order) at `delta` (fedmark wires in privacy/accountant.ts composedEpsilon). */
export type EpsilonOf = (events: DpEvent[], delta: number) => number;

export type LedgerInput = string | LedgerEntry[] | ReadLedgerResult;

export interface AuditOptions {
  coordinator: LedgerInput;
  partners?: LedgerInput[];
  /**
   * The id-sidecar directory of each partner ledger, in `partners` order (a partner's
   * `<state-dir>/subject-ids`): with it the audit also checks that no scoring run listed a customer
   * whose consent withdrawal had already taken effect (SCORED_AFTER_WITHDRAWAL).
   */
  sidecarDirs?: (string | undefined)[];
  epsilonOf: EpsilonOf;
  /** The job may still be running: a missing `model.final`/`job.halt` is a warning, not an error. */
  allowRunning?: boolean;
  /** If given, the job owner's key id must be one of these. */
  trustedOwnerKeys?: string[];
  /** If given, the coordinator the job ledger names (and whose key writes it) must be one of these. */
  trustedCoordinatorKeys?: string[];
  /** Relative tolerance when comparing recorded and recomputed ε (float noise only). Default 1e-9. */
  epsilonTolerance?: number;
}

export type PartnerStatus = 'accepted' | 'refused' | 'withdrawn' | 'no-response';

export interface PartnerSummary {
  partner: string;
  name: string;
  status: PartnerStatus;
  /** Rounds in which the partner charged its accountant or (a job without DP) submitted. */
  rounds: number;
  /**
   * False for a job without differential privacy: nothing bounds what its rounds reveal, so its
   * `epsilon` is +∞ (JSON: null) — never 0.
   */
  private: boolean;
  rowsUsed: number | null;
  rowsWithoutConsent: number | null;
  /** max(recorded, recomputed): never reported lower than either; +∞ for a job without DP. */
  epsilon: number;
  epsilonRecorded: number;
  epsilonRecomputed: number | null;
  delta: number | null;
  /** min(maxEpsilon, remainingLifetimeEpsilon) from the acceptance, if any. */
  epsilonLimit: number | null;
  budgetLeft: number | null;
  localLedgerChecked: boolean;
}

export type AuditFinding = LedgerFinding;

export interface AuditResult {
  ok: boolean;
  jobId: string | null;
  findings: AuditFinding[];
  partners: PartnerSummary[];
  ledgers: { name: string; entries: number; ok: boolean }[];
}

export interface Loaded {
  name: string;
  read: ReadLedgerResult | LedgerEntry[];
}

export function load(input: LedgerInput, fallbackName: string): Loaded {
  if (typeof input === 'string') return { name: input, read: readLedger(input) };
  if (Array.isArray(input)) return { name: fallbackName, read: input };
  return { name: input.path, read: input };
}

/** Typed payloads of the entries whose payload validated, in seq order. */
export function typed(entries: LedgerEntry[], valid: Set<number>) {
  return entries
    .filter((e) => valid.has(e.seq))
    .map((e) => ({ entry: e, payload: parsePayload(e.type, e.payload, e.schemaVersion).data as unknown }))
    .map(({ entry, payload }) => ({ seq: entry.seq, type: entry.type, payload, entry }));
}
export type Typed = ReturnType<typeof typed>[number];
export function ofType<T extends EntryType>(list: Typed[], t: T): { seq: number; payload: PayloadOf<T>; entry: LedgerEntry }[] {
  return list.filter((x) => x.type === t) as unknown as { seq: number; payload: PayloadOf<T>; entry: LedgerEntry }[];
}

/** "recorded < recomputed" beyond float noise. */
export function understated(recorded: number, recomputed: number, tol: number): boolean {
  return recorded < recomputed * (1 - tol) - 1e-12;
}
export function limitOf(policy: PolicyLimits | undefined): number | null {
  if (!policy) return null;
  return policy.remainingLifetimeEpsilon !== undefined ? Math.min(policy.maxEpsilon, policy.remainingLifetimeEpsilon) : policy.maxEpsilon;
}
export const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
export const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(6));

export interface PartnerState {
  keyId: string;
  name: string;
  status: PartnerStatus;
  responseSeq?: number;
  policy?: PolicyLimits;
  manifestHash?: string;
  withdrawAfterRound?: number;
  budgetRefusedRounds: Set<number>;
  events: DpEvent[];
  rounds: Map<number, { seq: number; rec: PayloadOf<'round'>['partners'][number]; round: PayloadOf<'round'> }>;
  /** Rounds whose `submitted` list names the partner (with or without a DP record). */
  submittedRounds: Set<number>;
  /** Every attempt's releases the coordinator recorded for this partner (rounds, evaluations, failed attempts), by "round.attempt". */
  releaseRecords: Map<string, { seq: number; round: number; record: AttemptReleases }>;
  /** ε recomputed from the partner's own ledger when it was cross-checked (the summary never reports less). */
  epsilonLocal?: number;
  epsilonRecorded: number;
  epsilonRecomputed: number | null;
  delta: number | null;
  consent?: { seq: number; payload: PayloadOf<'consent.usage'> };
  /** Consent counts found only in the partner's local ledger. */
  localConsent?: { seq: number; payload: PayloadOf<'consent.usage'> };
}

export interface JobAnalysis {
  jobId: string | null;
  /** Whether the manifest entry declares differential privacy (`dp` not null). */
  isPrivate: boolean;
  manifestSeq0: LedgerEntry | null;
  partners: Map<string, PartnerState>;
  roundsBySeq: { seq: number; payload: PayloadOf<'round'> }[];
  final?: { seq: number; payload: PayloadOf<'model.final'> };
}

/** What the sections of the job-ledger walk (analyze-*.ts) share while they read one ledger in seq order. */
export interface JobWalk {
  m: PayloadOf<'job.manifest'>;
  out: JobAnalysis;
  /** Hash of the seq-0 manifest entry (what acceptances must name). */
  anchor: string;
  halted: { seq: number; afterRound: number } | null;
  lastRound: number;
  seenCiphertexts: Map<string, number>;
  epsilonOf: EpsilonOf | null;
  tol: number;
  err: (seq: number, code: string, message: string, severity?: Severity) => void;
}
