import type { Logger } from 'pino';
import { keyId as keyIdOf, publicIdentity, type Identity, type PublicIdentity } from '../src/crypto/identity.ts';
import { DomainError } from '../src/federation/protocol/errors.ts';
import {
  isRelayWorkload,
  releaseStatementSchema,
  sameReleases,
  type LedgerProposal,
  type RelayContext,
  type RelayedMessage,
  type RelayWorkload,
} from '../src/federation/relay.ts';
import { COORDINATOR, type RelayPlan } from '../src/federation/workload.ts';
import { composedEpsilon } from '../src/privacy/accountant.ts';
import { verifyAttestation } from '../src/privacy/ledger/signing.ts';
import { sha256Hex } from '../src/util/hash.ts';
import type { JobEngine } from './job-engine.ts';
import type { JobLedgers } from './job-ledgers.ts';
import type { CoordinatorStore } from './store.ts';
import { RelayStore } from './relay-store.ts';

/**
 * The coordinator's part of relay rounds: it stores and forwards sealed point-to-point messages,
 * checking only what it can without opening them — that the round is open and relays this message
 * (sender, recipient), its size, the workload's checks of the signed header, and that a sender which
 * makes a labelled release in the round has filed its attested statement first. When a sender has
 * delivered all its messages of the round, the round machine hears `uploaded`, exactly as for an
 * upload; the job ledger gets a `relay.round` entry (hashes and sizes) before the round closes.
 */
export class RelayEngine {
  readonly relays: RelayStore;
  private readonly self: string;
  private readonly opened = new Set<string>();

  constructor(
    private readonly store: CoordinatorStore,
    private readonly engine: JobEngine,
    private readonly ledger: JobLedgers,
    private readonly identity: Identity,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.relays = new RelayStore(store.db);
    this.self = keyIdOf(identity.signPublicKey);
  }

  /** The coordinator's key id stands for COORDINATOR in plans. */
  private plain(keyId: string): string {
    return keyId === this.self ? COORDINATOR : keyId;
  }

  private relayContext(jobId: string): { workload: RelayWorkload; plan: (round: number) => RelayPlan | undefined; ctx: RelayContext } {
    const c = this.engine.context(jobId);
    if (!isRelayWorkload(c.workload)) throw new DomainError('NOT_A_RELAY_ROUND', `job ${jobId} runs workload ${c.workload.kind}, which relays no messages`);
    const keys = new Map<string, PublicIdentity>([...c.manifest.partners, c.manifest.owner].map((p) => [p.keyId, p]));
    keys.set(COORDINATOR, publicIdentity(this.identity));
    keys.set(this.self, publicIdentity(this.identity));
    return {
      workload: c.workload,
      plan: (round) => (round >= 1 && round <= c.rules.totalRounds ? c.rules.plan(round).relay : undefined),
      ctx: {
        coordinator: this.identity,
        keyOf: (k) => keys.get(k),
        received: (round) => this.relays.messages(jobId, round).map((r) => ({ round, from: r.from_key, to: r.to_key, body: new Uint8Array(r.body) })),
      },
    };
  }

  private append(jobId: string, proposals: readonly LedgerProposal[]): void {
    for (const p of proposals) this.ledger.append(jobId, p.type, p.payload as never);
  }

