import type { LabelledDpEvent } from '../dp-event.ts';

/** What a guard answers before a round: go ahead (and the ε after it), or refuse with the numbers. */
export type BudgetVerdict = { ok: true; epsilonAfter: number } | { ok: false; reason: string; requestedEpsilon: number; remainingEpsilon: number };

/**
 * A partner's own budget enforcement, the one place ε is charged. `authorize` runs before any
 * local computation for a round and must refuse when the ε after the round's releases would break
 * the partner's limits; `charge` records the releases before anything leaves the partner, and is
 * idempotent per (job, round, attempt, release label): a crash-and-resend never charges twice, and a
 * release already paid for is never refused. Each attempt of a round is a separate release.
 */
export interface BudgetGuard {
  authorize(jobId: string, round: number, attempt: number, releases: readonly LabelledDpEvent[], delta: number): BudgetVerdict;
  charge(jobId: string, round: number, attempt: number, releases: readonly LabelledDpEvent[], delta: number): { epsilonBefore: number; epsilonAfter: number };
  /** ε this job has cost the partner so far. */
  spent(jobId: string, delta: number): number;
}
