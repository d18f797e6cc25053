/**
 * What a node can check about the coordinator it talks to, instead of trusting its answers by
 * shape. Three answers carry proofs:
 *
 * - the identity (`GET /v1/identity?challenge=…`): the coordinator signs the node's fresh challenge
 *   with the key it names, so a server that merely *copies* a coordinator's public identity cannot
 *   pass for it (`verifyIdentityAnswer`, with an optional pinned key id);
 * - the job's ledger genesis (`GET …/manifest` carries the owner-signed seq-0 entry): a node computes
 *   the manifest-entry hash it accepts itself, and checks that the owner named this coordinator
 *   (`checkGenesisEntry`) — the same rules the coordinator applies when a job is registered;
 * - the ledger head (`GET …/ledger/head`): a head pointer signed by the coordinator's key
 *   (`verifyCoordinatorHead`), so a head a partner witnesses is the coordinator's own statement,
 *   which it cannot later disown, and which an impostor cannot produce.
 *
 * The job status is not signed: nodes treat it as a hint and decide from their own state.
 */
import { randomBytes } from 'node:crypto';
import { keyId as keyIdOf, parsePublicIdentity, signBytes, verifyBytes, type Identity, type PublicIdentity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import type { JobManifest } from '../manifest.ts';
import { LEDGER_SCHEMA_VERSION, parsePayload, type LedgerEntry } from '../../privacy/ledger/entries.ts';
import { verifyHeadSignature, type HeadPointer } from '../../privacy/ledger/head.ts';
import { entryHash, verifyEntrySignature } from '../../privacy/ledger/signing.ts';
import { verifyLedger } from '../../privacy/ledger/verify.ts';

const IDENTITY_PROOF_TAG = 'FEDMARK-COORDINATOR-IDENTITY-1';
export const CHALLENGE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

/** A fresh challenge for `GET /v1/identity`. */
export function identityChallenge(): string {
  return randomBytes(24).toString('base64url');
}

function proofBytes(keyId: string, challenge: string): Uint8Array {
  return new TextEncoder().encode(`${IDENTITY_PROOF_TAG}\n${keyId}\n${challenge}`);
}

/** The coordinator's side: its public identity and, given a challenge, its signature over it. */
export function proveIdentity(
  identity: Identity,
  pub: PublicIdentity,
  challenge: string | undefined,
): PublicIdentity & { proof?: { challenge: string; signature: string } } {
  if (challenge === undefined) return pub;
  return { ...pub, proof: { challenge, signature: signBytes(proofBytes(pub.keyId, challenge), identity) } };
}

function untrusted(message: string): FedmarkError {
  return new FedmarkError('COORDINATOR_UNTRUSTED', message);
}

/**
 * The node's side: the answer must name a well-formed identity, prove possession of its key over
 * this very challenge, and — when the node pinned one — be the pinned key.
 */
export function verifyIdentityAnswer(
  answer: { proof?: { challenge: string; signature: string } } & Record<string, unknown>,
  challenge: string,
  pinnedKeyId?: string,
): PublicIdentity {
  const { proof, ...rest } = answer;
  let pub: PublicIdentity;
  try {
    pub = parsePublicIdentity(rest);
  } catch (err) {
    throw untrusted(`the coordinator's identity is malformed: ${(err as Error).message}`);
  }
  if (!proof || proof.challenge !== challenge || !verifyBytes(proofBytes(pub.keyId, challenge), proof.signature, pub.signPublicKey)) {
    throw untrusted(`the coordinator claims key ${pub.keyId} but did not prove it holds it (no valid signature over this node's challenge)`);
  }
  if (pinnedKeyId !== undefined && pub.keyId !== pinnedKeyId) {
    throw untrusted(`the coordinator's key is ${pub.keyId}, not the pinned ${pinnedKeyId}`);
  }
  return pub;
}

/**
 * Problems with a job's seq-0 ledger entry (null: none): it must be the `job.manifest` entry at seq
 * 0, under the current ledger schema, authored and signed by the manifest's owner, describe this
 * manifest (job, owner, partners and their keys, rounds) and name `coordinatorKeyId` as coordinator.
 */
export function genesisProblem(m: JobManifest, genesis: LedgerEntry, coordinatorKeyId: string): string | null {
  if (genesis.type !== 'job.manifest' || genesis.seq !== 0) return 'must be the job.manifest entry at seq 0';
  if (genesis.schemaVersion !== LEDGER_SCHEMA_VERSION)
    return `is written under ledger schema ${genesis.schemaVersion}; this build writes version ${LEDGER_SCHEMA_VERSION}`;
  const parsed = parsePayload('job.manifest', genesis.payload);
  if (!parsed.success) return `payload invalid at ${parsed.error.issues[0]?.path.join('.') || '(root)'}: ${parsed.error.issues[0]?.message}`;
  const p = parsed.data;
  if (p.jobId !== m.jobId) return `names job ${p.jobId}, not ${m.jobId}`;
  if (genesis.author !== m.owner.keyId || p.owner.keyId !== m.owner.keyId) return "is not authored by the manifest's owner";
  if (p.coordinator.keyId !== coordinatorKeyId) return `names coordinator ${p.coordinator.keyId}, this coordinator is ${coordinatorKeyId}`;
  const want = m.partners
    .map((x) => `${x.keyId}:${x.signPublicKey}`)
    .sort()
    .join(',');
  const got = p.partners
    .map((x) => `${x.keyId}:${x.signPublicKey}`)
    .sort()
    .join(',');
  if (want !== got) return "partners differ from the manifest's";
  if (p.rounds !== m.rounds) return `rounds ${p.rounds} differ from the manifest's ${m.rounds}`;
  return null;
}

/**
 * A node's check of the genesis a coordinator serves: `genesisProblem` plus the owner's signature on
 * the entry. Returns the entry's hash — the manifest hash the node names when it answers the job,
 * computed here rather than taken from the coordinator.
 */
export function checkGenesisEntry(m: JobManifest, genesis: LedgerEntry, coordinatorKeyId: string): string {
  const problem = genesisProblem(m, genesis, coordinatorKeyId);
  if (problem) throw new FedmarkError('GENESIS_INVALID', `job ${m.jobId}: the ledger's manifest entry ${problem}`);
  const ownerKey = new Uint8Array(Buffer.from(m.owner.signPublicKey, 'base64'));
  if (keyIdOf(ownerKey) !== genesis.author || !verifyEntrySignature(genesis, ownerKey)) {
    throw new FedmarkError('GENESIS_INVALID', `job ${m.jobId}: the ledger's manifest entry is not signed by the owner ${m.owner.keyId}`);
  }
  return entryHash(genesis);
}

/**
 * A head pointer the coordinator signed: it must verify under the coordinator's key and name it as
 * author. With `ledger` (the job ledger's entries as served) the head must also be the hash of the
 * entry at its seq in a valid chain that starts at `anchor` (the genesis the node checked).
 */
export function verifyCoordinatorHead(
  head: HeadPointer,
  coordinator: { keyId: string; signPublicKey: string },
  check?: { anchor: string; ledger: LedgerEntry[] },
): HeadPointer {
  const key = new Uint8Array(Buffer.from(coordinator.signPublicKey, 'base64'));
  if (head.author !== coordinator.keyId || !verifyHeadSignature(head, key)) {
    throw untrusted(`the ledger head (seq ${head.seq}) is not signed by the coordinator's key ${coordinator.keyId}`);
  }
  if (check) {
    const entries = check.ledger;
    if (entries.length === 0 || entryHash(entries[0]) !== check.anchor)
      throw untrusted("the job ledger the coordinator serves does not start with the job's manifest entry");
    const v = verifyLedger(entries);
    const broken = v.findings.find((f) => f.severity === 'error' && f.code !== 'JOB_NOT_FINALIZED');
    if (broken) throw untrusted(`the job ledger the coordinator serves is not intact: ${broken.message}`);
    const at = entries.find((e) => e.seq === head.seq);
    if (!at || entryHash(at) !== head.hash)
      throw untrusted(`the signed ledger head (seq ${head.seq}) is not an entry of the job ledger the coordinator serves`);
  }
  return head;
}
