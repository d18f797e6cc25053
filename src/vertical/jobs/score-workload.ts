/**
 * Batch scoring with a trained vertical model, as a job kind: the label holder asks every feature
 * holder about the rows it wants scored (all customers of an alignment, or a few), each feature holder
 * answers for the splits it owns (./../secureboost/scoring.ts), the label holder walks the trees and
 * keeps the scores. Two relay rounds: score-req (label holder → feature holders), score-resp (back).
 * Every party names the model part it committed to at the end of training (its hash), so all score
 * with the same model.
 */
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';
import type { JobManifest } from '../../federation/manifest.ts';
import { noUploads, type RelayOutcome, type RelayWorkload } from '../../federation/relay.ts';
import type { RoundPlan } from '../../federation/workload.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { keyIdSchema } from '../../privacy/ledger/entries.ts';
import { readEnvelope } from '../envelope.ts';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export const verticalScoreParamsSchema = z.strictObject({
  /** Label holder first; each party's committed model part (sha256 of its canonical JSON). */
  parties: z
    .array(z.strictObject({ role: z.enum(['label', 'features']), keyId: keyIdSchema, modelHash: hex64 }))
    .min(2)
    .max(8),
  /** The training job the model parts come from. */
  model: z.strictObject({ jobId: z.string().min(1) }),
  /** The PSI job aligning the customers to score. */
  alignment: z.strictObject({ psiJobId: z.string().min(1), orderDigest: hex64, size: z.number().int().min(1) }),
});
export type VerticalScoreParams = z.infer<typeof verticalScoreParamsSchema>;

const cache = new WeakMap<JobManifest, { params: VerticalScoreParams; specHash: string }>();

export function scoreJobOf(m: JobManifest): { params: VerticalScoreParams; specHash: string } {
  let c = cache.get(m);
  if (!c) {
    const r = verticalScoreParamsSchema.safeParse(m.workload.params);
    if (!r.success)
      throw new FedmarkError('MANIFEST_INVALID', `vertical scoring job ${m.jobId}: ${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message}`);
    c = { params: r.data, specHash: sha256Canonical({ protocol: 'fedmark-vertical-score-1', params: r.data }) };
    cache.set(m, c);
  }
  return c;
}

export const SCORE_KINDS = ['score-req', 'score-resp'] as const;

function plan(m: JobManifest, round: number): RoundPlan {
  const { params } = scoreJobOf(m);
  const label = params.parties[0].keyId;
  const features = params.parties.slice(1).map((p) => p.keyId);
  const req = round === 1;
  const maxBytes = (req ? 4 * params.alignment.size : 64 * Math.ceil(params.alignment.size / 8) * 256) + (1 << 20);
  return {
    kind: SCORE_KINDS[round - 1],
    stages: ['relay'],
    parts: [],
    selection: 'all',
    releases: [],
    updatesState: false,
    relay: { messages: features.map((f) => (req ? { from: label, to: f } : { from: f, to: label })), maxBytes, releases: [] },
  };
}

function validate(m: JobManifest): void {
  const { params } = scoreJobOf(m);
  const bad = (why: string) => new FedmarkError('MANIFEST_INVALID', `vertical scoring job ${m.jobId}: ${why}`);
  if (m.encryption.scheme !== 'none') throw bad('encryption must be "none"');
  if (params.parties[0].role !== 'label' || params.parties.slice(1).some((p) => p.role !== 'features'))
    throw bad('the label holder first, then feature holders');
  if (
    params.parties
      .map((p) => p.keyId)
      .sort()
      .join(',') !==
    m.partners
      .map((p) => p.keyId)
      .sort()
      .join(',')
  )
    throw bad("the parties must be the manifest's partners");
  if (m.rounds !== 2 || m.quorum !== m.partners.length) throw bad('a scoring job has 2 rounds, and every party in each');
  if (m.dp !== null) throw bad('scoring a trained model releases no new noised value: dp must be null');
}

function accept(
  m: JobManifest,
  message: { round: number; from: string; to: string; body: Uint8Array },
  ctx: Parameters<RelayWorkload['relay']['accept']>[2],
): RelayOutcome {
  const { specHash } = scoreJobOf(m);
  const { header } = readEnvelope(message.body, ctx.keyOf);
  if (
    header.jobId !== m.jobId ||
    header.specHash !== specHash ||
    header.round !== message.round ||
    header.kind !== SCORE_KINDS[message.round - 1] ||
    header.from !== message.from ||
    header.to !== message.to
  ) {
    throw new FedmarkError('VERTICAL_UNEXPECTED_MESSAGE', `round ${message.round} was given a message signed for another job, round, kind or recipient`);
  }
  return { replies: [], ledger: [] };
}

export const verticalScoreWorkload: RelayWorkload<{ specHash: string }, null> = {
  kind: 'vertical-score',
  sharedKey: false,
  validate,
  totalRounds: () => 2,
  plan,
  privacy: () => null,
  initialState: (m) => ({ specHash: scoreJobOf(m).specHash }),
  hash: (s) => sha256Canonical(s),
  ...noUploads('vertical-score'),
  relay: { accept },
};
