import type { Logger } from 'pino';
import { FedmarkError } from '../../src/errors.ts';
import { verifySignedManifest, type JobManifest } from '../../src/federation/manifest.ts';
import type { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { hasCode } from '../../src/federation/protocol/errors.ts';
import type { ManifestResponse } from '../../src/federation/protocol/schemas.ts';
import type { PolicyLimits } from '../../src/privacy/ledger/entries.ts';
import type { PartnerLedger } from '../ledger.ts';
import type { PartnerNodeOptions } from '../node.ts';
import { sleep } from './context.ts';

export type JoinOutcome =
  | { joined: true; manifest: JobManifest; signed: ManifestResponse; acceptedNow: boolean }
  | { joined: false; manifest: JobManifest; state: string; reason: string };

/** A node may start before the job owner registers the job: wait for it rather than fail. */
async function waitForJob(client: CoordinatorClient, jobId: string, pollMs: number, timeoutMs: number, signal?: AbortSignal): Promise<ManifestResponse> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await client.manifest(jobId);
    } catch (err) {
      if (!hasCode(err, 'UNKNOWN_JOB', 'COORDINATOR_UNREACHABLE') || Date.now() > end) throw err;
    }
    await sleep(pollMs);
  }
}

/**
 * Step 1: find the job, check the owner's signature on its manifest and that it names this node,
 * then review it against the local policy and send the attested acceptance or refusal (recorded in
 * the node's own ledger first).
 */
export type JoinOptions = Pick<PartnerNodeOptions, 'jobId' | 'pollMs' | 'joinTimeoutMs' | 'signal' | 'reviewJob' | 'policyLimits'> & {
  /** The dataset schema hash this node holds, or how to tell it from the manifest (vertical parties hold different schemas). */
  schemaHash: string | ((manifest: JobManifest) => string);
};

export async function joinJob(o: JoinOptions, client: CoordinatorClient, ledger: PartnerLedger, myKeyId: string, extraReasons: (m: JobManifest) => string[], log: Logger): Promise<JoinOutcome> {
  const pollMs = o.pollMs ?? 200;
  const signed = await waitForJob(client, o.jobId, pollMs, o.joinTimeoutMs ?? 10 * 60_000, o.signal);
  const manifest = verifySignedManifest(signed);
  if (!manifest.partners.some((p) => p.keyId === myKeyId)) {
    throw new FedmarkError('NOT_PARTNER', `job ${o.jobId} does not list this node's key ${myKeyId} as a partner`);
  }
  const status = await client.status(o.jobId);
  const me = status.partners.find((p) => p.keyId === myKeyId)!;
  if (me.status === 'accepted') return { joined: true, manifest, signed, acceptedNow: false };
  if (me.status !== 'invited') return { joined: false, manifest, state: me.status, reason: `this node is ${me.status} for the job` };

  const reasons = [...extraReasons(manifest), ...o.reviewJob(manifest)];
  if (manifest.dataset.schemaHash !== (typeof o.schemaHash === 'string' ? o.schemaHash : o.schemaHash(manifest))) reasons.unshift('the job was defined for a different dataset schema than this node holds');
  const limits: PolicyLimits = o.policyLimits?.(manifest) ?? { maxEpsilon: manifest.dp?.targetEpsilon ?? Number.MAX_VALUE, maxDelta: manifest.dp?.delta ?? 0.5 };
  if (reasons.length) {
    const statement = ledger.refusal(o.jobId, signed.ledgerManifestHash, reasons.join('; '), limits);
    await client.accept(o.jobId, { accepted: false, reason: reasons.join('; '), statement });
    log.warn({ reasons }, 'job refused by local policy');
    return { joined: false, manifest, state: 'refused', reason: reasons.join('; ') };
  }
  const statement = ledger.acceptance(o.jobId, signed.ledgerManifestHash, limits);
  await client.accept(o.jobId, { accepted: true, statement });
  log.info('job accepted');
  return { joined: true, manifest, signed, acceptedNow: true };
}
