import type { JobManifest } from '../src/federation/manifest.ts';
import type { BudgetGuard } from '../src/federation/partner.ts';
import { composedEpsilon, type DpEvent } from '../src/privacy/accountant.ts';
import { planDp } from '../src/federation/dp-plan.ts';
import { checkJob, verifyDualAuthorization, type PartnerPolicy as Policy } from '../src/privacy/policy.ts';
import { approvalPayload } from '../src/federation/manifest.ts';
import type { BudgetStore } from '../src/privacy/budget-store.ts';

/** An officer's signature over `approvalPayload(manifest)` (see `fedmark approve`). */
export interface OfficerApproval {
  officer: string;
  signature: string;
}

/** Reasons this node's policy refuses the job (empty: accept). */
export function policyReview(policy: Policy, manifest: JobManifest, datasetRows: number, store: BudgetStore, approvals: OfficerApproval[] = []): string[] {
  const plan = planDp(manifest);
  if (!plan) return policy.allowNonPrivateJobs ? [] : ['the job is not differentially private; this node only releases DP updates (policy allowNonPrivateJobs is off)'];
  const verdict = checkJob(
    policy,
    { purpose: manifest.purpose, columns: manifest.dataset.columns, targetEpsilon: plan.targetEpsilon, delta: plan.delta, datasetRows },
    store.lifetimeEpsilon(policy.datasetId, plan.delta),
  );
  const reasons = verdict.ok ? [] : [...verdict.reasons];
  // Two-person rule: data access needs the signatures of two distinct officers named in the policy.
  if (policy.dualAuthorization && !verifyDualAuthorization(approvalPayload(manifest), approvals, policy)) {
    const named = policy.dualAuthorization.officers.map((o) => o.name).join(', ');
    reasons.push(`two-person approval missing: ${policy.dualAuthorization.required} of the officers (${named}) must sign this job (fedmark approve)`);
  }
  return reasons;
}

/**
 * The partner's own enforcement: before each round it computes the ε it would have spent after the
 * round and refuses when that breaks the per-job or lifetime limit. The coordinator cannot override it:
 * it runs here, on the partner's machine, against the partner's persisted spend.
 */
export class PolicyBudgetGuard implements BudgetGuard {
  constructor(
    private readonly policy: Policy,
    private readonly store: BudgetStore,
  ) {}

  authorize(jobId: string, round: number, attempt: number, event: DpEvent, delta: number) {
    // Already paid for (a node restarted between charging and uploading): the release is the same
    // round's, so it costs nothing more and must not be refused.
    if (this.charged(jobId, round, attempt)) return { ok: true as const, epsilonAfter: this.jobEpsilon(jobId, delta) };
    const would = this.store.wouldSpend(jobId, event, delta, this.policy.datasetId);
    const before = this.jobEpsilon(jobId, delta);
    const requestedEpsilon = would.jobEpsilon - before;
    if (would.jobEpsilon > this.policy.maxEpsilonPerJob) {
      return {
        ok: false as const,
        reason: `ε for job ${jobId} would reach ${would.jobEpsilon.toFixed(4)} after round ${round}, above this partner's per-job limit ${this.policy.maxEpsilonPerJob}`,
        requestedEpsilon,
        remainingEpsilon: this.policy.maxEpsilonPerJob - before,
      };
    }
    if (would.lifetimeEpsilon > this.policy.lifetimeEpsilon) {
      return {
        ok: false as const,
        reason: `lifetime ε of dataset ${this.policy.datasetId} would reach ${would.lifetimeEpsilon.toFixed(4)}, above this partner's lifetime budget ${this.policy.lifetimeEpsilon}`,
        requestedEpsilon,
        remainingEpsilon: this.policy.lifetimeEpsilon - (would.lifetimeEpsilon - requestedEpsilon),
      };
    }
    return { ok: true as const, epsilonAfter: would.jobEpsilon };
  }

  /** Each attempt of a round is a separate release: charged separately, and only once. */
  charge(jobId: string, round: number, attempt: number, event: DpEvent, delta: number) {
    const others = this.store.charges(jobId).filter((c) => !(c.round === round && c.attempt === attempt));
    const epsilonBefore = others.length ? composedEpsilon(others, delta) : 0;
    const r = this.store.charge(jobId, this.policy.datasetId, round, event, delta, attempt);
    return { epsilonBefore, epsilonAfter: r.jobEpsilon };
  }

  private charged(jobId: string, round: number, attempt: number): boolean {
    return this.store.charges(jobId).some((c) => c.round === round && c.attempt === attempt);
  }

  spent(jobId: string, delta: number): number {
    return this.jobEpsilon(jobId, delta);
  }

  /** ε already charged to the job (0 before its first charge). */
  jobEpsilon(jobId: string, delta: number): number {
    return this.store.charges(jobId).length ? this.store.jobEpsilon(jobId, delta) : 0;
  }
}
