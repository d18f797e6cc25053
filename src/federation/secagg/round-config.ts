import { createCipheriv, createHash } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';
import { makeSecaggConfig, planEncoding, type EncodingPlan, type PartBound, type SecaggConfig } from '../../crypto/secagg/index.ts';
import type { JobManifest } from '../manifest.ts';
import { jobLimits } from '../part-encoding.ts';
import type { PartSpec, RoundPlan } from '../workload.ts';
import type { SecaggSpec } from './spec.ts';

/** The one part a masked upload carries: every part of the round's plan, encoded into one vector of residues mod t. */
export const MASKED_PART = 'masked';

export function secaggSpecOf(m: JobManifest): SecaggSpec | null {
  return m.encryption.scheme === 'secagg-bfv' ? m.encryption : null;
}

export function requireSecaggSpec(m: JobManifest): SecaggSpec {
  const spec = secaggSpecOf(m);
  if (!spec) throw new FedmarkError('NOT_SECAGG', `job ${m.jobId} does not use masked aggregation (encryption ${m.encryption.scheme})`);
  return spec;
}

/**
 * The per-partner bound of a part, from the manifest: its declared bound, or — for a part the
 * workload cannot bound (row-weighted sums) — the declared largest partner times the declared
 * largest per-row change (part-encoding.ts jobLimits). A value beyond it is not uploaded.
 */
export function maskedBound(m: JobManifest, spec: PartSpec): number {
  if (spec.bound !== null) return spec.bound;
  const { maxRowsPerPartner, maxAbsUpdate } = jobLimits(m);
  return maxRowsPerPartner * maxAbsUpdate;
}

/**
 * Every part is encoded as a real (stochastic rounding at 2^-f): noisy counts are not integers. A
 * count part needs only integer resolution (f ≥ 0; the encoder takes as many fraction bits as one
 * limb holds), as under CKKS where a scaled count part sums at resolution ≈ 1; a real part needs
 * 2^-minFractionBits. Decoded sums are put on their part's release grid (counts to integers).
 */
function partBounds(m: JobManifest, plan: RoundPlan, spec: SecaggSpec): PartBound[] {
  return plan.parts.map((p) => ({
    name: p.name,
    length: p.length,
    kind: 'real',
    maxAbs: maskedBound(m, p),
    minFractionBits: p.domain === 'count' ? 0 : spec.minFractionBits,
  }));
}

/** The round's encoding plan: provisioned for every partner the manifest names, so it is the same whoever is selected. */
export function roundEncoding(m: JobManifest, plan: RoundPlan, plainModulus: number): EncodingPlan {
  const spec = requireSecaggSpec(m);
  return planEncoding(partBounds(m, plan, spec), plainModulus, m.partners.length);
}

/** What the coordinator checks uploads against: the plan with its parts replaced by the one masked vector. */
export function maskedWirePlan(plan: RoundPlan, encoding: EncodingPlan): RoundPlan {
  return { ...plan, parts: [{ name: MASKED_PART, length: encoding.totalSlots, domain: 'count', bound: null, use: 'state' }] };
}

/**
 * The secure-aggregation config of one attempt: from the manifest, the round's plan and the selected
 * partners alone, so the coordinator and every partner derive the same object (its hash binds every
 * message, share and mask of the attempt).
 */
export function attemptConfig(
  m: JobManifest,
  plan: RoundPlan,
  he: { paramsId: string; plainModulus: number; maxSummands: number },
  round: number,
  attempt: number,
  selected: readonly string[],
): SecaggConfig {
  const spec = requireSecaggSpec(m);
  const n = selected.length;
  return makeSecaggConfig({
    jobId: m.jobId,
    round,
    attempt,
    selected: [...selected],
    he,
    encoding: roundEncoding(m, plan, he.plainModulus),
    thresholdFraction: spec.thresholdFraction,
    // n − 1 neighbours is the complete graph (Bonawitz); fewer, SecAgg+'s sparse one.
    degree: n <= spec.completeGraphMaxPartners ? n - 1 : spec.sparseDegree,
  });
}

/**
 * The random bits of one upload's stochastic rounding (crypto/secagg/encoding.ts): AES-256-CTR keyed
 * by a hash of the manifest's seed, the job, the partner, the round and the attempt. The rounding
 * needs unbiased bits independent of the data, not secret ones (the values it rounds are already DP
 * releases, and the masks hide them); seeding them makes a masked run replay like a CKKS run does
 * (its decryptions are rounded to the release grid): the same uploads, hence the same final model,
 * after any crash.
 */
export function roundingRandom(m: JobManifest, keyId: string, round: number, attempt: number): (n: number) => Uint8Array {
  const key = createHash('sha256').update(`fedmark-secagg-1/rounding\n${m.seed}\n${m.jobId}\n${keyId}\n${round}\n${attempt}`).digest();
  const stream = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return (n) => new Uint8Array(stream.update(Buffer.alloc(n)));
}
