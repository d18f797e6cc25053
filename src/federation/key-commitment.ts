import { FedmarkError } from '../errors.ts';
import { parsePayload, type LedgerEntry } from '../privacy/ledger/entries.ts';
import { parseLedgerBytes } from '../privacy/ledger/reader.ts';
import { fromBase64, verifyEntrySignature } from '../privacy/ledger/signing.ts';
import { sha256Hex } from '../util/hash.ts';
import type { JobManifest } from './manifest.ts';

/**
 * The owner's commitment to the job key (docs/CRYPTO.md, "key commitment"). The owner generates the
 * key before it registers the job and writes this hash into the job ledger's seq-0 entry, which it
 * signs and every key holder reads through the same hash chain. A partner that unseals a key checks
 * it against the commitment before it encrypts anything, so an owner (or a relaying coordinator)
 * that hands one partner another key than the rest — splitting the key holders, so that partner's
 * update opens under a key only the owner holds — is refused. The hash is domain-separated and
 * bound to the job id; the key has full entropy, so its hash reveals nothing about it.
 */
export function jobKeyCommitment(jobId: string, secretKey: Uint8Array): string {
  const prefix = new TextEncoder().encode(`fedmark-job-key-commitment/v1\0${jobId}\0`);
  const framed = new Uint8Array(prefix.length + secretKey.length);
  framed.set(prefix, 0);
  framed.set(secretKey, prefix.length);
  return sha256Hex(framed);
}

/** The commitment in the job ledger's seq-0 entry, once that entry verifies as the manifest owner's signature for this job. */
export function committedKeyHash(manifest: JobManifest, ledgerBytes: Uint8Array): string {
  const bad = (why: string) =>
    new FedmarkError('KEY_COMMITMENT', `the job ledger's first entry ${why}: cannot check the job key against the owner's commitment`);
  const genesis: LedgerEntry | undefined = parseLedgerBytes(ledgerBytes).entries[0];
  if (!genesis || genesis.seq !== 0 || genesis.type !== 'job.manifest') throw bad('is not the job.manifest entry at seq 0');
  if (genesis.author !== manifest.owner.keyId || !verifyEntrySignature(genesis, fromBase64(manifest.owner.signPublicKey)))
    throw bad("is not signed by the job's owner");
  const parsed = parsePayload('job.manifest', genesis.payload, genesis.schemaVersion);
  if (!parsed.success || parsed.data.jobId !== manifest.jobId) throw bad(`is not a manifest entry of job ${manifest.jobId}`);
  const { keyCommitment } = parsed.data as { keyCommitment?: string | null };
  if (!keyCommitment) throw bad('commits to no job key');
  return keyCommitment;
}

/** Throws KEY_COMMITMENT unless `secretKey` is the key the owner committed to. */
export function checkJobKey(manifest: JobManifest, ledgerBytes: Uint8Array, secretKey: Uint8Array): void {
  const committed = committedKeyHash(manifest, ledgerBytes);
  const got = jobKeyCommitment(manifest.jobId, secretKey);
  if (got !== committed) {
    throw new FedmarkError(
      'KEY_COMMITMENT',
      `the job key sealed to this partner (commitment ${got.slice(0, 16)}…) is not the key the owner committed to in the job ledger (${committed.slice(0, 16)}…): refusing to encrypt under it`,
    );
  }
}
