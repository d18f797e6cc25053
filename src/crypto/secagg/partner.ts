/**
 * The partner's side of one secure-aggregation attempt as a state machine: each stage consumes the
 * coordinator's signed message and produces this partner's signed answer. It trusts only what it
 * signed itself and what carries a signature it can check; a second, different input for a stage it
 * already answered is refused (SECAGG_EQUIVOCATION), the same input returns the same answer (replays
 * after a crash re-send, never redraw). `snapshot()` is what the node persists — it holds secrets.
 */
import { createHash } from 'node:crypto';
import type { Identity, PublicIdentity } from '../identity.ts';
import { keyId as keyIdOf } from '../identity.ts';
import { canonicalBytes } from '../../privacy/ledger/canonical.ts';
import type { SecaggConfig } from './config.ts';
import { cryptoRandom } from './encoding.ts';
import { SecaggAttemptFailed, SecaggError } from './errors.ts';
import { SecaggHistory } from './history.ts';
import { applyPairMask, applySelfMask, assertResidues, pairSign } from './masking.ts';
import {
  checkHeader,
  openSigned,
  signBody,
  signedInboxSchema,
  signedUnmaskSchema,
  type AdvertiseBody,
  type SignedAdvertise,
  type SignedConsistency,
  type SignedMasked,
  type SignedReveal,
  type SignedShares,
} from './messages.ts';
import { MaskAccumulator } from './prg.ts';
import { openSharePair, sealSharePair, type SharePair } from './sealed-share.ts';
import { holdersOf, openSession, readRoster, readSurvivors, readUnmask, type Session } from './session.ts';
import { shareSecret } from './shamir.ts';
import { x25519KeyPair } from './x25519.ts';

const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const digest = (x: unknown) => createHash('sha256').update(canonicalBytes(x)).digest('hex');

/** sha256 of the seed under its own domain: published in the advertisement, checked after recovery. */
export function seedCommitment(seed: Uint8Array): string {
  return createHash('sha256').update('fedmark-secagg-1/seed-commitment\n').update(seed).digest('hex');
}

export interface PartnerOptions {
  config: SecaggConfig;
  identity: Identity;
  /** Public identities of (at least) every selected partner, from the manifest. */
  partners: readonly PublicIdentity[];
  coordinatorSignPublicKey: string;
  /** Keys and commitments seen in earlier rounds of the job; updated as rosters are accepted. */
  history?: SecaggHistory;
  /** Tests only: a deterministic byte source. Default: node:crypto's CSPRNG. */
  random?: (n: number) => Uint8Array;
}

/** Everything the partner must remember across a crash; secret — persist it like a key file. */
export interface PartnerSnapshot {
  format: 'fedmark-secagg-partner-1';
  maskSecretKey: string;
  shareSecretKey: string;
  seed: string;
  advertise: SignedAdvertise;
  roster?: { digest: string; hash: string; ads: AdvertiseBody[]; answer: SignedShares; own: { keyShare: string; seedShare: string } };
  inbox?: { digest: string; received: { from: string; keyShare: string; seedShare: string }[]; answer: SignedMasked };
  survivors?: { digest: string; ids: string[]; hash: string; answer: SignedConsistency };
  unmask?: { digest: string; answer: SignedReveal };
  /** Partner → which of its shares this partner revealed (never both). */
  revealed: Record<string, 'seed' | 'key'>;
}

export class SecaggPartner {
  readonly id: string;
  private readonly s: Session;
  private readonly identity: Identity;
  private readonly history: SecaggHistory;
  private readonly maskKeys: { publicKey: Uint8Array; secretKey: Uint8Array };
  private readonly shareKeys: { publicKey: Uint8Array; secretKey: Uint8Array };
  private readonly seed: Uint8Array;
  private readonly state: PartnerSnapshot;
  private ads = new Map<string, AdvertiseBody>();
  private received = new Map<string, SharePair>();
  private lastBlob: Uint8Array | undefined;

