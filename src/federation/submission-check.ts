import { FedmarkError } from '../errors.ts';
import type { SecureSumScheme } from './secure-sum.ts';
import { maxEnvelopeBytes, type DecodedUpdate } from './update-codec.ts';
import type { RoundPlan } from './workload.ts';
import type { JobManifest } from './manifest.ts';
import { checkRecordOfUpload } from './submission-record.ts';
import { sha256Hex } from '../util/hash.ts';
import { wireLength } from './part-encoding.ts';

export interface ExpectedSubmission {
  jobId: string;
  round: number;
  attempt: number;
  /** Hash of the state the round started from (null: not pinned). */
  baseModelHash: string | null;
  /** The job's manifest and the uploading partner: its signed submission record must verify under the manifest's key for it. */
  manifest: JobManifest;
  partner: string;
}

function reject(code: string, message: string): FedmarkError {
  return new FedmarkError(code, message);
}

/**
 * Everything the coordinator (or simulate()) can check about an upload without a key: it is for this
 * job, round and attempt, of the round's kind, under the job's parameters, started from the current
 * state, with exactly the parts of the round's plan at their lengths, whose ciphertexts load.
 * Throws a FedmarkError naming the problem.
 */
export function checkSubmission(plan: RoundPlan, scheme: SecureSumScheme, expected: ExpectedSubmission, decoded: DecodedUpdate): void {
  const { meta, parts } = decoded;
  if (meta.jobId !== expected.jobId) throw reject('WRONG_JOB', `update is for job ${meta.jobId}, not ${expected.jobId}`);
  if (meta.round !== expected.round) throw reject('WRONG_ROUND', `update is for round ${meta.round}, the open round is ${expected.round}`);
  if (meta.attempt !== expected.attempt)
    throw reject('WRONG_ATTEMPT', `update is for attempt ${meta.attempt} of round ${meta.round}, the open attempt is ${expected.attempt}`);
  if (meta.kind !== plan.kind) throw reject('WRONG_KIND', `round ${meta.round} is a ${plan.kind} round, the update says ${meta.kind}`);
  if (meta.scheme !== scheme.scheme) throw reject('HE_PARAMS_MISMATCH', `update uses scheme ${meta.scheme}, the job uses ${scheme.scheme}`);
  if (meta.paramsId !== scheme.paramsId)
    throw reject('HE_PARAMS_MISMATCH', `update was encrypted under parameters ${meta.paramsId.slice(0, 16)}…, the job's are ${scheme.paramsId.slice(0, 16)}…`);
  if (expected.baseModelHash && meta.baseModelHash !== expected.baseModelHash) {
    throw reject(
      'STALE_MODEL',
      `update was trained from model ${meta.baseModelHash.slice(0, 12)}…, the current global model is ${expected.baseModelHash.slice(0, 12)}…`,
    );
  }
  if (plan.releases.length && !meta.dp) throw reject('DP_REPORT_MISSING', 'the job is differentially private but the update carries no DP report');
  if (meta.dp) {
    const labels = meta.dp.releases.map((r) => r.label);
    if (new Set(labels).size !== labels.length) throw reject('DP_REPORT_INVALID', `the DP report names a release twice (${labels.join(', ')})`);
    const missing = plan.releases.filter((r) => !labels.includes(r.label)).map((r) => r.label);
    if (missing.length)
      throw reject(
        'DP_REPORT_INVALID',
        `a ${plan.kind} round releases ${plan.releases.map((r) => r.label).join(', ')}; the DP report does not list ${missing.join(', ')}`,
      );
  }
  for (const spec of plan.parts) {
    const declared = meta.parts.find((p) => p.name === spec.name);
    if (!declared || !parts[spec.name]) throw reject('PART_MISSING', `update has no "${spec.name}" part`);
    if (declared.length !== spec.length) throw reject('PART_LENGTH', `"${spec.name}" part holds ${declared.length} values, the job needs ${spec.length}`);
    scheme.inspect(parts[spec.name], wireLength(spec, scheme.maxAbsInput));
  }
  if (meta.parts.length !== plan.parts.length) {
    throw reject(
      'PART_UNEXPECTED',
      `a ${plan.kind} round takes parts ${plan.parts.map((p) => p.name).join(', ')}, got ${meta.parts.map((p) => p.name).join(', ')}`,
    );
  }
  // What key holders will check the round's sums against: the partner's own signature over this upload.
  checkRecordOfUpload(expected.manifest, meta.record, {
    partner: expected.partner,
    round: meta.round,
    attempt: meta.attempt,
    kind: meta.kind,
    baseModelHash: meta.baseModelHash,
    parts: meta.parts.map((p) => ({ name: p.name, sha256: sha256Hex(parts[p.name]) })),
  });
}

/**
 * The largest upload a round's plan admits under the job's scheme: what the coordinator lets a
 * partner send for the round before it reads the body (anything larger cannot be a valid upload).
 */
export function maxSubmissionBytes(plan: RoundPlan, scheme: SecureSumScheme): number {
  return maxEnvelopeBytes(plan.parts.map((p) => scheme.uploadBytes(wireLength(p, scheme.maxAbsInput))));
}
