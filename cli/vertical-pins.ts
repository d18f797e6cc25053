import type { Command } from 'commander';
import { FedmarkError } from '../src/errors.ts';
import type { JobManifest } from '../src/federation/manifest.ts';
import { loadClientTls, trustCoordinator } from '../src/transport/tls-client.ts';
import { keyIdOption } from './node-commands.ts';

/**
 * The trust options of a vertical party's node (`fedmark psi party`, `fedmark vertical party`,
 * `fedmark vertical score-party`), as for `fedmark partner`: the coordinator's URL and certificate,
 * the job owner it works for and the coordinator it works with.
 */
export function partyTrustOptions(cmd: Command): Command {
  return cmd
    .option(
      '--owner-key-id <keyid>',
      "work only for this job owner's key (or list trusted owners in the policy's trustedOwnerKeyIds; one of the two is required)",
    )
    .option('--coordinator-key-id <keyid>', 'work only with the coordinator that proves it holds this key (its `fedmark coordinator` key id)')
    .option('--ca <pem>', "trust the coordinator's certificate only if this CA issued it (instead of the system store)")
    .option('--pin-sha256 <hex>', "trust the coordinator's certificate only if its SHA-256 fingerprint is this (works for self-signed)");
}

export interface PartyTrust {
  coordinatorUrl: string;
  ownerKeyId?: string;
  coordinatorKeyId?: string;
  /** Refusal reasons from the policy's trusted owners (none when the policy lists none). */
  reviewOwner: (m: JobManifest) => string[];
}

/**
 * Checks a party's trust options before anything else: plain HTTP only on loopback, the CA file and
 * pin, and an owner pinned by `--owner-key-id` or by the policy's `trustedOwnerKeyIds` (a node that
 * trusts neither would work for whoever registers the job id first).
 */
export function partyTrust(
  o: { coordinator: string; ownerKeyId?: string; coordinatorKeyId?: string; ca?: string; pinSha256?: string; job: string },
  policy?: { trustedOwnerKeyIds?: string[] },
  policyFile?: string,
): PartyTrust {
  const coordinatorUrl = o.coordinator.replace(/\/$/, '');
  trustCoordinator(coordinatorUrl, loadClientTls({ caFile: o.ca, pinSha256: o.pinSha256 }));
  const ownerKeyId = o.ownerKeyId === undefined ? undefined : keyIdOption('--owner-key-id', o.ownerKeyId);
  const coordinatorKeyId = o.coordinatorKeyId === undefined ? undefined : keyIdOption('--coordinator-key-id', o.coordinatorKeyId);
  const trusted = policy?.trustedOwnerKeyIds;
  if (!ownerKeyId && !trusted) {
    throw new FedmarkError(
      'NO_TRUSTED_OWNER',
      `this node would work for whoever registers job "${o.job}" first — pin its owner with --owner-key-id KEYID${policyFile ? `, or list trusted owners in ${policyFile}'s "trustedOwnerKeyIds"` : ''}`,
    );
  }
  return {
    coordinatorUrl,
    ownerKeyId,
    coordinatorKeyId,
    reviewOwner: (m) =>
      trusted && !trusted.includes(m.owner.keyId)
        ? [`the job is signed by owner ${m.owner.keyId}, who is not among this partner's trusted owners (${trusted.join(', ')})`]
        : [],
  };
}

/** `--coordinator-key-id` of an owner command (psi run, vertical train, vertical score). */
export function ownerCoordinatorPin(v: string | undefined): string | undefined {
  return v === undefined ? undefined : keyIdOption('--coordinator-key-id', v);
}