  private constructor(opts: PartnerOptions, snapshot?: PartnerSnapshot) {
    this.s = openSession(opts.config, opts.partners, opts.coordinatorSignPublicKey);
    this.identity = opts.identity;
    this.id = keyIdOf(opts.identity.signPublicKey);
    if (!this.s.config.selected.includes(this.id)) {
      throw new SecaggError(
        'SECAGG_UNKNOWN_PARTNER',
        'advertise',
        `this partner (${this.id}) is not selected for round ${this.s.config.round} attempt ${this.s.config.attempt}`,
      );
    }
    this.history = opts.history ?? new SecaggHistory();
    if (snapshot) {
      if (snapshot.format !== 'fedmark-secagg-partner-1' || snapshot.advertise.body.configId !== this.s.configId) {
        throw new SecaggError('SECAGG_WRONG_ATTEMPT', 'advertise', 'the persisted secure-aggregation state belongs to another attempt');
      }
      this.state = snapshot;
      this.maskKeys = x25519KeyPair(fromB64(snapshot.maskSecretKey));
      this.shareKeys = x25519KeyPair(fromB64(snapshot.shareSecretKey));
      this.seed = fromB64(snapshot.seed);
      for (const ad of snapshot.roster?.ads ?? []) this.ads.set(ad.from, ad);
      for (const r of snapshot.inbox?.received ?? []) this.received.set(r.from, { keyShare: fromB64(r.keyShare), seedShare: fromB64(r.seedShare) });
      return;
    }
    // Fresh per attempt: mask key pair (s_u), share-encryption key pair (c_u), self-mask seed (b_u).
    const random = opts.random ?? cryptoRandom;
    this.maskKeys = x25519KeyPair(random(32));
    this.shareKeys = x25519KeyPair(random(32));
    this.seed = Uint8Array.from(random(32));
    const advertise = signBody<AdvertiseBody>(
      {
        type: 'advertise',
        ...this.s.header,
        from: this.id,
        maskPublicKey: b64(this.maskKeys.publicKey),
        sharePublicKey: b64(this.shareKeys.publicKey),
        seedCommitment: seedCommitment(this.seed),
      },
      this.identity,
    );
    // A broken RNG or a restored old state would show here first.
    this.history.check(advertise.body, 'advertise');
    this.state = {
      format: 'fedmark-secagg-partner-1',
      maskSecretKey: b64(this.maskKeys.secretKey),
      shareSecretKey: b64(this.shareKeys.secretKey),
      seed: b64(this.seed),
      advertise,
      revealed: {},
    };
  }

  static create(opts: PartnerOptions): SecaggPartner {
    return new SecaggPartner(opts);
  }

  static restore(opts: PartnerOptions, snapshot: PartnerSnapshot): SecaggPartner {
    return new SecaggPartner(opts, snapshot);
  }

  snapshot(): PartnerSnapshot {
    return structuredClone(this.state);
  }

  /** Stage advertise: this attempt's public keys, signed. */
  advertise(): SignedAdvertise {
    return this.state.advertise;
  }

  private replay<T>(kept: { digest: string; answer: T } | undefined, input: unknown, stage: 'share' | 'upload' | 'consistency' | 'unmask'): T | undefined {
    if (!kept) return undefined;
    if (kept.digest === digest(input)) return kept.answer;
    throw new SecaggError(
      'SECAGG_EQUIVOCATION',
      stage,
      `the coordinator sent a second, different ${stage} request for an attempt this partner already answered`,
    );
  }

  /** Stage share: checks the roster (U1), then Shamir-shares s_u and b_u to its holders, sealed. */
  async onRoster(input: unknown): Promise<SignedShares> {
    const again = this.replay(this.state.roster, input, 'share');
    if (again) return again;
    const roster = readRoster(this.s, input, this.history);
    const mine = roster.ads.get(this.id);
    if (!mine || digest(mine) !== digest(this.state.advertise.body)) {
      throw new SecaggError('SECAGG_INCONSISTENT_ROSTER', 'share', "the roster omits or alters this partner's own advertisement");
    }
    const holders = holdersOf(this.s, this.id, new Set(roster.ads.keys()));
    if (holders.length < this.s.config.threshold) {
      throw new SecaggAttemptFailed(
        'share',
        `only ${holders.length} holders for this partner's shares advertised; the threshold is ${this.s.config.threshold}`,
      );
    }
    const keyShares = await shareSecret(this.maskKeys.secretKey, holders, this.s.config.threshold);
    const seedShares = await shareSecret(this.seed, holders, this.s.config.threshold);
    const shares = holders
      .filter((v) => v !== this.id)
      .map((to) => ({
        to,
        sealed: b64(
          sealSharePair(
            { ...this.s.header, from: this.id, to },
            { keyShare: keyShares.get(to)!, seedShare: seedShares.get(to)! },
            fromB64(roster.ads.get(to)!.sharePublicKey),
            this.shareKeys.secretKey,
          ),
        ),
      }));
    const answer = signBody({ type: 'shares' as const, ...this.s.header, from: this.id, rosterHash: roster.hash, shares }, this.identity);
    for (const ad of roster.ads.values()) this.history.record(ad);
    this.ads = roster.ads;
    this.state.roster = {
      digest: digest(input),
      hash: roster.hash,
      ads: [...roster.ads.values()],
      answer,
      own: { keyShare: b64(keyShares.get(this.id)!), seedShare: b64(seedShares.get(this.id)!) },
    };
    return answer;
  }

