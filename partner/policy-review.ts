import type { JobManifest } from '../src/federation/manifest.ts';
import { approvalPayload } from '../src/federation/manifest.ts';
import type { WorkloadRegistry } from '../src/federation/workload.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import type { BudgetStore } from '../src/privacy/budget/store.ts';
import { checkJob, verifyDualAuthorization, type PartnerPolicy as Policy } from '../src/privacy/policy.ts';

/** An officer's signature over `approvalPayload(manifest)` (see `fedmark approve`). */
export interface OfficerApproval {
  officer: string;
  signature: string;
}

/**
 * Reasons this node's policy refuses the job (empty: accept) — the whole review, for private and
 * non-private jobs alike: the owner against the trusted owners, the purpose and columns, the
 * aggregation (plaintext refused unless allowed, the minimum quorum, the maximum number of rounds),
 * the two-person rule, and for a private job its DP terms against the policy and the lifetime budget
 * left. (A job naming a workload this node does not run is refused by the node itself.)
 */
export function policyReview(
  policy: Policy,
  manifest: JobManifest,
  datasetRows: number,
  store: BudgetStore,
  approvals: OfficerApproval[] = [],
  workloads: WorkloadRegistry = builtinWorkloads,
): string[] {
  const plan = workloads.has(manifest.workload.kind) ? workloads.resolve(manifest).privacy(manifest) : null;
  const verdict = checkJob(
    policy,
    {
      purpose: manifest.purpose,
      columns: manifest.dataset.columns,
      targetEpsilon: plan?.targetEpsilon ?? null,
      delta: plan?.delta ?? null,
      datasetRows,
      ownerKeyId: manifest.owner.keyId,
      encryption: manifest.encryption.scheme,
      quorum: manifest.quorum,
      rounds: manifest.rounds,
    },
    plan ? store.lifetimeEpsilon(policy.datasetId, plan.delta) : 0,
  );
  const reasons = verdict.ok ? [] : [...verdict.reasons];
  // Two-person rule: data access needs the signatures of two distinct officers named in the policy.
  if (policy.dualAuthorization && !verifyDualAuthorization(approvalPayload(manifest), approvals, policy)) {
    const named = policy.dualAuthorization.officers.map((o) => o.name).join(', ');
    reasons.push(`two-person approval missing: ${policy.dualAuthorization.required} of the officers (${named}) must sign this job (fedmark approve)`);
  }
  return reasons;
}
