/**
 * The coordinator's side of one secure-aggregation attempt as a state machine: it relays and checks,
 * holds no key and no share it can open, and signs every view it publishes (roster, inboxes, survivor
 * set, unmask request), so a lie about who took part is a signed statement. Each `close*` ends a stage
 * (deadline or everyone answered) and either returns what to send next or throws SecaggAttemptFailed
 * when too few partners answered. The BFV blobs themselves go to a BfvAggregator; this machine only
 * checks each blob's hash against the partner's signed commitment.
 */
import type { Identity, PublicIdentity } from '../identity.ts';
import type { SecaggConfig } from './config.ts';
import { SecaggAttemptFailed, SecaggError, type SecaggStage } from './errors.ts';
import {
  keySetHash,
  rosterHash,
  signBody,
  type SignedAdvertise,
  type SignedConsistency,
  type SignedInbox,
  type SignedMasked,
  type SignedReveal,
  type SignedRoster,
  type SignedShares,
  type SignedSurvivors,
  type SignedUnmask,
} from './messages.ts';
import { holdersOf, openSession, readAdvertise, readConsistency, readMasked, readReveal, readShares, type Session } from './session.ts';

/** What key holders need to remove the masks, all of it signed by the coordinator or the partners. */
export interface SecaggEvidence {
  roster: SignedRoster;
  masked: SignedMasked[];
  survivors: SignedSurvivors;
  unmask: SignedUnmask;
  reveals: SignedReveal[];
}

type Stage = 'advertise' | 'share' | 'upload' | 'consistency' | 'unmask' | 'done';

export class SecaggCoordinator {
  private readonly s: Session;
  private readonly identity: Identity;
  private stage: Stage = 'advertise';
  private readonly ads = new Map<string, SignedAdvertise>();
  private roster: SignedRoster | undefined;
  private rosterHashValue = '';
  private readonly shares = new Map<string, SignedShares>();
  private readonly inboxes = new Map<string, SignedInbox>();
  private readonly masked = new Map<string, SignedMasked>();
  private survivors: SignedSurvivors | undefined;
  private survivorsHash = '';
  private readonly consistency = new Map<string, SignedConsistency>();
  private unmask: SignedUnmask | undefined;
  private readonly reveals = new Map<string, SignedReveal>();

  constructor(opts: { config: SecaggConfig; identity: Identity; partners: readonly PublicIdentity[] }) {
    this.identity = opts.identity;
    this.s = openSession(opts.config, opts.partners, Buffer.from(opts.identity.signPublicKey).toString('base64'));
  }

  get currentStage(): Stage {
    return this.stage;
  }

  private expect(stage: Stage, what: string, at: SecaggStage): void {
    if (this.stage !== stage) throw new SecaggError('SECAGG_WRONG_STAGE', at, `${what} arrived in stage ${this.stage}, not ${stage}`);
  }

  /** Stores a message per sender: a byte-identical resend is accepted, a different second one refused. */
  private keep<T extends { signature: string }>(map: Map<string, T>, from: string, msg: T, at: SecaggStage): void {
    const before = map.get(from);
    if (before && before.signature !== msg.signature) throw new SecaggError('SECAGG_DUPLICATE', at, `a second, different ${at} message from ${from}`);
    map.set(from, msg);
  }

  acceptAdvertise(input: unknown): void {
    this.expect('advertise', 'an advertisement', 'advertise');
    const body = readAdvertise(this.s, input);
    this.keep(this.ads, body.from, input as SignedAdvertise, 'advertise');
  }

  closeAdvertise(): SignedRoster {
    this.expect('advertise', 'closing advertisements', 'advertise');
    if (this.ads.size < this.s.config.minSurvivors) {
      this.stage = 'done';
      throw new SecaggAttemptFailed(
        'advertise',
        `only ${this.ads.size} of ${this.s.config.selected.length} partners advertised keys; at least ${this.s.config.minSurvivors} are needed`,
      );
    }
    const advertisements = [...this.ads.values()].sort((a, b) => (a.body.from < b.body.from ? -1 : 1));
    this.roster = signBody({ type: 'roster' as const, ...this.s.header, config: this.s.config, advertisements }, this.identity);
    this.rosterHashValue = rosterHash(advertisements);
    this.stage = 'share';
    return this.roster;
  }