  /**
   * Stage upload: opens the shares addressed to it (checking U2 and that none was withheld), masks
   * the encoded residues and hands them to `encrypt` (BFV under the key holders' key). Returns the
   * signed commitment and the blob. A replay returns the same commitment and, in this process, the
   * same blob; after a restore the node re-sends the blob it persisted.
   */
  onInbox(input: unknown, encoded: Float64Array, encrypt: (masked: Float64Array) => Uint8Array): { message: SignedMasked; blob: Uint8Array | undefined } {
    const again = this.replay(this.state.inbox, input, 'upload');
    if (again) return { message: again, blob: this.lastBlob };
    const body = openSigned(signedInboxSchema, input, this.s.coordinatorKey, 'inbox', 'upload').body;
    checkHeader(body, this.s.header, 'inbox', 'upload');
    const roster = this.state.roster;
    if (!roster) throw new SecaggError('SECAGG_WRONG_STAGE', 'upload', 'an inbox arrived before the roster');
    if (body.to !== this.id) throw new SecaggError('SECAGG_BAD_INBOX', 'upload', `the inbox is addressed to ${body.to}`);
    if (body.rosterHash !== roster.hash)
      throw new SecaggError('SECAGG_INCONSISTENT_ROSTER', 'upload', 'the inbox refers to another roster than the one this partner shared against');
    const sharers = new Set(body.sharers);
    if (sharers.size !== body.sharers.length || [...sharers].some((v) => !this.ads.has(v))) {
      throw new SecaggError('SECAGG_BAD_INBOX', 'upload', 'the inbox lists a sharer twice or one that did not advertise');
    }
    if (!sharers.has(this.id)) throw new SecaggError('SECAGG_BAD_INBOX', 'upload', 'the inbox says this partner did not share, yet it did');
    const neighbours = this.s.neighbours.get(this.id)!;
    const expected = [...sharers].filter((v) => v !== this.id && neighbours.has(v)).sort();
    const got = new Map<string, string>();
    for (const item of body.shares) {
      if (got.has(item.from)) throw new SecaggError('SECAGG_BAD_INBOX', 'upload', `two shares from ${item.from}`);
      got.set(item.from, item.sealed);
    }
    if (got.size !== expected.length || expected.some((v) => !got.has(v))) {
      throw new SecaggError(
        'SECAGG_BAD_INBOX',
        'upload',
        `the inbox holds shares from ${[...got.keys()].sort().join(',') || 'nobody'} but the sharers among this partner's neighbours are ${expected.join(',') || 'nobody'}`,
      );
    }
    if (expected.length + 1 < this.s.config.threshold || sharers.size < this.s.config.minSurvivors) {
      throw new SecaggAttemptFailed(
        'upload',
        `only ${sharers.size} partners shared their keys (${expected.length + 1} of this partner's holders); threshold ${this.s.config.threshold}, minimum ${this.s.config.minSurvivors}`,
      );
    }
    const received = new Map<string, SharePair>();
    for (const from of expected) {
      received.set(
        from,
        openSharePair({ ...this.s.header, from, to: this.id }, fromB64(got.get(from)!), fromB64(this.ads.get(from)!.sharePublicKey), this.shareKeys.secretKey),
      );
    }
    const t = this.s.config.he.plainModulus;
    if (!(encoded instanceof Float64Array) || encoded.length !== this.s.config.encoding.totalSlots) {
      throw new SecaggError('SECAGG_BAD_MESSAGE', 'upload', `the encoded vector must have ${this.s.config.encoding.totalSlots} slots`);
    }
    assertResidues(encoded, t, 'encoded update');
    const acc = new MaskAccumulator(Float64Array.from(encoded), t);
    const binding = this.s.config;
    applySelfMask(acc, binding, this.id, this.seed, 1);
    for (const v of expected) {
      applyPairMask(acc, binding, { a: this.id, b: v }, this.maskKeys.secretKey, fromB64(this.ads.get(v)!.maskPublicKey), pairSign(this.id, v));
    }
    const masked = acc.finish();
    const blob = encrypt(masked);
    masked.fill(0);
    const message = signBody(
      {
        type: 'masked' as const,
        ...this.s.header,
        from: this.id,
        rosterHash: roster.hash,
        maskedWith: expected,
        blobSha256: createHash('sha256').update(blob).digest('hex'),
        slots: encoded.length,
      },
      this.identity,
    );
    this.received = received;
    this.lastBlob = blob;
    this.state.inbox = {
      digest: digest(input),
      received: [...received].map(([from, p]) => ({ from, keyShare: b64(p.keyShare), seedShare: b64(p.seedShare) })),
      answer: message,
    };
    return { message, blob };
  }

