import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { keyId as keyIdOf, type Identity, type PublicIdentity } from '../../src/crypto/identity.ts';
import { FedmarkError } from '../../src/errors.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { builtinWorkloads } from '../../src/federation/workloads/index.ts';
import type { WorkloadRegistry } from '../../src/federation/workload.ts';
import type { BudgetGuard } from '../../src/privacy/budget/guard.ts';
import { sha256Canonical } from '../../src/privacy/ledger/canonical.ts';
import { openMessage, sealMessage } from '../../src/vertical/envelope.ts';
import { VerticalHeContext } from '../../src/vertical/he/context.ts';
import { secureBoostOf } from '../../src/vertical/jobs/secureboost-workload.ts';
import { ActiveParty, type Sections } from '../../src/vertical/secureboost/active.ts';
import type { FeatureModel, LabelModel } from '../../src/vertical/secureboost/model.ts';
import { PassiveParty } from '../../src/vertical/secureboost/passive.ts';
import type { PartyRows } from '../../src/vertical/secureboost/rows.ts';
import { stepAt } from '../../src/vertical/secureboost/schedule.ts';
import { PartnerLedger } from '../ledger.ts';
import { joinJob } from '../steps/join.ts';
import { runRelayRounds, sentDigest, type RelayParty, type RelayNodeConnection, joinConnection } from './relay-loop.ts';

export interface SecureBoostNodeOptions extends RelayNodeConnection {
  coordinatorUrl: string;
  identity: Identity;
  jobId: string;
  /** The party's own columns of the aligned customers (with the labels, for the label holder). */
  rows: PartyRows & { y?: Float32Array };
  /** sha256 of this party's dataset schema; must be the one the job names for it. */
  schemaHash: string;
  /** The PSI result this party aligned its rows with; must be the job's. */
  alignment: { psiJobId: string; orderDigest: string };
  stateDir: string;
  log: Logger;
  /** The label holder's budget guard (its accountant); required when the job has label DP. */
  budget?: BudgetGuard;
  reviewJob?: (manifest: JobManifest) => string[];
  ledgerPath?: string;
  recordBodies?: boolean;
  /** Sees the plaintext sections of every message this node sends or receives (tests scan them). */
  inspect?: (e: { round: number; kind: string; direction: 'sent' | 'received'; sections: Sections }) => void;
  workloads?: WorkloadRegistry;
}

export interface SecureBoostNodeResult {
  state: string;
  reason: string | null;
  role: 'label' | 'features';
  /** Label holder: margins of the hold-out rows and their labels. */
  scores: { rows: Int32Array; labels: Float32Array; margins: Float64Array } | null;
  model: LabelModel | FeatureModel | null;
  active: ActiveParty | null;
  /** Feature holder: CPU milliseconds of HE work. */
  heMs: number;
  bytesSent: number;
  sentBodies: Uint8Array[] | null;
}

/**
 * A party of a vertical SecureBoost job over the federation: join (its schema, its alignment, its
 * policy), then every round of the schedule with ActiveParty or PassiveParty, each message sealed to
 * its recipient and signed. The label holder charges each label DP release to its own budget and files
 * the attested statement before that round's messages leave. Model parts stay local
 * (<stateDir>/model.json): leaf values with the label holder, thresholds with their owners.
 */
