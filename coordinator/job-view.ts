import type { JobView, RoundRules, RoundView } from '../src/federation/round-machine.ts';
import type { CoordinatorStore, RoundRow } from './store.ts';

/** The round machine's view of one (round, attempt), read from the store. */
export function roundView(store: CoordinatorStore, row: RoundRow): RoundView {
  return {
    round: row.round,
    attempt: row.attempt,
    kind: row.kind,
    state: row.state,
    stage: row.stage === 'upload' || row.stage === 'relay' ? row.stage : null,
    selected: JSON.parse(row.selected) as string[],
    submitted: store.submissions(row.job_id, row.round, row.attempt).map((s) => s.key_id),
    declined: store.declines(row.job_id, row.round, row.attempt).map((d) => d.key_id),
    deadlineAt: row.deadline_at,
    baseHash: row.base_model_hash,
    hashes: store.modelHashes(row.job_id, row.round),
  };
}

/** The round machine's view of a job, read from the store: what the engine hands to `transition`. */
export function jobView(store: CoordinatorStore, jobId: string, rules: RoundRules, partnerCount: number): JobView {
  const job = store.getJob(jobId)!;
  const row = job.current_round ? store.round(jobId, job.current_round, job.attempt) : undefined;
  const closedStateRounds = store
    .rounds(jobId)
    .filter((r) => r.state === 'closed' && rules.plan(r.round).updatesState)
    .map((r) => r.round);
  return {
    state: job.state,
    reason: job.status_reason,
    createdAt: job.created_at,
    keysReady: store.sealedKeyCount(jobId) === partnerCount,
    partners: store.partners(jobId).map((p) => ({ keyId: p.key_id, status: p.status })),
    current: row ? roundView(store, row) : null,
    afterRound: closedStateRounds.length ? Math.max(...closedStateRounds) : 0,
  };
}
