import { FedmarkError } from '../errors.ts';
import type { JobManifest } from './manifest.ts';
import type { SecureSumScheme, VectorCipher } from './secure-sum.ts';
import type { RoundPlan } from './workload.ts';
import { verifyContents, type RoundContents, type SubmissionRecord } from './submission-record.ts';
import { decodePart, wireLength } from './part-encoding.ts';

/**
 * Where a round is aggregated, for every workload and both drivers (the coordinator's engine and
 * simulate()): one partner's upload is added, part by part, into the round's running sums. The
 * scheme (CKKS today) adds ciphertexts; nothing here can read them.
 */
export function accumulate(
  scheme: SecureSumScheme,
  plan: RoundPlan,
  sums: Readonly<Record<string, Uint8Array | null | undefined>>,
  parts: Readonly<Record<string, Uint8Array>>,
): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const spec of plan.parts) {
    const part = parts[spec.name];
    if (!part) throw new FedmarkError('PART_MISSING', `update has no "${spec.name}" part`);
    const sum = scheme.sum(sums[spec.name] ?? null);
    try {
      sum.add(part);
      out[spec.name] = sum.toBytes();
    } finally {
      sum.dispose();
    }
  }
  return out;
}

/**
 * A "sum" of fewer partners than the quorum could be one partner's own vector passed off as an
 * aggregate: every key holder refuses to decrypt it, whichever scheme summed it (null: the scheme
 * cannot say, and the signed contents decide).
 */
export function requireQuorumOfSummands(manifest: JobManifest, round: number, summands: number | null): void {
  const min = Math.min(manifest.quorum, manifest.partners.length);
  if (summands !== null && summands < min) {
    throw new FedmarkError(
      'AGGREGATE_TOO_FEW',
      `the published sum of round ${round} holds ${summands} partner vector(s), fewer than the quorum of ${min}: refusing to decrypt it`,
    );
  }
}

/**
 * A key holder opening a round's published sums. A "sum" of fewer partners than the quorum could be
 * one partner's own vector passed off as an aggregate by a deviating coordinator: key holders refuse
 * to decrypt it, and anything whose signed records (`contents`) do not back what the sum claims to
 * hold (submission-record.ts `verifyContents`). `own` is this key holder's record when it uploaded
 * to the attempt the contents name. `use: 'state'` opens only what applying the round needs. Every
 * decrypted value is put on the release grid.
 */
export function openSums(
  scheme: SecureSumScheme,
  cipher: VectorCipher,
  manifest: JobManifest,
  plan: RoundPlan,
  round: number,
  blobs: Readonly<Record<string, Uint8Array>>,
  contents: RoundContents,
  own: SubmissionRecord | null,
  use: 'state' | 'all' = 'all',
): Record<string, Float64Array> {
  const opened = plan.parts.filter((spec) => use === 'all' || spec.use === 'state');
  const summands = opened.map((spec) => {
    const blob = blobs[spec.name];
    if (!blob) throw new FedmarkError('AGGREGATE_PART_MISSING', `the published sums of round ${round} have no "${spec.name}" part`);
    const n = scheme.summands(blob, wireLength(spec, scheme.maxAbsInput));
    requireQuorumOfSummands(manifest, round, n);
    return { part: spec.name, summands: n };
  });
  verifyContents(manifest, plan, round, contents, summands, own);
  const out: Record<string, Float64Array> = {};
  for (const spec of opened) out[spec.name] = decodePart(spec, cipher.decrypt(blobs[spec.name], wireLength(spec, scheme.maxAbsInput)), scheme.maxAbsInput);
  return out;
}

export { onGrid } from './part-encoding.ts';