export async function runSecureBoostNode(o: SecureBoostNodeOptions): Promise<SecureBoostNodeResult> {
  const client = new CoordinatorClient(o.coordinatorUrl, o.identity, { signal: o.signal, recordBodies: o.recordBodies });
  const me = keyIdOf(o.identity.signPublicKey);
  const pollMs = o.pollMs ?? 150;
  const workloads = o.workloads ?? builtinWorkloads;
  mkdirSync(o.stateDir, { recursive: true });
  const ledger = PartnerLedger.open(o.ledgerPath ?? join(o.stateDir, 'partner.ledger.jsonl'), o.identity, o.stateDir);
  const log = o.log.child({ jobId: o.jobId, node: o.identity.name });
  let role: 'label' | 'features' = 'features';
  const result = (state: string, reason: string | null, extra: Partial<SecureBoostNodeResult> = {}): SecureBoostNodeResult => ({
    state,
    reason,
    role,
    scores: null,
    model: null,
    active: null,
    heMs: 0,
    bytesSent: 0,
    sentBodies: client.sentBodies,
    ...extra,
  });
  let he: VerticalHeContext | null = null;
  let party: ActiveParty | PassiveParty | null = null;
  try {
    const review = (m: JobManifest): string[] => {
      if (m.workload.kind !== 'secureboost' || !workloads.has('secureboost'))
        return [`job ${m.jobId} runs workload "${m.workload.kind}", not vertical SecureBoost`];
      const p = secureBoostOf(m).params;
      const mine = p.parties.find((x) => x.keyId === me);
      if (!mine) return ['this node is not a party of the job'];
      const out: string[] = [];
      if (p.alignment.psiJobId !== o.alignment.psiJobId || p.alignment.orderDigest !== o.alignment.orderDigest)
        out.push(
          `the job aligns rows by PSI job ${p.alignment.psiJobId} (order ${p.alignment.orderDigest.slice(0, 12)}…), this node holds ${o.alignment.psiJobId} (${o.alignment.orderDigest.slice(0, 12)}…)`,
        );
      if (p.alignment.size !== o.rows.n) out.push(`the job has ${p.alignment.size} aligned customers, this node ${o.rows.n}`);
      if (mine.role === 'label' && p.labelDp && !o.budget) out.push('the job has label DP and this node has no budget to charge it to');
      return [...out, ...(o.reviewJob?.(m) ?? [])];
    };
    const joined = await joinJob(
      {
        ...joinConnection(o, pollMs),
        reviewJob: review,
        schemaHash: (m) => (secureBoostOf(m).params.parties.find((x) => x.keyId === me)?.schemaHash === o.schemaHash ? m.dataset.schemaHash : o.schemaHash),
        policyLimits: (m) => ({ maxEpsilon: m.dp?.targetEpsilon ?? Number.MAX_VALUE, maxDelta: m.dp?.delta ?? 0.5 }),
      },
      client,
      ledger,
      me,
      () => [],
      log,
    );
    if (!joined.joined) return result(joined.state, joined.reason);
    const { manifest } = joined;
    const { params, specHash } = secureBoostOf(manifest);
    const index = params.parties.findIndex((x) => x.keyId === me);
    role = index === 0 ? 'label' : 'features';
    he = await VerticalHeContext.create(params.he);
    const ids: PublicIdentity[] = manifest.partners;
    const keyOf = (k: string) => ids.find((p) => p.keyId === k);
    const self = { ...o.identity, keyId: me };
    const label = params.parties[0].keyId;
    const addressing = (round: number, from: string, to: string) => ({ jobId: o.jobId, specHash, round, kind: stepAt(params, round).kind, from, to });
    if (role === 'label') {
      if (!o.rows.y) throw new FedmarkError('VERTICAL_BAD_DATA', 'the label holder needs its labels');
      party = new ActiveParty({ params, rows: { ...o.rows, y: o.rows.y }, he });
    } else party = new PassiveParty({ params, party: index, rows: o.rows, he });
    const p = party;
    const relayParty: RelayParty = {
      send: async (round) => {
        const step = stepAt(params, round);
        const out =
          p instanceof ActiveParty
            ? [...p.produce(step)].map(([q, sections]) => ({ to: params.parties[q].keyId, sections }))
            : [{ to: label, sections: p.produce(step) }];
        return out.map(({ to, sections }) => {
          o.inspect?.({ round, kind: step.kind, direction: 'sent', sections });
          return { to, body: sealMessage(addressing(round, me, to), sections, o.identity, keyOf(to)!) };
        });
      },
      receive: async (round, messages) => {
        const step = stepAt(params, round);
        for (const m of messages) {
          const sections = openMessage(m.body, self, addressing(round, m.from, me), keyOf);
          o.inspect?.({ round, kind: step.kind, direction: 'received', sections: [...sections].map(([name, bytes]) => ({ name, bytes })) });
          if (p instanceof ActiveParty)
            p.consume(
              step,
              params.parties.findIndex((x) => x.keyId === m.from),
              sections,
            );
          else p.consume(step, sections);
        }
      },
      release: async (round, events) => {
        const delta = params.labelDp!.delta;
        const budget = o.budget!;
        const verdict = budget.authorize(o.jobId, round, 0, events, delta);
        if (!verdict.ok) throw new FedmarkError('BUDGET_REFUSED', `round ${round}: ${verdict.reason}`);
        const { epsilonBefore, epsilonAfter } = budget.charge(o.jobId, round, 0, events, delta);
        const statement = ledger.attest({
          jobId: o.jobId,
          partner: me,
          round,
          releases: events.map((e) => ({ ...e })),
          delta,
          epsilonSpent: Math.max(0, epsilonAfter - epsilonBefore),
          epsilonCumulative: epsilonAfter,
        });
        ledger.record('vertical.release', statement);
        return statement;
      },
    };
    let run;
    try {
      run = await runRelayRounds({
        client,
        manifest,
        workload: workloads.resolve(manifest),
        me,
        coordinatorKeyId: joined.coordinator.keyId,
        party: relayParty,
        log,
        pollMs,
        longPollMs: o.longPollMs,
        signal: o.signal,
      });
    } catch (err) {
      // This party refuses what it was sent (a tampered sum, a forged request, a replayed message): it
      // leaves the job with the reason on record, so the job stops instead of waiting for it.
      if (err instanceof FedmarkError && /^(VERTICAL_|HE_|BUDGET_)/.test(err.code)) {
        log.error({ code: err.code, err: err.message }, 'refused a message: leaving the job');
        const statement = ledger.withdrawal(o.jobId, `${err.code}: ${err.message}`, 0);
        await client.withdraw(o.jobId, `${err.code}: ${err.message}`, statement).catch(() => undefined);
      }
      throw err;
    }
    const bytesSent = run.sent.reduce((a, s) => a + s.bytes, 0);
    if (run.state !== 'completed') return result(run.state, run.reason, { bytesSent });
    const model = p.model();
    writeFileSync(join(o.stateDir, 'model.json'), JSON.stringify(model), { mode: 0o600 });
    ledger.record('vertical.party.job', {
      jobId: o.jobId,
      party: me,
      role,
      rounds: run.rounds,
      messagesSent: run.sent.length,
      bytesSent,
      sentDigest: sentDigest(run.sent),
      modelHash: sha256Canonical(model),
      alignedRows: o.rows.n,
    });
    log.info({ role, bytesSent }, 'vertical SecureBoost done');
    return result(run.state, null, {
      scores: p instanceof ActiveParty ? p.testScores() : null,
      model,
      active: p instanceof ActiveParty ? p : null,
      heMs: p instanceof PassiveParty ? p.heMs : 0,
      bytesSent,
    });
  } finally {
    party?.dispose();
    he?.dispose();
    ledger.close();
  }
}
