import type { PublicIdentity } from '../src/crypto/identity.ts';
import type { Logger } from 'pino';
import type { Identity } from '../src/crypto/identity.ts';
import { FedmarkError } from '../src/errors.ts';
import { sealJobKey } from '../src/crypto/key-ceremony.ts';
import type { SignedManifest } from '../src/federation/manifest.ts';
import type { CoordinatorClient } from '../src/federation/protocol/client.ts';
import { hasCode } from '../src/federation/protocol/errors.ts';
import { committedKeyHash, jobKeyCommitment } from '../src/federation/key-commitment.ts';
import { usesJobKey, type SecureSumScheme } from '../src/federation/secure-sum.ts';
import type { PrivacyPlan } from '../src/federation/workload.ts';
import { manifestLedgerEntry } from './genesis.ts';

/** The job's secret key (CKKS; null for plaintext aggregation), generated before registration so the genesis entry can commit to it. */
export function generateJobKey(scheme: SecureSumScheme): Uint8Array | null {
  return usesJobKey(scheme.scheme) ? scheme.generateSecretKey() : null;
}

/**
 * Step 1: register the signed job with the owner-signed seq-0 ledger entry, which commits to the job
 * key and names the coordinator — one that proved it holds its key, and the pinned one if
 * `coordinatorKeyId` is given (a retry of the same registration is fine).
 */
export async function registerJob(
  client: CoordinatorClient,
  signed: SignedManifest,
  owner: Identity,
  privacy: PrivacyPlan | null,
  secretKey: Uint8Array | null,
  coordinatorKeyId?: string,
): Promise<PublicIdentity> {
  const { manifest } = signed;
  const commitment = secretKey ? jobKeyCommitment(manifest.jobId, secretKey) : null;
  const coordinator = await client.coordinatorIdentity({ pinnedKeyId: coordinatorKeyId });
  await client.createJob(signed, manifestLedgerEntry(manifest, owner, coordinator, privacy, commitment)).catch(async (err: unknown) => {
    // A retried registration that already went through: fine, if it is this very manifest.
    if (!hasCode(err, 'JOB_EXISTS')) throw err;
    const stored = await client.manifest(manifest.jobId);
    if (stored.signature !== signed.signature) throw err;
    // The ledger then commits to the key of that first registration; sealing another would be refused by every partner.
    if (commitment && committedKeyHash(manifest, await client.ledger(manifest.jobId)) !== commitment) {
      throw new FedmarkError(
        'KEY_COMMITMENT',
        `job ${manifest.jobId} is already registered with a commitment to another job key (an owner restarted without the job key it persisted — fedmark job run keeps it in its --out dir — cannot run the key ceremony again): resume with that --out, or register a new job id`,
      );
    }
  });
  return coordinator;
}

/**
 * Step 2: the key ceremony. The job's CKKS secret key (the one the genesis entry commits to) leaves
 * only sealed to each partner's box key (bound to the job id); the coordinator stores opaque blobs.
 */
export async function runKeyCeremony(
  client: CoordinatorClient,
  signed: SignedManifest,
  owner: Identity,
  secretKey: Uint8Array | null,
  log: Logger,
): Promise<void> {
  const { manifest } = signed;
  // A resumed owner whose ceremony already completed has nothing to upload (the keys are locked).
  if ((await client.status(manifest.jobId)).keysReady) return;
  if (!secretKey) {
    // Still upload a placeholder so the ceremony completes; it carries no key because there is none.
    for (const p of manifest.partners) {
      await client.putSealedKey(manifest.jobId, p.keyId, sealJobKey(manifest.jobId, new Uint8Array(0), Buffer.from(p.boxPublicKey, 'base64'), owner));
    }
    log.warn('INSECURE: plaintext aggregation — the coordinator can read every update');
    return;
  }
  for (const p of manifest.partners) {
    const sealed = sealJobKey(manifest.jobId, secretKey, Buffer.from(p.boxPublicKey, 'base64'), owner);
    await client.putSealedKey(manifest.jobId, p.keyId, sealed).catch(async (err: unknown) => {
      // The last upload can open round 1; a retry of it then finds the ceremony closed.
      if (!(hasCode(err, 'KEYS_LOCKED') && (await client.status(manifest.jobId)).keysReady)) throw err;
    });
  }
}
