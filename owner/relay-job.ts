import type { Logger } from 'pino';
import type { Identity } from '../src/crypto/identity.ts';
import type { SignedManifest } from '../src/federation/manifest.ts';
import { CoordinatorClient } from '../src/federation/protocol/client.ts';
import type { JobStatus } from '../src/federation/protocol/schemas.ts';
import { isRelayWorkload } from '../src/federation/relay.ts';
import type { WorkloadRegistry } from '../src/federation/workload.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import { FedmarkError } from '../src/errors.ts';
import { registerJob } from './register.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  pollMs?: number;
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
  for (;;) {
    o.signal?.throwIfAborted();
    const s = await client.status(manifest.jobId);
    if (s.round !== last) {
      last = s.round;
      o.onStatus?.(s);
    }
    if (s.state === 'completed' || s.state === 'failed' || s.state === 'halted') return { state: s.state, reason: s.reason, rounds: s.closedRounds.length };
    await sleep(o.pollMs ?? 200);
  }
}