  /** A sender deposits its message of `round` for `to` (a key id; the coordinator's own for COORDINATOR). */
  put(jobId: string, round: number, sender: string, toKey: string, body: Uint8Array): { duplicate: boolean; hash: string } {
    const job = this.engine.requireJob(jobId);
    const { workload, plan, ctx } = this.relayContext(jobId);
    const relay = plan(round);
    if (!relay) throw new DomainError('NOT_A_RELAY_ROUND', `round ${round} of job ${jobId} is not a relay round`);
    const to = this.plain(toKey);
    if (!relay.messages.some((m) => m.from === sender && m.to === to)) {
      throw new DomainError('RELAY_NOT_EXPECTED', `round ${round} relays no message from ${sender} to ${toKey}`);
    }
    const hash = sha256Hex(body);
    const prior = this.relays.message(jobId, round, sender, to);
    if (prior) {
      if (prior.sha256 !== hash) throw new DomainError('RELAY_CONFLICT', `round ${round}: a different message from ${sender} to ${toKey} was already relayed`);
      this.markDelivered(jobId, round, sender, relay);
      return { duplicate: true, hash };
    }
    if (job.state !== 'running' || job.current_round !== round) {
      throw new DomainError('ROUND_NOT_OPEN', `round ${round} is not open (job ${job.state}, current round ${job.current_round})`);
    }
    const row = this.store.round(jobId, round, job.attempt);
    if (!row || row.state !== 'open') throw new DomainError('ROUND_NOT_OPEN', `round ${round} attempt ${job.attempt} is not open`);
    if (this.now() > row.deadline_at) throw new DomainError('ROUND_DEADLINE', `round ${round} passed its deadline`);
    if (body.length > relay.maxBytes)
      throw new DomainError('RELAY_TOO_LARGE', `a message of ${body.length} bytes; round ${round} takes at most ${relay.maxBytes}`);
    if (relay.releases.some((r) => r.keyId === sender) && !this.relays.release(jobId, round, sender)) {
      throw new DomainError(
        'RELEASE_NOT_RECORDED',
        `round ${round}: ${sender} releases label-DP values in this round and must file its attested statement before relaying`,
      );
    }
    if (!this.opened.has(jobId)) {
      this.append(jobId, workload.relay.opening?.(this.engine.manifest(jobId)) ?? []);
      this.opened.add(jobId);
    }
    const message: RelayedMessage = { round, from: sender, to, body };
    const outcome = workload.relay.accept(this.engine.manifest(jobId), message, ctx);
    // Ledger first: a crash before the messages are committed redoes this, and appends are redo-safe.
    this.append(jobId, outcome.ledger);
    const at = this.now();
    this.store.transaction(() => {
      this.relays.put(jobId, round, sender, to, body, hash, at);
      for (const r of outcome.replies) this.relays.put(jobId, r.round, r.from, r.to, r.body, sha256Hex(r.body), at);
    });
    for (const r of new Set(outcome.replies.map((x) => x.round))) this.recordRound(jobId, r);
    this.log.info({ jobId, round, from: sender, to: toKey, bytes: body.length }, 'relayed message stored');
    // The recipients' long-polls wake on it, even when the sender still owes the round other messages.
    this.engine.notifyChanged(jobId);
    this.markDelivered(jobId, round, sender, relay);
    return { duplicate: false, hash };
  }

  /** Once a sender has delivered everything it owes the round: its submission, and (for the last sender) the round's ledger record. */
  private markDelivered(jobId: string, round: number, sender: string, relay: RelayPlan): void {
    const job = this.engine.requireJob(jobId);
    const owed = relay.messages.filter((m) => m.from === sender);
    const rows = owed.map((m) => this.relays.message(jobId, round, sender, m.to));
    if (rows.some((r) => !r) || job.current_round !== round) return;
    const attempt = job.attempt;
    if (this.store.submission(jobId, round, attempt, sender)) return;
    const senders = [...new Set(relay.messages.map((m) => m.from))].filter((k) => k !== COORDINATOR);
    const others = senders.filter((k) => k !== sender);
    if (others.every((k) => this.store.submission(jobId, round, attempt, k))) this.recordRound(jobId, round);
    const hashes = rows.map((r) => r!.sha256);
    this.store.transaction(() => {
      const cur = this.store.round(jobId, round, attempt);
      if (!cur || cur.state !== 'open') return;
      this.store.insertSubmission({
        job_id: jobId,
        round,
        attempt,
        key_id: sender,
        body_hash: sha256Hex(hashes.join('')),
        meta: JSON.stringify({ relay: owed.map((m, i) => ({ to: m.to, sha256: hashes[i], bytes: rows[i]!.bytes })) }),
        part_hashes: JSON.stringify(hashes),
        received_at: this.now(),
      });
      this.store.updateRound(jobId, round, attempt, { submissions: cur.submissions + 1 });
    });
    this.engine.dispatch(jobId, { type: 'uploaded', keyId: sender, round, attempt });
  }