  acceptShares(input: unknown): void {
    this.expect('share', 'shares', 'share');
    const body = readShares(this.s, input);
    if (!this.ads.has(body.from)) throw new SecaggError('SECAGG_UNKNOWN_PARTNER', 'share', `${body.from} shares without having advertised`);
    if (body.rosterHash !== this.rosterHashValue) throw new SecaggError('SECAGG_INCONSISTENT_ROSTER', 'share', `${body.from} shared against another roster`);
    const holders = holdersOf(this.s, body.from, new Set(this.ads.keys())).filter((v) => v !== body.from);
    const to = body.shares.map((x) => x.to).sort();
    if (to.length !== holders.length || to.some((v, i) => v !== holders[i])) {
      throw new SecaggError('SECAGG_BAD_MESSAGE', 'share', `${body.from} must send exactly one sealed share to each of its ${holders.length} holders`);
    }
    this.keep(this.shares, body.from, input as SignedShares, 'share');
  }

  /** Ends the share stage: U2 = partners whose shares arrived; every one of them gets its inbox. */
  closeShares(): void {
    this.expect('share', 'closing shares', 'share');
    const sharers = [...this.shares.keys()].sort();
    if (sharers.length < this.s.config.minSurvivors) {
      this.stage = 'done';
      throw new SecaggAttemptFailed('share', `only ${sharers.length} partners shared their keys; at least ${this.s.config.minSurvivors} are needed`);
    }
    for (const to of sharers) {
      const shares = sharers
        .filter((from) => from !== to)
        .flatMap((from) =>
          this.shares
            .get(from)!
            .body.shares.filter((x) => x.to === to)
            .map((x) => ({ from, sealed: x.sealed })),
        );
      this.inboxes.set(to, signBody({ type: 'inbox' as const, ...this.s.header, to, rosterHash: this.rosterHashValue, sharers, shares }, this.identity));
    }
    this.stage = 'upload';
  }

  inboxFor(id: string): SignedInbox {
    const inbox = this.inboxes.get(id);
    if (!inbox) throw new SecaggError('SECAGG_UNKNOWN_PARTNER', 'upload', `no inbox for ${id}: it did not share in this attempt`);
    return inbox;
  }

  /**
   * A partner's masked-upload commitment; `blobSha256` is the hash of the blob that came with it,
   * which the caller adds to the BFV aggregator only after this returns.
   */
  acceptMasked(input: unknown, blobSha256: string): void {
    this.expect('upload', 'a masked upload', 'upload');
    const body = readMasked(this.s, input, this.rosterHashValue);
    if (!this.inboxes.has(body.from)) throw new SecaggError('SECAGG_UNKNOWN_PARTNER', 'upload', `${body.from} uploads without having shared`);
    if (body.blobSha256 !== blobSha256) throw new SecaggError('SECAGG_SUM_MISMATCH', 'upload', `the blob ${body.from} uploaded is not the one it signed`);
    const neighbours = this.s.neighbours.get(body.from)!;
    const expected = [...this.shares.keys()].filter((v) => v !== body.from && neighbours.has(v)).sort();
    if (body.maskedWith.length !== expected.length || body.maskedWith.some((v, i) => v !== expected[i])) {
      throw new SecaggError(
        'SECAGG_BAD_MESSAGE',
        'upload',
        `${body.from} masked with ${body.maskedWith.length} partners, but ${expected.length} of its neighbours shared`,
      );
    }
    this.keep(this.masked, body.from, input as SignedMasked, 'upload');
  }

  /** Ends the upload stage: U3 = partners whose upload is in the sum, signed. */
  closeUpload(): SignedSurvivors {
    this.expect('upload', 'closing uploads', 'upload');
    const survivors = [...this.masked.keys()].sort();
    if (survivors.length < this.s.config.minSurvivors) {
      this.stage = 'done';
      throw new SecaggAttemptFailed('upload', `only ${survivors.length} partners uploaded; a sum needs at least ${this.s.config.minSurvivors}`);
    }
    this.survivors = signBody({ type: 'survivors' as const, ...this.s.header, survivors }, this.identity);
    this.survivorsHash = keySetHash('survivors', survivors);
    this.stage = 'consistency';
    return this.survivors;
  }

