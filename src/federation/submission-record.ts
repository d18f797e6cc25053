import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import { canonicalBytes, sha256Canonical } from '../privacy/ledger/canonical.ts';
import { attestPayload, fromBase64, verifyAttestation, type LedgerSigner } from '../privacy/ledger/signing.ts';
import type { JobManifest } from './manifest.ts';
import type { RoundPlan } from './workload.ts';

/**
 * "The sum is the sum" (docs/THREAT_MODEL.md): every upload carries a record its partner signed —
 * job, round, attempt, kind and the sha256 of each encrypted part — and the coordinator publishes,
 * with each round's sums, the records of the uploads it added (`GET …/rounds/:round/contents`). A
 * key holder decrypts a published sum only if those records verify against the manifest's partner
 * keys, are for that round and attempt, come from at least a quorum of distinct partners, are as
 * many as the sum's declared summands, and include its own record whenever it uploaded to that
 * attempt. The records prove who submitted, not what was added: see the threat model for what this
 * stops and what only masking (issue 13) removes.
 */

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const keyId = z.string().regex(/^[0-9a-f]{32}$/);

export const submissionRecordSchema = z
  .object({
    jobId: z.string().min(1),
    round: z.number().int().positive(),
    attempt: z.number().int().nonnegative(),
    kind: z.string().min(1).max(64),
    partner: keyId,
    /** The state the upload was computed from. */
    baseModelHash: hex64,
    /** Each encrypted part, in the envelope's order. */
    parts: z
      .array(z.object({ name: z.string().min(1).max(32), sha256: hex64 }).strict())
      .min(1)
      .max(64),
    attestation: z.object({ keyId, sig: z.string().min(1) }).strict(),
  })
  .strict();
export type SubmissionRecord = z.infer<typeof submissionRecordSchema>;

/** What a round's published sums are said to hold: the attempt they were formed in and the records of the uploads added. */
export const roundContentsSchema = z
  .object({
    round: z.number().int().positive(),
    attempt: z.number().int().nonnegative(),
    records: z.array(submissionRecordSchema).max(10_000),
    /** Masked aggregation: the attempt's signed evidence (crypto/secagg SecaggEvidence), which key holders check in full before unmasking. */
    secagg: z.unknown().optional(),
  })
  .strict();
export type RoundContents = z.infer<typeof roundContentsSchema>;

export function signSubmissionRecord(fields: Omit<SubmissionRecord, 'attestation'>, signer: LedgerSigner): SubmissionRecord {
  if (signer.keyId !== fields.partner)
    throw new FedmarkError('RECORD_SIGNER', `a submission record of partner ${fields.partner} cannot be signed by key ${signer.keyId}`);
  return attestPayload(fields, signer) as SubmissionRecord;
}

/** Hash of a record (what a key holder compares its own record with). */
export function recordHash(r: SubmissionRecord): string {
  return sha256Canonical(r);
}

function partnerKey(manifest: JobManifest, partner: string): Uint8Array | null {
  const p = manifest.partners.find((x) => x.keyId === partner);
  return p ? fromBase64(p.signPublicKey) : null;
}

/** Throws RECORD_INVALID unless the record is `partner`'s signature over what the upload says it is. */
export function checkRecordOfUpload(
  manifest: JobManifest,
  record: SubmissionRecord,
  upload: { partner: string; round: number; attempt: number; kind: string; baseModelHash: string; parts: { name: string; sha256: string }[] },
): void {
  const bad = (why: string) => new FedmarkError('RECORD_INVALID', `the upload's submission record ${why}`);
  if (record.jobId !== manifest.jobId) throw bad(`is for job ${record.jobId}`);
  if (record.partner !== upload.partner) throw bad(`names partner ${record.partner}, the upload is ${upload.partner}'s`);
  if (record.round !== upload.round || record.attempt !== upload.attempt)
    throw bad(`is for round ${record.round} attempt ${record.attempt}, the upload for round ${upload.round} attempt ${upload.attempt}`);
  if (record.kind !== upload.kind || record.baseModelHash !== upload.baseModelHash) throw bad('names another round kind or base state than the upload');
  if (canonicalJson(record.parts) !== canonicalJson(upload.parts)) throw bad('does not list the hashes of the parts uploaded');
  const key = partnerKey(manifest, upload.partner);
  if (!key || record.attestation.keyId !== upload.partner || !verifyAttestation(record, key))
    throw bad("does not verify against the partner's key in the manifest");
}

const canonicalJson = (x: unknown) => Buffer.from(canonicalBytes(x)).toString('utf8');

/**
 * A key holder's check of a round's published contents before it decrypts any of its sums.
 * `summands`: what each part's blob declares (null when the scheme cannot say). `own`: this key
 * holder's record when it uploaded to the attempt the contents name (the coordinator acknowledged
 * it), else null. Throws AGGREGATE_UNVERIFIED naming the problem.
 */
export function verifyContents(
  manifest: JobManifest,
  plan: RoundPlan,
  round: number,
  contents: RoundContents,
  summands: readonly { part: string; summands: number | null }[],
  own: SubmissionRecord | null,
): void {
  const refuse = (why: string) => new FedmarkError('AGGREGATE_UNVERIFIED', `the published sums of round ${round} ${why}: refusing to decrypt them`);
  if (contents.round !== round) throw refuse(`come with the records of round ${contents.round}`);
  const seen = new Set<string>();
  for (const r of contents.records) {
    const key = partnerKey(manifest, r.partner);
    if (!key) throw refuse(`list a record of ${r.partner}, who is not a partner of the job`);
    if (r.attestation.keyId !== r.partner || !verifyAttestation(r, key)) throw refuse(`list a record of ${r.partner} that its key does not sign`);
    if (r.jobId !== manifest.jobId || r.round !== round || r.attempt !== contents.attempt) {
      throw refuse(`list ${r.partner}'s record of job ${r.jobId} round ${r.round} attempt ${r.attempt}, not of round ${round} attempt ${contents.attempt}`);
    }
    if (r.kind !== plan.kind || r.parts.map((p) => p.name).join() !== plan.parts.map((p) => p.name).join())
      throw refuse(`list ${r.partner}'s record of another kind of round (${r.kind})`);
    if (seen.has(r.partner)) throw refuse(`list ${r.partner}'s record twice`);
    seen.add(r.partner);
  }
  const quorum = Math.min(manifest.quorum, manifest.partners.length);
  if (seen.size < quorum) throw refuse(`are backed by signed records of ${seen.size} partner(s), fewer than the quorum of ${quorum}`);
  for (const s of summands) {
    if (s.summands !== null && s.summands !== contents.records.length)
      throw refuse(`declare ${s.summands} summand(s) in "${s.part}" but list ${contents.records.length} signed record(s)`);
  }
  if (own && !contents.records.some((r) => recordHash(r) === recordHash(own))) {
    throw refuse(`leave out this key holder's own upload to attempt ${contents.attempt}`);
  }
}
