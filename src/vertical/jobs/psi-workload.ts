/**
 * PSI as a job kind: the ring ECDH-PSI of ../psi/ over relay rounds of the federation. The manifest's
 * `workload.params.spec` is the PSI job spec (id column, normalisation, hash domain = the job id, ring,
 * coordinator, cap, padding); the manifest's partners are the ring's parties.
 *
 * Rounds for m parties:
 *   1 … m−1   every party → its ring successor: the list it holds (its own, then foreign ones re-blinded)
 *   m         every party → coordinator: the list it blinded last (psi.full)
 *   m+1       coordinator → every party: the positions of that party's own matches (psi.result)
 *   m+2       every party → coordinator: its signed receipt
 *   m+3       coordinator → every party: every party's receipt
 * The coordinator relays the ring's lists unopened (it checks their signed headers), intersects the
 * fully blinded lists and learns no id; it writes psi.job, psi.full and psi.intersection to the job
 * ledger, each party its psi.party.* entries to its own.
 */
import { keyId as keyIdOf } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import type { JobManifest } from '../../federation/manifest.ts';
import { noUploads, type RelayOutcome, type RelayWorkload } from '../../federation/relay.ts';
import { COORDINATOR, type RoundPlan } from '../../federation/workload.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { PsiCoordinator } from '../psi/coordinator.ts';
import { ELEMENT_BYTES } from '../psi/group.ts';
import { psiJobEntry, type PsiLedgerEntry } from '../psi/ledger.ts';
import { decodeFrame, encodeFrame, type PsiMessage } from '../psi/messages.ts';
import { parsePsiSpec, ringNext, specHash, type PsiSpec } from '../psi/spec.ts';
import type { LedgerProposal } from '../../federation/relay.ts';

const specs = new WeakMap<JobManifest, PsiSpec>();

/** The PSI spec of a PSI job's manifest (parsed once per manifest object). */
export function psiSpecOf(m: JobManifest): PsiSpec {
  let s = specs.get(m);
  if (!s) {
    s = parsePsiSpec((m.workload.params as { spec?: unknown }).spec, `job ${m.jobId}: workload.params.spec`);
    specs.set(m, s);
  }
  return s;
}

export function psiRounds(spec: Pick<PsiSpec, 'parties'>): number {
  return spec.parties.length + 3;
}

/** Largest list message: the cap's elements, sealing tags per MiB chunk, a Merkle salt seed, the header. */
function listBytes(spec: PsiSpec): number {
  const plain = spec.maxSetSize * ELEMENT_BYTES + 32;
  return plain + 16 * Math.ceil(plain / spec.chunkBytes + 1) + 64 * 1024;
}

function plan(m: JobManifest, round: number): RoundPlan {
  const spec = psiSpecOf(m);
  const keys = spec.parties.map((p) => p.keyId);
  const n = keys.length;
  const relay = (messages: { from: string; to: string }[], kind: string, maxBytes: number): RoundPlan => ({
    kind,
    stages: ['relay'],
    parts: [],
    selection: 'all',
    releases: [],
    updatesState: false,
    relay: { messages, maxBytes, releases: [] },
  });
  const results = Math.max(64 * 1024, listBytes(spec) * 2);
  if (round < n)
    return relay(
      keys.map((k, i) => ({ from: k, to: ringNext(spec, i).keyId })),
      'psi-list',
      listBytes(spec),
    );
  if (round === n)
    return relay(
      keys.map((k) => ({ from: k, to: COORDINATOR })),
      'psi-full',
      listBytes(spec),
    );
  if (round === n + 1)
    return relay(
      keys.map((k) => ({ from: COORDINATOR, to: k })),
      'psi-result',
      results,
    );
  if (round === n + 2)
    return relay(
      keys.map((k) => ({ from: k, to: COORDINATOR })),
      'psi-receipt',
      64 * 1024,
    );
  return relay(
    keys.map((k) => ({ from: COORDINATOR, to: k })),
    'psi-receipts',
    64 * 1024 * (n + 1),
  );
}