  private recordRound(jobId: string, round: number): void {
    const kind = this.engine.context(jobId).rules.plan(round).kind;
    this.ledger.append(jobId, 'relay.round', {
      jobId,
      round,
      kind,
      messages: this.relays.digests(jobId, round).map((d) => ({ from: d.from_key, to: d.to_key, sha256: d.sha256, bytes: d.bytes })),
    });
  }

  /** The message of `round` from `fromKey` to the caller. */
  get(jobId: string, round: number, fromKey: string, recipient: string): Uint8Array {
    this.engine.requireJob(jobId);
    const { plan } = this.relayContext(jobId);
    const relay = plan(round);
    if (!relay) throw new DomainError('NOT_A_RELAY_ROUND', `round ${round} of job ${jobId} is not a relay round`);
    const from = this.plain(fromKey);
    if (!relay.messages.some((m) => m.from === from && m.to === recipient))
      throw new DomainError('RELAY_NOT_EXPECTED', `round ${round} relays no message from ${fromKey} to this caller`);
    const row = this.relays.message(jobId, round, from, recipient);
    if (!row) throw new DomainError('NO_RELAY_MESSAGE', `round ${round}: the message from ${fromKey} has not arrived yet`);
    return row.body;
  }

  /** A sender's attested statement of the releases it charged for the round, recorded before its messages are taken. */
  release(jobId: string, round: number, sender: string, statement: Record<string, unknown>): void {
    const job = this.engine.requireJob(jobId);
    const { plan } = this.relayContext(jobId);
    const relay = plan(round);
    if (!relay) throw new DomainError('NOT_A_RELAY_ROUND', `round ${round} of job ${jobId} is not a relay round`);
    const planned = relay.releases.find((r) => r.keyId === sender);
    if (!planned) throw new DomainError('RELEASE_MISMATCH', `round ${round} plans no release by ${sender}`);
    const parsed = releaseStatementSchema.safeParse(statement);
    if (!parsed.success)
      throw new DomainError('RELEASE_MISMATCH', `release statement: ${parsed.error.issues[0]?.path.join('.') || '(root)'}: ${parsed.error.issues[0]?.message}`);
    const s = parsed.data;
    if (s.jobId !== jobId || s.partner !== sender || s.round !== round)
      throw new DomainError('STATEMENT_SCOPE', `the statement is for job ${s.jobId}, partner ${s.partner}, round ${s.round}`);
    const key = this.engine.lookupKey(jobId, sender);
    if (!key || !verifyAttestation(statement, Buffer.from(key.signPublicKey, 'base64')))
      throw new DomainError('STATEMENT_SIGNATURE', "the release statement's attestation does not verify against the sender's key");
    const prior = this.relays.release(jobId, round, sender);
    if (prior) {
      if (prior !== JSON.stringify(statement)) throw new DomainError('RELAY_CONFLICT', `round ${round}: ${sender} already filed a different release statement`);
      return;
    }
    if (job.state !== 'running' || job.current_round !== round) throw new DomainError('ROUND_NOT_OPEN', `round ${round} is not open`);
    if (!sameReleases(planned.events, s.releases)) throw new DomainError('RELEASE_MISMATCH', `round ${round}: the releases differ from the job's plan`);
    // ε is recomputed from every release this sender recorded: an understated total is refused.
    const events = [...this.relays.releases(jobId, sender).flatMap((x) => (JSON.parse(x) as { releases: typeof s.releases }).releases), ...s.releases];
    const eps = composedEpsilon(events, s.delta);
    if (s.epsilonCumulative < eps * (1 - 1e-9) - 1e-12)
      throw new DomainError('RELEASE_MISMATCH', `round ${round}: cumulative ε ${s.epsilonCumulative} is below the ${eps} its recorded releases compose to`);
    this.ledger.append(jobId, 'vertical.release', s);
    this.relays.putRelease(jobId, round, sender, JSON.stringify(statement));
    this.log.info({ jobId, round, partner: sender, epsilon: s.epsilonCumulative }, 'release recorded');
  }
}