  /** Stage consistency: signs the coordinator's survivor set (U3) — one set per attempt, ever. */
  onSurvivors(input: unknown): SignedConsistency {
    const again = this.replay(this.state.survivors, input, 'consistency');
    if (again) return again;
    const { survivors, hash } = readSurvivors(this.s, input);
    if (!this.state.inbox) throw new SecaggError('SECAGG_WRONG_STAGE', 'consistency', 'a survivor set arrived before this partner uploaded');
    if (!survivors.includes(this.id)) throw new SecaggError('SECAGG_BAD_MESSAGE', 'consistency', 'the survivor set omits this partner, which uploaded');
    const sharers = new Set([this.id, ...this.received.keys()]);
    const neighbours = this.s.neighbours.get(this.id)!;
    for (const v of survivors) {
      if (neighbours.has(v) && !sharers.has(v))
        throw new SecaggError('SECAGG_BAD_MESSAGE', 'consistency', `survivor ${v} never shared with this partner, so cannot have uploaded`);
    }
    const answer = signBody({ type: 'consistency' as const, ...this.s.header, from: this.id, survivorsHash: hash }, this.identity);
    this.state.survivors = { digest: digest(input), ids: survivors, hash, answer };
    return answer;
  }

  /**
   * Stage unmask: after checking ≥ t consistency signatures over the set it signed, reveals the seed
   * share of every survivor and the key share of every partner that shared but did not upload —
   * never both for one partner, and only for partners whose shares it holds.
   */
  onUnmask(input: unknown): SignedReveal {
    const again = this.replay(this.state.unmask, input, 'unmask');
    if (again) return again;
    checkHeader(openSigned(signedUnmaskSchema, input, this.s.coordinatorKey, 'unmask request', 'unmask').body, this.s.header, 'unmask request', 'unmask');
    const kept = this.state.survivors;
    if (!kept) throw new SecaggError('SECAGG_WRONG_STAGE', 'unmask', 'an unmask request arrived before this partner confirmed a survivor set');
    const { survivors } = readUnmask(this.s, input, kept.hash);
    const inSum = new Set(survivors);
    const held = new Map(this.received);
    held.set(this.id, { keyShare: fromB64(this.state.roster!.own.keyShare), seedShare: fromB64(this.state.roster!.own.seedShare) });
    const seedShares: { of: string; share: string }[] = [];
    const keyShares: { of: string; share: string }[] = [];
    for (const [of, pair] of [...held].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const kind = inSum.has(of) ? 'seed' : 'key';
      const before = this.state.revealed[of];
      if (before !== undefined && before !== kind) {
        throw new SecaggError(
          'SECAGG_DOUBLE_REVEAL',
          'unmask',
          `this partner already revealed the ${before} share of ${of}; revealing its ${kind} share too would expose its upload`,
        );
      }
      (kind === 'seed' ? seedShares : keyShares).push({ of, share: b64(kind === 'seed' ? pair.seedShare : pair.keyShare) });
    }
    for (const x of seedShares) this.state.revealed[x.of] = 'seed';
    for (const x of keyShares) this.state.revealed[x.of] = 'key';
    const answer = signBody({ type: 'reveal' as const, ...this.s.header, from: this.id, survivorsHash: kept.hash, seedShares, keyShares }, this.identity);
    this.state.unmask = { digest: digest(input), answer };
    return answer;
  }

  /** Used by tests and the threat-model demonstration: the set this partner signed, if any. */
  get signedSurvivors(): readonly string[] | undefined {
    return this.state.survivors?.ids;
  }
}