function validate(m: JobManifest): void {
  const bad = (why: string) => new FedmarkError('MANIFEST_INVALID', `PSI job ${m.jobId}: ${why}`);
  const spec = psiSpecOf(m);
  if (m.encryption.scheme !== 'none') throw bad('a PSI job sums nothing at the coordinator: encryption must be "none"');
  if (spec.jobId !== m.jobId) throw bad(`the PSI spec is for job ${spec.jobId}; its hash domain must be this job's`);
  const want = spec.parties
    .map((p) => p.keyId)
    .sort()
    .join(',');
  const got = m.partners
    .map((p) => p.keyId)
    .sort()
    .join(',');
  if (want !== got) throw bad("the PSI ring's parties must be the manifest's partners");
  for (const p of spec.parties) {
    const q = m.partners.find((x) => x.keyId === p.keyId)!;
    if (q.signPublicKey !== p.signPublicKey || q.boxPublicKey !== p.boxPublicKey) throw bad(`party ${p.name}'s keys differ between the spec and the manifest`);
  }
  if (m.quorum !== m.partners.length || m.partnersPerRound !== m.partners.length)
    throw bad('every party takes part in every round: quorum and partnersPerRound must be the number of partners');
  if (m.rounds !== psiRounds(spec)) throw bad(`rounds must be ${psiRounds(spec)} (parties + 3), got ${m.rounds}`);
  if (m.dp !== null) throw bad('a PSI job releases no noised value: dp must be null');
}

interface CoordState {
  coord: PsiCoordinator;
  logged: number;
}

/** The coordinator's PSI state per job (this process); rebuilt from the stored ring lists after a restart. */
const coordinators = new WeakMap<JobManifest, CoordState>();

function coordinatorOf(m: JobManifest, ctx: Parameters<RelayWorkload['relay']['accept']>[2], round: number): CoordState {
  let st = coordinators.get(m);
  if (st) return st;
  const spec = psiSpecOf(m);
  if (keyIdOf(ctx.coordinator.signPublicKey) !== spec.coordinator.keyId) {
    throw new FedmarkError(
      'PSI_NOT_THE_COORDINATOR',
      `PSI job ${m.jobId} names coordinator ${spec.coordinator.name} (${spec.coordinator.keyId}), not this coordinator`,
    );
  }
  st = { coord: new PsiCoordinator(spec, ctx.coordinator), logged: 0 };
  const n = spec.parties.length;
  if (round > n) {
    // The intersection was computed by a process that is gone: its results cannot be re-issued identically.
    throw new FedmarkError('PSI_COORDINATOR_RESTARTED', `PSI job ${m.jobId}: the coordinator restarted after the full lists arrived; run the PSI job again`);
  }
  for (let r = 1; r < round; r++) for (const x of ctx.received(r)) st.coord.relay(decodeFrame(x.body));
  for (const x of ctx.received(round)) {
    if (round < n) st.coord.relay(decodeFrame(x.body));
    else st.coord.receive(decodeFrame(x.body));
  }
  coordinators.set(m, st);
  return st;
}

function proposals(st: CoordState): LedgerProposal[] {
  const entries = st.coord.ledgerEntries().slice(st.logged) as PsiLedgerEntry[];
  st.logged += entries.length;
  return entries as unknown as LedgerProposal[];
}

function accept(
  m: JobManifest,
  message: { round: number; from: string; to: string; body: Uint8Array },
  ctx: Parameters<RelayWorkload['relay']['accept']>[2],
): RelayOutcome {
  const spec = psiSpecOf(m);
  const n = spec.parties.length;
  const msg: PsiMessage = decodeFrame(message.body);
  const to = message.to === COORDINATOR ? spec.coordinator.keyId : message.to;
  if (msg.header.from !== message.from || msg.header.to !== to) {
    throw new FedmarkError(
      'PSI_MISROUTED',
      `round ${message.round}: a ${msg.header.kind} from ${msg.header.from} to ${msg.header.to} was sent by ${message.from} to ${to}`,
    );
  }
  const st = coordinatorOf(m, ctx, message.round);
  const want = message.round < n ? 'psi.list' : message.round === n ? 'psi.full' : 'psi.receipt';
  if (msg.header.kind !== want) throw new FedmarkError('PSI_UNEXPECTED_MESSAGE', `round ${message.round} carries ${want} messages, not ${msg.header.kind}`);
  if (message.round < n) {
    st.coord.relay(msg);
    return { replies: [], ledger: proposals(st) };
  }
  const out = st.coord.receive(msg);
  const replyRound = message.round === n ? n + 1 : n + 3;
  return {
    replies: out.map((x) => ({ round: replyRound, from: COORDINATOR, to: x.header.to, body: encodeFrame(x) })),
    ledger: proposals(st),
  };
}

export const psiWorkload: RelayWorkload<{ specHash: string }, null> = {
  kind: 'psi',
  sharedKey: false,
  validate,
  totalRounds: (m) => psiRounds(psiSpecOf(m)),
  plan,
  privacy: () => null,
  initialState: (m) => ({ specHash: specHash(psiSpecOf(m)) }),
  hash: (s) => sha256Canonical(s),
  ...noUploads('psi'),
  relay: {
    accept,
    opening: (m) => [psiJobEntry(psiSpecOf(m)) as unknown as LedgerProposal],
  },
};
