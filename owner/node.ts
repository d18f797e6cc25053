import type { Logger } from 'pino';
import type { Identity } from '../src/crypto/identity.ts';
import type { JobManifest, SignedManifest } from '../src/federation/manifest.ts';
import { CoordinatorClient } from '../src/federation/protocol/client.ts';
import { StatusWatcher } from '../src/federation/protocol/status-watcher.ts';
import { openSecureSum } from '../src/federation/secure-sum.ts';
import { StateTracker } from '../src/federation/state-tracker.ts';
import type { AnyWorkload, Workload, WorkloadRegistry } from '../src/federation/workload.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import type { SgdState } from '../src/federation/workloads/sgd/index.ts';
import type { FederatedEvalMetrics } from '../src/metrics/histogram.ts';
import { generateJobKey, registerJob, runKeyCeremony } from './register.ts';
import { assertEncodingFits } from '../src/federation/part-encoding.ts';
import { loadOrCreateJobKey } from './job-state.ts';

export interface RoundProgress<R = FederatedEvalMetrics> {
  round: number;
  totalRounds: number;
  /** What the workload reports from the round's sums (SGD: metrics of the model that entered the round). */
  metrics: R | null;
  partners: number;
}

export interface OwnerResult<S = SgdState, R = FederatedEvalMetrics> {
  state: string;
  reason: string | null;
  /** The final public state (SGD: `{ params, optimizerState }`). */
  finalState: S;
  modelHash: string;
  roundMetrics: RoundProgress<R>[];
  /** The report of the last round (SGD: the final model's metrics on every partner's hold-out). */
  finalMetrics: R | null;
  secretKey: Uint8Array | null;
}

/**
 * The data scientist's node: registers the signed job, runs the key ceremony, then follows every
 * closed round — decrypting its sums, reading the workload's report and applying the server step —
 * to obtain the final state (the model) and the federated metrics. It never sees a partner's
 * individual upload.
 */
export async function runJobOwner<S = SgdState, R = FederatedEvalMetrics>(o: {
  coordinatorUrl: string;
  identity: Identity;
  signed: SignedManifest;
  log: Logger;
  /** Interval polling, against a coordinator without the long-poll route. */
  pollMs?: number;
  /** How long one long-poll of the job status may be held (default 20 s); 0: interval polling only. */
  longPollMs?: number;
  onRound?: (p: RoundProgress<R>) => void;
  signal?: AbortSignal;
  /** Workloads beyond the built-in ones. */
  workloads?: WorkloadRegistry;
  /** The coordinator to name in the job's ledger: refused unless it proves it holds this key. */
  coordinatorKeyId?: string;
  /**
   * Where the job key is kept, sealed to the owner (owner/job-state.ts): a restarted owner with the
   * same dir and signed manifest re-registers idempotently and resumes with the same key. Without
   * it the key lives in memory only and a restart cannot resume.
   */
  stateDir?: string;
}): Promise<OwnerResult<S, R>> {
  const manifest: JobManifest = o.signed.manifest;
  const workload = (o.workloads ?? builtinWorkloads).resolve(manifest) as unknown as Workload<S, R>;
  // A job whose declared sizes cannot be encoded would be refused by every partner: say so before registering it.
  assertEncodingFits(workload as AnyWorkload, manifest);
  const client = new CoordinatorClient(o.coordinatorUrl, o.identity, { signal: o.signal });
  const scheme = await openSecureSum(manifest.encryption);
  const secretKey = o.stateDir ? loadOrCreateJobKey(o.stateDir, manifest, o.identity, scheme) : generateJobKey(scheme);
  const coordinator = await registerJob(client, o.signed, o.identity, workload.privacy(manifest), secretKey, o.coordinatorKeyId);
  await runKeyCeremony(client, o.signed, o.identity, secretKey, o.log);
  const tracker = new StateTracker<S, R>(manifest, workload, scheme, secretKey, coordinator.signPublicKey);
  const roundMetrics: RoundProgress<R>[] = [];
  let finalMetrics: R | null = null;
  let followed = 0;
  const result = (state: string, reason: string | null): OwnerResult<S, R> => ({
    state,
    reason,
    finalState: tracker.state,
    modelHash: tracker.hash,
    roundMetrics,
    finalMetrics,
    secretKey,
  });
  const watcher = new StatusWatcher(client, manifest.jobId, {
    pollMs: o.pollMs ?? 200,
    waitMs: o.longPollMs,
    signal: o.signal,
    onFallback: (why) => o.log.info(why),
  });
  try {
    for (;;) {
      o.signal?.throwIfAborted();
      const status = await watcher.next();
      for (const round of [...status.closedRounds].sort((a, b) => a - b)) {
        if (round <= followed) continue;
        const blobs: Record<string, Uint8Array> = {};
        for (const part of tracker.blobParts(round)) blobs[part] = await client.aggregate(manifest.jobId, round, part);
        // Decrypted only if the partner-signed records published with the sums back what they claim to hold.
        const sums = await tracker.open(round, blobs, await client.contents(manifest.jobId, round));
        const metrics = tracker.report(round, sums);
        tracker.apply(round, sums);
        if (round === status.totalRounds) finalMetrics = metrics;
        followed = round;
        const progress = { round, totalRounds: status.totalRounds, metrics, partners: status.partners.filter((p) => p.status === 'accepted').length };
        roundMetrics.push(progress);
        o.onRound?.(progress);
      }
      if (status.state === 'completed' && followed === status.totalRounds) return result(status.state, null);
      if (status.state === 'halted' || status.state === 'failed') return result(status.state, status.reason);
    }
  } finally {
    tracker.dispose();
    scheme.dispose();
  }
}
