/**
 * Vertical SecureBoost as a job kind: the round schedule of ../secureboost/schedule.ts as relay rounds
 * of the federation, between the label holder (params.parties[0]) and the feature holders. The
 * coordinator relays sealed envelopes it cannot open (it checks their signed headers: job, spec, round,
 * kind, sender, recipient) and records, before the label holder's messages of a round, the label DP
 * releases the label holder attests it charged.
 */
import { FedmarkError } from '../../errors.ts';
import type { JobManifest } from '../../federation/manifest.ts';
import { noUploads, type RelayOutcome, type RelayWorkload } from '../../federation/relay.ts';
import type { PrivacyPlan, RoundPlan } from '../../federation/workload.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { readEnvelope } from '../envelope.ts';
import { labelDpPlan, releaseOf, type LabelDpPlan } from '../secureboost/dp.ts';
import { parseSecureBoostParams, specHashOf, totalColumns, type SecureBoostParams } from '../secureboost/params.ts';
import { stepAt, totalRounds } from '../secureboost/schedule.ts';

const cache = new WeakMap<JobManifest, { params: SecureBoostParams; dp: LabelDpPlan | null; specHash: string }>();

export function secureBoostOf(m: JobManifest): { params: SecureBoostParams; dp: LabelDpPlan | null; specHash: string } {
  let c = cache.get(m);
  if (!c) {
    const params = parseSecureBoostParams(m.workload.params);
    c = { params, dp: labelDpPlan(params, totalColumns(params)), specHash: specHashOf(params) };
    cache.set(m, c);
  }
  return c;
}

/** Upper bounds of a message's size from the manifest alone (every column has ≤ 64 bins, so ≥ 64 rows share a ciphertext). */
function maxBytes(p: SecureBoostParams, kind: string): number {
  const N = p.he.polyModulusDegree;
  const bits = p.he.coeffModulusBits.reduce((a, b) => a + b, 0);
  const train = Math.ceil(p.alignment.size * (1 - p.testFraction)) + 1;
  const seeded = (N * bits) / 8 + 128;
  const result = (2 * N * p.he.coeffModulusBits[0]) / 8 + 128;
  const slack = 1 << 20;
  const columns = Math.max(...p.parties.map((x) => (x.role === 'features' ? x.columns.length : 0)));
  switch (kind) {
    case 'hist-req':
      return Math.ceil(train / 64) * seeded + (2 * N * bits) / 8 + 8 * train + slack;
    case 'hist-resp':
      return 2 ** Math.max(0, p.depth - 1) * columns * result + slack;
    case 'split-resp':
      return 2 ** (p.depth - 1) * Math.ceil(train / 8) + slack;
    case 'score-req':
      return 4 * p.alignment.size + slack;
    case 'score-resp':
      return p.trees * 2 ** p.depth * (8 + Math.ceil(p.alignment.size / 8)) + slack;
    default:
      return slack;
  }
}

function plan(m: JobManifest, round: number): RoundPlan {
  const { params: p, dp } = secureBoostOf(m);
  const step = stepAt(p, round);
  const label = p.parties[0].keyId;
  const features = p.parties.slice(1).map((x) => x.keyId);
  const messages = step.sender === 'label' ? features.map((f) => ({ from: label, to: f })) : features.map((f) => ({ from: f, to: label }));
  const release = releaseOf(dp, step);
  return {
    kind: step.kind,
    stages: ['relay'],
    parts: [],
    selection: 'all',
    releases: [],
    updatesState: false,
    relay: { messages, maxBytes: maxBytes(p, step.kind), releases: release ? [{ keyId: label, events: [release] }] : [] },
  };
}

function validate(m: JobManifest): void {
  const bad = (why: string) => new FedmarkError('MANIFEST_INVALID', `vertical SecureBoost job ${m.jobId}: ${why}`);
  const { params: p, dp } = secureBoostOf(m);
  if (m.encryption.scheme !== 'none') throw bad('the coordinator sums nothing: encryption must be "none" (the label holder keeps its own HE key)');
  const want = p.parties
    .map((x) => x.keyId)
    .sort()
    .join(',');
  if (
    want !==
    m.partners
      .map((x) => x.keyId)
      .sort()
      .join(',')
  )
    throw bad("the parties must be the manifest's partners");
  if (m.quorum !== m.partners.length || m.partnersPerRound !== m.partners.length)
    throw bad('every party takes part in every round: quorum and partnersPerRound must be the number of partners');
  if (m.rounds !== totalRounds(p)) throw bad(`rounds must be ${totalRounds(p)} (4 · trees · depth + 2), got ${m.rounds}`);
  if (dp) {
    if (!m.dp || m.dp.targetEpsilon !== p.labelDp!.epsilon || m.dp.delta !== p.labelDp!.delta)
      throw bad('the manifest dp section must state the label DP target (ε, δ)');
  } else if (m.dp) throw bad('the manifest states DP but the job has no label DP');
}

function accept(
  m: JobManifest,
  message: { round: number; from: string; to: string; body: Uint8Array },
  ctx: Parameters<RelayWorkload['relay']['accept']>[2],
): RelayOutcome {
  const { params, specHash } = secureBoostOf(m);
  const { header } = readEnvelope(message.body, ctx.keyOf);
  const step = stepAt(params, message.round);
  const wrong: string[] = [];
  if (header.jobId !== m.jobId) wrong.push(`job ${header.jobId}`);
  if (header.specHash !== specHash) wrong.push('another spec');
  if (header.round !== message.round) wrong.push(`round ${header.round}`);
  if (header.kind !== step.kind) wrong.push(`kind ${header.kind}`);
  if (header.from !== message.from || header.to !== message.to) wrong.push(`from ${header.from} to ${header.to}`);
  if (wrong.length)
    throw new FedmarkError('VERTICAL_UNEXPECTED_MESSAGE', `round ${message.round} (${step.kind}) was given a message signed for ${wrong.join(', ')}`);
  return { replies: [], ledger: [] };
}

function privacy(m: JobManifest): PrivacyPlan | null {
  const { params, dp } = secureBoostOf(m);
  if (!dp) return null;
  return { targetEpsilon: params.labelDp!.epsilon, delta: params.labelDp!.delta, noiseMultiplier: dp.histogram.noiseMultiplier, clipNorm: 1 };
}

export const secureBoostWorkload: RelayWorkload<{ specHash: string }, null> = {
  kind: 'secureboost',
  sharedKey: false,
  validate,
  totalRounds: (m) => totalRounds(secureBoostOf(m).params),
  plan,
  privacy,
  initialState: (m) => ({ specHash: secureBoostOf(m).specHash }),
  hash: (s) => sha256Canonical(s),
  ...noUploads('secureboost'),
  relay: { accept },
};