  /** Survivors whose upload the sum must hold, in order. */
  get survivorIds(): string[] {
    return this.survivors ? [...this.survivors.body.survivors] : [];
  }

  acceptConsistency(input: unknown): void {
    this.expect('consistency', 'a consistency signature', 'consistency');
    const body = readConsistency(this.s, input);
    if (!this.masked.has(body.from)) throw new SecaggError('SECAGG_UNKNOWN_PARTNER', 'consistency', `${body.from} is not a survivor`);
    if (body.survivorsHash !== this.survivorsHash)
      throw new SecaggError('SECAGG_INCONSISTENT_SURVIVORS', 'consistency', `${body.from} signed another survivor set`);
    this.keep(this.consistency, body.from, input as SignedConsistency, 'consistency');
  }

  /** Ends the consistency stage: U4 = survivors that signed; fewer than t fails the attempt. */
  closeConsistency(): SignedUnmask {
    this.expect('consistency', 'closing consistency', 'consistency');
    if (this.consistency.size < this.s.config.threshold) {
      this.stage = 'done';
      throw new SecaggAttemptFailed(
        'consistency',
        `only ${this.consistency.size} survivors confirmed the survivor set; at least ${this.s.config.threshold} are needed`,
      );
    }
    const consistency = [...this.consistency.values()].sort((a, b) => (a.body.from < b.body.from ? -1 : 1));
    this.unmask = signBody({ type: 'unmask' as const, ...this.s.header, survivors: this.survivorIds, consistency }, this.identity);
    this.stage = 'unmask';
    return this.unmask;
  }

  acceptReveal(input: unknown): void {
    this.expect('unmask', 'a reveal', 'unmask');
    const body = readReveal(this.s, input, this.survivorsHash);
    if (!this.consistency.has(body.from))
      throw new SecaggError('SECAGG_UNKNOWN_PARTNER', 'unmask', `${body.from} reveals without having confirmed the survivor set`);
    this.keep(this.reveals, body.from, input as SignedReveal, 'unmask');
  }

  /**
   * Ends the unmask stage. Fails the attempt unless every survivor's seed and every dropped sharer's
   * mask key has at least t revealed shares; otherwise returns the evidence key holders unmask with.
   */
  closeUnmask(): SecaggEvidence {
    this.expect('unmask', 'closing the unmask stage', 'unmask');
    const survivors = new Set(this.survivorIds);
    const seedCount = new Map<string, number>();
    const keyCount = new Map<string, number>();
    for (const r of this.reveals.values()) {
      for (const x of r.body.seedShares) seedCount.set(x.of, (seedCount.get(x.of) ?? 0) + 1);
      for (const x of r.body.keyShares) keyCount.set(x.of, (keyCount.get(x.of) ?? 0) + 1);
    }
    const dropped = new Set([...this.masked.values()].flatMap((m) => m.body.maskedWith).filter((v) => !survivors.has(v)));
    const t = this.s.config.threshold;
    const short = [
      ...[...survivors].filter((u) => (seedCount.get(u) ?? 0) < t).map((u) => `seed of ${u}`),
      ...[...dropped].filter((v) => (keyCount.get(v) ?? 0) < t).map((v) => `mask key of ${v}`),
    ];
    this.stage = 'done';
    if (short.length > 0) {
      throw new SecaggAttemptFailed(
        'unmask',
        `fewer than ${t} shares were revealed for ${short.length} secret(s) (${short.slice(0, 3).join('; ')}${short.length > 3 ? '; …' : ''}): ${this.reveals.size} of ${this.consistency.size} responders answered`,
      );
    }
    return {
      roster: this.roster!,
      masked: [...this.masked.values()].sort((a, b) => (a.body.from < b.body.from ? -1 : 1)),
      survivors: this.survivors!,
      unmask: this.unmask!,
      reveals: [...this.reveals.values()].sort((a, b) => (a.body.from < b.body.from ? -1 : 1)),
    };
  }
}
