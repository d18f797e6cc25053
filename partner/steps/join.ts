import type { Logger } from 'pino';
import type { PublicIdentity } from '../../src/crypto/identity.ts';
import { FedmarkError } from '../../src/errors.ts';
import { verifySignedManifest, type JobManifest } from '../../src/federation/manifest.ts';
import type { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { checkGenesisEntry, verifyCoordinatorHead } from '../../src/federation/protocol/coordinator-proofs.ts';
import { hasCode } from '../../src/federation/protocol/errors.ts';
import type { ManifestResponse } from '../../src/federation/protocol/schemas.ts';
import type { LedgerEntry, PolicyLimits } from '../../src/privacy/ledger/entries.ts';
import { parseLedgerBytes } from '../../src/privacy/ledger/reader.ts';
import type { PartnerLedger } from '../ledger.ts';
import type { PartnerNodeOptions } from '../node.ts';
import { NotYet, waitUntil } from './waiting.ts';

export type JoinOutcome =
  | { joined: true; manifest: JobManifest; signed: ManifestResponse; coordinator: PublicIdentity; acceptedNow: boolean }
  | { joined: false; manifest: JobManifest; state: string; reason: string };

/**
 * Who this node talks to: a coordinator that proves it holds the key it names (and is the pinned
 * one, if `--coordinator-key-id` was given). A coordinator that cannot be reached yet is waited for,
 * saying so, until the join timeout.
 */
async function verifiedCoordinator(o: JoinOptions, client: CoordinatorClient, log: Logger): Promise<PublicIdentity> {
  const pub = await waitUntil(
    { what: `the coordinator at ${o.coordinatorUrl}`, timeoutMs: o.joinTimeoutMs, pollMs: o.pollMs, signal: o.signal, log, onWaiting: o.onWaiting },
    async () => {
      try {
        return await client.coordinatorIdentity({ pinnedKeyId: o.coordinatorKeyId });
      } catch (err) {
        if (hasCode(err, 'COORDINATOR_UNREACHABLE')) return new NotYet(`it cannot be reached (${(err as Error).message})`);
        throw err;
      }
    },
  );
  if (!o.coordinatorKeyId)
    log.warn({ coordinator: pub.keyId }, 'the coordinator identity is not pinned (--coordinator-key-id): trusting the key the job owner named');
  return pub;
}

/** A node may start before the job owner registers the job: wait for it (saying what for) rather than fail. */
function waitForJob(o: JoinOptions, client: CoordinatorClient, log: Logger): Promise<ManifestResponse> {
  return waitUntil(
    { what: `job "${o.jobId}" at ${o.coordinatorUrl}`, timeoutMs: o.joinTimeoutMs, pollMs: o.pollMs, signal: o.signal, log, onWaiting: o.onWaiting },
    async () => {
      try {
        return await client.manifest(o.jobId);
      } catch (err) {
        // No job-existence oracle: "not registered yet" and "this key is not the job's" are one answer.
        if (hasCode(err, 'AUTH_REJECTED'))
          return new NotYet("the coordinator does not know it yet, or does not know this node's key for it (check --job and the job owner's partner list)");
        if (hasCode(err, 'COORDINATOR_UNREACHABLE')) return new NotYet('the coordinator cannot be reached');
        throw err;
      }
    },
  );
}

/**
 * The job's ledger as the coordinator keeps it: its owner-signed genesis must name this very
 * coordinator (so a trusted owner chose it), and the coordinator must sign a head of a chain that
 * starts there — which a server relaying another coordinator's identity cannot do. Returns the
 * manifest-entry hash the node answers, computed here.
 */
async function checkJobLedger(client: CoordinatorClient, signed: ManifestResponse, manifest: JobManifest, coordinator: PublicIdentity): Promise<string> {
  const genesis = signed.ledgerGenesis as LedgerEntry;
  const anchor = checkGenesisEntry(manifest, genesis, coordinator.keyId);
  const head = await client.ledgerHead(manifest.jobId);
  const ledger = head.seq === 0 ? [genesis] : parseLedgerBytes(await client.ledger(manifest.jobId)).entries;
  verifyCoordinatorHead(head, coordinator, { anchor, ledger });
  return anchor;
}

/**
 * Step 1: find the job, check who signed it and which coordinator runs it, review it in full against
 * the local policy — every time the node starts, whatever the coordinator says — and answer. Whether
 * this node accepted is its own ledger's record, never the coordinator's status: an acceptance found
 * there is resent if the coordinator lacks it; without one the node reviews and answers now (recorded
 * in its own ledger before it is sent). A job this node accepted that its policy now refuses is left
 * with an attested withdrawal before anything is trained.
 */
export type JoinOptions = Pick<
  PartnerNodeOptions,
  'jobId' | 'coordinatorUrl' | 'pollMs' | 'joinTimeoutMs' | 'signal' | 'onWaiting' | 'reviewJob' | 'policyLimits' | 'ownerKeyId' | 'coordinatorKeyId'
> & {
  /** The dataset schema hash this node holds, or how to tell it from the manifest (vertical parties hold different schemas). */
  schemaHash: string | ((manifest: JobManifest) => string);
};

export async function joinJob(
  o: JoinOptions,
  client: CoordinatorClient,
  ledger: PartnerLedger,
  myKeyId: string,
  extraReasons: (m: JobManifest) => string[],
  log: Logger,
): Promise<JoinOutcome> {
  const coordinator = await verifiedCoordinator(o, client, log);
  const signed = await waitForJob(o, client, log);
  const manifest = verifySignedManifest(signed);
  if (!manifest.partners.some((p) => p.keyId === myKeyId)) {
    throw new FedmarkError('NOT_PARTNER', `job ${o.jobId} does not list this node's key ${myKeyId} as a partner`);
  }
  const anchor = await checkJobLedger(client, signed, manifest, coordinator);

  const reasons = [...extraReasons(manifest), ...o.reviewJob(manifest)];
  if (o.ownerKeyId !== undefined && manifest.owner.keyId !== o.ownerKeyId)
    reasons.unshift(`the job is signed by owner ${manifest.owner.keyId}, not the pinned owner ${o.ownerKeyId} (--owner-key-id)`);
  if (manifest.dataset.schemaHash !== (typeof o.schemaHash === 'string' ? o.schemaHash : o.schemaHash(manifest)))
    reasons.unshift('the job was defined for a different dataset schema than this node holds');
  const limits: PolicyLimits = o.policyLimits?.(manifest) ?? {
    maxEpsilon: manifest.dp?.targetEpsilon ?? Number.MAX_VALUE,
    maxDelta: manifest.dp?.delta ?? 0.5,
  };
  const reason = reasons.join('; ');
  const answered = ledger.answerTo(o.jobId);
  if (answered && answered.payload.manifestHash !== anchor) {
    throw new FedmarkError(
      'MANIFEST_CHANGED',
      `this node answered job ${o.jobId} for manifest ${answered.payload.manifestHash.slice(0, 12)}…, the coordinator now serves ${anchor.slice(0, 12)}…: refusing to go on`,
    );
  }
  const status = await client.status(o.jobId);
  const theirs = status.partners.find((p) => p.keyId === myKeyId)?.status ?? 'invited';
  const send = async (accepted: boolean, statement: Record<string, unknown>) => {
    await client.accept(o.jobId, accepted ? { accepted, statement } : { accepted, reason, statement }).catch((err: unknown) => {
      // The coordinator may claim an answer this node never gave (its status is no proof): this node's record stands.
      if (!hasCode(err, 'ALREADY_ANSWERED', 'JOB_CLOSED')) throw err;
      log.warn({ theirs, err: (err as Error).message }, 'the coordinator records another answer than this node gave');
    });
  };

  if (answered?.type === 'partner.withdraw') return { joined: false, manifest, state: 'withdrawn', reason: 'this node has withdrawn from the job' };
  if (answered?.type === 'partner.refusal') {
    if (theirs === 'invited') await send(false, answered.payload);
    return { joined: false, manifest, state: 'refused', reason: answered.payload.reason };
  }
  if (answered?.type === 'partner.acceptance') {
    if (reasons.length) {
      log.warn({ reasons }, 'the local policy now refuses a job this node accepted: withdrawing');
      const statement = ledger.withdrawal(o.jobId, `the local policy now refuses the job: ${reason}`, Math.max(0, ...status.closedRounds));
      await client.withdraw(o.jobId, statement.reason, statement).catch((err: unknown) => {
        if (!hasCode(err, 'JOB_CLOSED', 'WITHDRAWN')) throw err;
      });
      return { joined: false, manifest, state: 'withdrawn', reason };
    }
    if (theirs === 'invited') await send(true, answered.payload);
    log.info("job accepted earlier (this node's own ledger)");
    return { joined: true, manifest, signed, coordinator, acceptedNow: false };
  }
  if (theirs !== 'invited') log.warn({ theirs }, 'the coordinator reports an answer this node has no record of: reviewing the job now');
  if (reasons.length) {
    const statement = ledger.refusal(o.jobId, anchor, reason, limits);
    await send(false, statement);
    log.warn({ reasons }, 'job refused by local policy');
    return { joined: false, manifest, state: 'refused', reason };
  }
  const statement = ledger.acceptance(o.jobId, anchor, limits);
  await send(true, statement);
  log.info('job accepted');
  return { joined: true, manifest, signed, coordinator, acceptedNow: true };
}
