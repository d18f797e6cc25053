import { FedmarkError } from '../errors.ts';
import { createRng, deriveSeed, shuffleInPlace } from '../util/rng.ts';
import { parameterCount } from '../model/params.ts';
import { histogramLayout } from '../metrics/histogram.ts';
import type { JobManifest } from './manifest.ts';
import type { SecureSumScheme } from './secure-sum.ts';
import type { DecodedUpdate } from './update-codec.ts';

/**
 * Round rules shared by the coordinator and the in-process simulation. They hold no I/O: the
 * coordinator wraps them in SQLite transactions and HTTP, the simulation calls them directly.
 */

export type RoundKind = 'train' | 'evaluate';

/** Rounds 1..R train; round R+1 only evaluates the final model. */
export function roundKind(manifest: JobManifest, round: number): RoundKind {
  if (round < 1 || round > manifest.rounds + 1) throw new FedmarkError('ROUND_OUT_OF_RANGE', `round ${round} is outside 1..${manifest.rounds + 1}`);
  return round <= manifest.rounds ? 'train' : 'evaluate';
}

export function totalRounds(manifest: JobManifest): number {
  return manifest.rounds + 1;
}

/** Seeded choice of partnersPerRound among the eligible partners (all of them for evaluation). */
export function selectPartners(manifest: JobManifest, round: number, attempt: number, eligible: string[]): string[] {
  const sorted = [...eligible].sort();
  if (roundKind(manifest, round) === 'evaluate' || sorted.length <= manifest.partnersPerRound) return sorted;
  const rng = createRng(deriveSeed(manifest.seed, 'select', round, attempt));
  shuffleInPlace(sorted, rng);
  return sorted.slice(0, manifest.partnersPerRound).sort();
}

export interface ExpectedSubmission {
  jobId: string;
  round: number;
  attempt: number;
  baseModelHash: string | null;
}

export function vectorLengths(manifest: JobManifest): { update: number; evaluation: number } {
  return {
    update: parameterCount(manifest.model, manifest.dataset.featureNames.length) + 1,
    evaluation: histogramLayout(manifest.evaluation.segments, manifest.evaluation.bins).length,
  };
}

function reject(code: string, message: string): FedmarkError {
  return new FedmarkError(code, message);
}

/**
 * Everything the coordinator can check about a submission without a key: it is for this job,
 * round and attempt, of the right kind, under the job's parameters, with vectors of the right length
 * whose ciphertexts load. Throws a FedmarkError naming the problem.
 */
export function checkSubmission(manifest: JobManifest, scheme: SecureSumScheme, expected: ExpectedSubmission, decoded: DecodedUpdate): void {
  const { meta, parts } = decoded;
  if (meta.jobId !== expected.jobId) throw reject('WRONG_JOB', `update is for job ${meta.jobId}, not ${expected.jobId}`);
  if (meta.round !== expected.round) throw reject('WRONG_ROUND', `update is for round ${meta.round}, the open round is ${expected.round}`);
  if (meta.attempt !== expected.attempt) throw reject('WRONG_ATTEMPT', `update is for attempt ${meta.attempt} of round ${meta.round}, the open attempt is ${expected.attempt}`);
  const kind = roundKind(manifest, meta.round);
  if (meta.kind !== kind) throw reject('WRONG_KIND', `round ${meta.round} is a ${kind} round, the update says ${meta.kind}`);
  if (meta.scheme !== scheme.scheme) throw reject('HE_PARAMS_MISMATCH', `update uses scheme ${meta.scheme}, the job uses ${scheme.scheme}`);
  if (meta.paramsId !== scheme.paramsId) throw reject('HE_PARAMS_MISMATCH', `update was encrypted under parameters ${meta.paramsId.slice(0, 16)}…, the job's are ${scheme.paramsId.slice(0, 16)}…`);
  if (expected.baseModelHash && meta.baseModelHash !== expected.baseModelHash) {
    throw reject('STALE_MODEL', `update was trained from model ${meta.baseModelHash.slice(0, 12)}…, the current global model is ${expected.baseModelHash.slice(0, 12)}…`);
  }
  if (kind === 'train' && manifest.dp && !meta.dp) throw reject('DP_REPORT_MISSING', 'the job is differentially private but the update carries no DP report');
  const lengths = vectorLengths(manifest);
  const want: ('update' | 'evaluation')[] = kind === 'train' ? ['update', 'evaluation'] : ['evaluation'];
  for (const name of want) {
    const declared = meta.parts.find((p) => p.name === name);
    if (!declared || !parts[name]) throw reject('PART_MISSING', `update has no "${name}" part`);
    if (declared.length !== lengths[name]) throw reject('PART_LENGTH', `"${name}" part holds ${declared.length} values, the job needs ${lengths[name]}`);
    scheme.inspect(parts[name], lengths[name]);
  }
  if (meta.parts.length !== want.length) throw reject('PART_UNEXPECTED', `a ${kind} round takes parts ${want.join(', ')}, got ${meta.parts.map((p) => p.name).join(', ')}`);
}
