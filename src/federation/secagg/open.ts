import { decodeSums, unmaskAggregate, type SecaggEvidence } from '../../crypto/secagg/index.ts';
import { FedmarkError } from '../../errors.ts';
import type { JobManifest } from '../manifest.ts';
import { requireQuorumOfSummands } from '../aggregation.ts';
import { onGrid } from '../part-encoding.ts';
import type { SecureSumScheme, VectorCipher } from '../secure-sum.ts';
import { verifyContents, type RoundContents, type SubmissionRecord } from '../submission-record.ts';
import type { RoundPlan } from '../workload.ts';
import { attemptConfig, MASKED_PART, maskedWirePlan, roundEncoding } from './round-config.ts';

/**
 * A key holder opening a masked round (aggregation.ts openSums for masked aggregation): the same
 * refusals — fewer summands than the quorum, contents the partner-signed records do not back, this
 * holder's own acknowledged upload missing — and then the attempt's evidence checked end to end
 * (crypto/secagg/unmask.ts: every signature, the survivor set every responder signed, the recovered
 * secrets against their commitments), the masks removed, the exact sums decoded and put on their
 * parts' release grids. Each survivor's signed masked commitment must name the very blob its
 * submission record names: the sum holds exactly the uploads the records list.
 */
export async function openMaskedSums(
  scheme: SecureSumScheme,
  cipher: VectorCipher,
  coordinatorSignPublicKey: string,
  manifest: JobManifest,
  plan: RoundPlan,
  round: number,
  blobs: Readonly<Record<string, Uint8Array>>,
  contents: RoundContents,
  own: SubmissionRecord | null,
  use: 'state' | 'all',
): Promise<Record<string, Float64Array>> {
  const masking = scheme.masking;
  if (!masking) throw new FedmarkError('NOT_SECAGG', `scheme ${scheme.scheme} does not mask`);
  const refuse = (why: string) => new FedmarkError('AGGREGATE_UNVERIFIED', `the published sums of round ${round} ${why}: refusing to decrypt them`);
  const encoding = roundEncoding(manifest, plan, masking.plainModulus);
  const wire = maskedWirePlan(plan, encoding);
  const blob = blobs[MASKED_PART];
  if (!blob) throw new FedmarkError('AGGREGATE_PART_MISSING', `the published sums of round ${round} have no "${MASKED_PART}" part`);
  const summands = scheme.summands(blob, encoding.totalSlots);
  requireQuorumOfSummands(manifest, round, summands);
  verifyContents(manifest, wire, round, contents, [{ part: MASKED_PART, summands }], own);
  const evidence = contents.secagg as SecaggEvidence | undefined;
  if (!evidence || typeof evidence !== 'object') throw refuse('come without the secure-aggregation evidence of their attempt');
  const selected = (evidence.roster as { body?: { config?: { selected?: unknown } } } | undefined)?.body?.config?.selected;
  if (!Array.isArray(selected) || selected.some((x) => typeof x !== 'string')) throw refuse('come with a roster that names no selected partners');
  // Our own config for the attempt: the roster must carry exactly it (unmaskAggregate checks its id).
  const config = attemptConfig(manifest, plan, masking, round, contents.attempt, selected as string[]);
  const residues = cipher.decrypt(blob, encoding.totalSlots);
  const result = await unmaskAggregate({
    config,
    partners: manifest.partners,
    coordinatorSignPublicKey,
    evidence,
    residues,
    sumSummands: summands ?? undefined,
  });
  residues.fill(0);
  const recorded = new Map(contents.records.map((r) => [r.partner, r.parts[0]?.sha256]));
  if (result.survivors.length !== recorded.size || result.survivors.some((u) => !recorded.has(u))) {
    throw refuse(`hold the masked uploads of ${result.survivors.length} partner(s) but list ${recorded.size} signed record(s)`);
  }
  for (const m of evidence.masked) {
    if (recorded.get(m.body.from) !== m.body.blobSha256) throw refuse(`list a record of ${m.body.from} for another blob than the one it masked`);
  }
  const sums = decodeSums(encoding, result.residues, result.survivors.length);
  result.residues.fill(0);
  const out: Record<string, Float64Array> = {};
  for (const spec of plan.parts) if (use === 'all' || spec.use === 'state') out[spec.name] = onGrid(spec, sums[spec.name]);
  return out;
}
