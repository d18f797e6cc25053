/**
 * What a relay workload (vertical learning: PSI, SecureBoost, scoring) adds to the workload seam: the
 * coordinator's checks of the bytes it relays (it cannot open a sealed body, but it can check who
 * signed a header and where it is addressed), the messages the coordinator itself sends in a round
 * (the PSI intersection), and the ledger entries those produce. The round machine, the store, the
 * routes and the nodes' relay loop are generic over it.
 */
import { z } from 'zod';
import type { Identity, PublicIdentity } from '../crypto/identity.ts';
import { FedmarkError } from '../errors.ts';
import { dpEventSchema, type LabelledDpEvent } from '../privacy/dp-event.ts';
import type { EntryType, PayloadInput } from '../privacy/ledger/entries.ts';
import type { JobManifest } from './manifest.ts';
import type { AnyWorkload, Workload } from './workload.ts';

export interface RelayedMessage {
  round: number;
  from: string;
  to: string;
  body: Uint8Array;
}

/** A ledger entry the coordinator appends to the job ledger on a relay workload's behalf. */
export type LedgerProposal = { [T in EntryType]: { type: T; payload: PayloadInput<T> } }[EntryType];

export interface RelayContext {
  /** The coordinator's identity (COORDINATOR in a plan) — secret half only where the coordinator sends. */
  coordinator: Identity;
  /** Every party's public identity by key id. */
  keyOf(keyId: string): PublicIdentity | undefined;
  /** The messages stored so far for a round. */
  received(round: number): RelayedMessage[];
}

export interface RelayOutcome {
  /** Messages the coordinator sends (`from` is COORDINATOR), stored as part of the round they name. */
  replies: RelayedMessage[];
  ledger: LedgerProposal[];
}

export interface RelayHooks {
  /**
   * Checks one message before it is stored, and reacts to it (the PSI coordinator answers the last
   * full list with every party's result). Throws FedmarkError naming the problem.
   */
  accept(manifest: JobManifest, message: RelayedMessage, ctx: RelayContext): RelayOutcome;
  /** Ledger entries to write when the job's first relay round opens (e.g. the PSI job's parameters). */
  opening?(manifest: JobManifest): LedgerProposal[];
}

export interface RelayWorkload<S = unknown, R = unknown> extends Workload<S, R> {
  readonly sharedKey: false;
  readonly relay: RelayHooks;
}

export function isRelayWorkload(w: AnyWorkload): w is RelayWorkload {
  return (w as Partial<RelayWorkload>).relay !== undefined;
}

/** The seam's steps a relay workload does not have (it uploads and sums nothing). */
export function noUploads<S, R>(kind: string): Pick<Workload<S, R>, 'local' | 'apply' | 'report'> {
  const none = (): never => {
    throw new FedmarkError('RELAY_WORKLOAD', `workload ${kind} relays messages; it has no upload rounds to compute, apply or report`);
  };
  return { local: none, apply: none, report: () => null };
}

// --- labelled releases of a relay round --------------------------------------------------------

export const labelledEventSchema = dpEventSchema.extend({ label: z.string().min(1).max(64), sensitivity: z.number().positive() }).strict();

/** What a sender attests before its messages of a round leave: the releases it charged, and its ε. */
export const releaseStatementSchema = z.strictObject({
  jobId: z.string().min(1),
  partner: z.string().regex(/^[0-9a-f]{32}$/),
  round: z.number().int().positive(),
  releases: z.array(labelledEventSchema).min(1),
  delta: z.number().gt(0).lt(1),
  epsilonSpent: z.number().nonnegative(),
  epsilonCumulative: z.number().nonnegative(),
  attestation: z.strictObject({ keyId: z.string().regex(/^[0-9a-f]{32}$/), sig: z.string().min(1) }).optional(),
});
export type ReleaseStatement = z.infer<typeof releaseStatementSchema>;

/** The releases a statement records must be exactly the plan's for this sender and round. */
export function sameReleases(planned: readonly LabelledDpEvent[], recorded: readonly LabelledDpEvent[]): boolean {
  const key = (e: LabelledDpEvent) => `${e.label}|${e.samplingRate}|${e.noiseMultiplier}|${e.steps}|${e.sensitivity}`;
  return planned.length === recorded.length && planned.every((e, i) => key(e) === key(recorded[i]));
}
