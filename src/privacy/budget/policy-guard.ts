import { composedEpsilon } from '../accountant.ts';
import type { LabelledDpEvent } from '../dp-event.ts';
import type { PartnerPolicy } from '../policy.ts';
import type { BudgetGuard, BudgetVerdict } from './guard.ts';
import type { BudgetStore } from './store.ts';

/**
 * The partner node's guard: before each round it computes the ε it would have spent after the
 * round's releases and refuses when that breaks the per-job or lifetime limit of its policy. The
 * coordinator cannot override it: it runs on the partner's machine, against the partner's persisted
 * spend (./store.ts).
 */
export class PolicyBudgetGuard implements BudgetGuard {
  constructor(
    private readonly policy: PartnerPolicy,
    private readonly store: BudgetStore,
  ) {}

  authorize(jobId: string, round: number, attempt: number, releases: readonly LabelledDpEvent[], delta: number): BudgetVerdict {
    // Already paid for (a node restarted between charging and uploading): the release is the same
    // round's, so it costs nothing more and must not be refused.
    const unpaid = releases.filter((e) => !this.charged(jobId, round, attempt, e.label));
    if (unpaid.length === 0) return { ok: true, epsilonAfter: this.jobEpsilon(jobId, delta) };
    const would = this.store.wouldSpend(jobId, unpaid, delta, this.policy.datasetId);
    const before = this.jobEpsilon(jobId, delta);
    const requestedEpsilon = would.jobEpsilon - before;
    if (would.jobEpsilon > this.policy.maxEpsilonPerJob) {
      return {
        ok: false,
        reason: `ε for job ${jobId} would reach ${would.jobEpsilon.toFixed(4)} after round ${round}, above this partner's per-job limit ${this.policy.maxEpsilonPerJob}`,
        requestedEpsilon,
        remainingEpsilon: this.policy.maxEpsilonPerJob - before,
      };
    }
    if (would.lifetimeEpsilon > this.policy.lifetimeEpsilon) {
      return {
        ok: false,
        reason: `lifetime ε of dataset ${this.policy.datasetId} would reach ${would.lifetimeEpsilon.toFixed(4)}, above this partner's lifetime budget ${this.policy.lifetimeEpsilon}`,
        requestedEpsilon,
        remainingEpsilon: this.policy.lifetimeEpsilon - (would.lifetimeEpsilon - requestedEpsilon),
      };
    }
    return { ok: true, epsilonAfter: would.jobEpsilon };
  }

  /** Each attempt of a round is a separate release: charged separately, and only once. */
  charge(jobId: string, round: number, attempt: number, releases: readonly LabelledDpEvent[], delta: number) {
    const others = this.store.charges(jobId).filter((c) => !(c.round === round && c.attempt === attempt));
    const epsilonBefore = others.length ? composedEpsilon(others, delta) : 0;
    let epsilonAfter = this.jobEpsilon(jobId, delta);
    for (const e of releases) epsilonAfter = this.store.charge(jobId, this.policy.datasetId, round, e, delta, attempt, e.label).jobEpsilon;
    return { epsilonBefore, epsilonAfter };
  }

  private charged(jobId: string, round: number, attempt: number, label: string): boolean {
    return this.store.charges(jobId).some((c) => c.round === round && c.attempt === attempt && c.label === label);
  }

  spent(jobId: string, delta: number): number {
    return this.jobEpsilon(jobId, delta);
  }

  /** ε already charged to the job (0 before its first charge). */
  jobEpsilon(jobId: string, delta: number): number {
    return this.store.charges(jobId).length ? this.store.jobEpsilon(jobId, delta) : 0;
  }
}
