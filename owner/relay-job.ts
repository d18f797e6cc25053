import type { Logger } from 'pino';
import type { Identity } from '../src/crypto/identity.ts';
import type { SignedManifest } from '../src/federation/manifest.ts';
import { CoordinatorClient } from '../src/federation/protocol/client.ts';
import { StatusWatcher } from '../src/federation/protocol/status-watcher.ts';
import type { JobStatus } from '../src/federation/protocol/schemas.ts';
import { isRelayWorkload } from '../src/federation/relay.ts';
import type { WorkloadRegistry } from '../src/federation/workload.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import { FedmarkError } from '../src/errors.ts';
import { registerJob } from './register.ts';

/**
 * The owner of a relay job (PSI, vertical SecureBoost): registers the signed manifest with its seq-0
 * ledger entry and follows the job to its end. There is no key ceremony — every party keeps its own
 * keys — and the owner reads nothing: the results stay with the parties.
 */
export async function runRelayJobOwner(o: {
  coordinatorUrl: string;
  identity: Identity;
  signed: SignedManifest;
  log: Logger;
  /** Interval polling, against a coordinator without the long-poll route. */
  pollMs?: number;
  /** How long one long-poll of the job status may be held (default 20 s); 0: interval polling only. */
  longPollMs?: number;
  signal?: AbortSignal;
  workloads?: WorkloadRegistry;
  onStatus?: (s: JobStatus) => void;
  /** Name the coordinator in the job ledger only if it proves it holds this key (`--coordinator-key-id`). */
  coordinatorKeyId?: string;
}): Promise<{ state: string; reason: string | null; rounds: number }> {
  const manifest = o.signed.manifest;
  const workload = (o.workloads ?? builtinWorkloads).resolve(manifest);
  if (!isRelayWorkload(workload)) throw new FedmarkError('RELAY_WORKLOAD', `workload ${workload.kind} is not a relay workload; run it with runJobOwner`);
  const client = new CoordinatorClient(o.coordinatorUrl, o.identity, { signal: o.signal });
  await registerJob(client, o.signed, o.identity, workload.privacy(manifest), null, o.coordinatorKeyId);
  o.log.info({ jobId: manifest.jobId, workload: workload.kind }, 'relay job registered');
  let last = -1;
  const watcher = new StatusWatcher(client, manifest.jobId, {
    pollMs: o.pollMs ?? 200,
    waitMs: o.longPollMs,
    signal: o.signal,
    onFallback: (why) => o.log.info(why),
  });
  for (;;) {
    o.signal?.throwIfAborted();
    const s = await watcher.next();
    if (s.round !== last) {
      last = s.round;
      o.onStatus?.(s);
    }
    if (s.state === 'completed' || s.state === 'failed' || s.state === 'halted') return { state: s.state, reason: s.reason, rounds: s.closedRounds.length };
  }
}
