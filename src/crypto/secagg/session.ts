/**
 * What every party of one attempt shares — the config, its id, the identities that sign, the graph —
 * and the checks each party runs on what it receives. Partners, coordinator and key holders use the
 * same readers, so "valid" means one thing everywhere; each reader throws a SecaggError naming the
 * problem and never returns a partially checked message.
 */
import { keyId as keyIdOf, type PublicIdentity } from '../identity.ts';
import { secaggConfigId, validateSecaggConfig, type SecaggConfig } from './config.ts';
import { SecaggAttemptFailed, SecaggError, type SecaggStage } from './errors.ts';
import { neighbourhoods } from './graph.ts';
import type { SecaggHistory } from './history.ts';
import {
  checkHeader,
  keySetHash,
  openSigned,
  rosterHash,
  signedAdvertiseSchema,
  signedConsistencySchema,
  signedMaskedSchema,
  signedRevealSchema,
  signedRosterSchema,
  signedSharesSchema,
  signedSurvivorsSchema,
  signedUnmaskSchema,
  type AdvertiseBody,
  type ConsistencyBody,
  type MaskedBody,
  type MessageHeader,
  type RevealBody,
  type SharesBody,
  type SignedAdvertise,
  type SignedConsistency,
  type SignedRoster,
} from './messages.ts';

export interface Session {
  config: SecaggConfig;
  configId: string;
  header: MessageHeader;
  /** keyId → Ed25519 public key (base64) of every selected partner. */
  signKeys: Map<string, string>;
  coordinatorKey: string;
  neighbours: Map<string, Set<string>>;
}

export function openSession(config: SecaggConfig, partners: readonly PublicIdentity[], coordinatorSignPublicKey: string): Session {
  const c = validateSecaggConfig(config);
  const configId = secaggConfigId(c);
  const signKeys = new Map<string, string>();
  for (const p of partners) {
    if (keyIdOf(new Uint8Array(Buffer.from(p.signPublicKey, 'base64'))) !== p.keyId) {
      throw new SecaggError('SECAGG_UNKNOWN_PARTNER', 'advertise', `partner identity ${p.name}: keyId does not match its signing key`);
    }
    signKeys.set(p.keyId, p.signPublicKey);
  }
  for (const id of c.selected) {
    if (!signKeys.has(id)) throw new SecaggError('SECAGG_UNKNOWN_PARTNER', 'advertise', `selected partner ${id} has no known identity`);
  }
  return {
    config: c,
    configId,
    header: { configId, jobId: c.jobId, round: c.round, attempt: c.attempt },
    signKeys,
    coordinatorKey: coordinatorSignPublicKey,
    neighbours: neighbourhoods(c.selected, c.graph),
  };
}

function partnerKey(s: Session, id: string, what: string, stage: SecaggStage): string {
  const key = s.config.selected.includes(id) ? s.signKeys.get(id) : undefined;
  if (!key) throw new SecaggError('SECAGG_UNKNOWN_PARTNER', stage, `${what} comes from ${id}, who is not selected for this attempt`);
  return key;
}

function sortedUnique(ids: readonly string[], what: string, stage: SecaggStage): string[] {
  for (let i = 1; i < ids.length; i++) {
    if (!(ids[i - 1] < ids[i])) throw new SecaggError('SECAGG_BAD_MESSAGE', stage, `${what} must be sorted and without duplicates`);
  }
  return [...ids];
}

/** The holders of partner u's shares: its neighbours that advertised, and itself (sorted). */
export function holdersOf(s: Session, u: string, advertised: ReadonlySet<string>): string[] {
  const n = s.neighbours.get(u) ?? new Set<string>();
  return [...n]
    .filter((v) => advertised.has(v))
    .concat(u)
    .sort();
}

export function readAdvertise(s: Session, input: unknown): AdvertiseBody {
  const from = (input as SignedAdvertise | undefined)?.body?.from;
  const body = openSigned(
    signedAdvertiseSchema,
    input,
    partnerKey(s, String(from), 'advertisement', 'advertise'),
    `advertisement of ${from}`,
    'advertise',
  ).body;
  checkHeader(body, s.header, `advertisement of ${from}`, 'advertise');
  return body;
}

export interface Roster {
  signed: SignedRoster;
  ads: Map<string, AdvertiseBody>;
  hash: string;
}

/**
 * The coordinator's roster (U1): its config must be this session's, every advertisement must be
 * signed by its selected sender, and no key or seed commitment may repeat one seen before.
 */
export function readRoster(s: Session, input: unknown, history?: SecaggHistory): Roster {
  const signed = openSigned(signedRosterSchema, input, s.coordinatorKey, 'roster', 'share') as SignedRoster;
  checkHeader(signed.body, s.header, 'roster', 'share');
  if (secaggConfigId(signed.body.config) !== s.configId) {
    throw new SecaggError(
      'SECAGG_CONFIG_MISMATCH',
      'share',
      'the roster carries a secure-aggregation config other than the one this party derived from the manifest',
    );
  }
  const ads = new Map<string, AdvertiseBody>();
  const keys = new Set<string>();
  for (const ad of signed.body.advertisements) {
    const body = readAdvertise(s, ad);
    if (ads.has(body.from)) throw new SecaggError('SECAGG_DUPLICATE', 'share', `the roster lists ${body.from} twice`);
    for (const value of [body.maskPublicKey, body.sharePublicKey, body.seedCommitment]) {
      if (keys.has(value)) throw new SecaggError('SECAGG_KEY_REUSE', 'share', `the roster repeats a key or seed commitment (${body.from})`);
      keys.add(value);
    }
    history?.check(body, 'share');
    ads.set(body.from, body);
  }
  if (ads.size < s.config.minSurvivors) {
    throw new SecaggAttemptFailed('share', `only ${ads.size} partners advertised keys; at least ${s.config.minSurvivors} are needed`);
  }
  return { signed, ads, hash: rosterHash(signed.body.advertisements) };
}

export function readShares(s: Session, input: unknown): SharesBody {
  const from = (input as { body?: { from?: string } } | undefined)?.body?.from;
  const body = openSigned(signedSharesSchema, input, partnerKey(s, String(from), 'shares', 'share'), `shares of ${from}`, 'share').body;
  checkHeader(body, s.header, `shares of ${from}`, 'share');
  return body;
}

export function readMasked(s: Session, input: unknown, roster: string): MaskedBody {
  const from = (input as { body?: { from?: string } } | undefined)?.body?.from;
  const body = openSigned(signedMaskedSchema, input, partnerKey(s, String(from), 'masked upload', 'upload'), `masked upload of ${from}`, 'upload').body;
  checkHeader(body, s.header, `masked upload of ${from}`, 'upload');
  if (body.rosterHash !== roster) {
    throw new SecaggError('SECAGG_INCONSISTENT_ROSTER', 'upload', `${from} masked its upload against another roster than the one published`);
  }
  if (body.slots !== s.config.encoding.totalSlots) {
    throw new SecaggError('SECAGG_BAD_MESSAGE', 'upload', `${from} declares ${body.slots} slots, the encoding plan has ${s.config.encoding.totalSlots}`);
  }
  sortedUnique(body.maskedWith, `masked-with list of ${from}`, 'upload');
  return body;
}

export function readSurvivors(s: Session, input: unknown): { survivors: string[]; hash: string } {
  const body = openSigned(signedSurvivorsSchema, input, s.coordinatorKey, 'survivor set', 'consistency').body;
  checkHeader(body, s.header, 'survivor set', 'consistency');
  const survivors = sortedUnique(body.survivors, 'survivor set', 'consistency');
  for (const id of survivors) partnerKey(s, id, 'survivor', 'consistency');
  if (survivors.length < s.config.minSurvivors) {
    throw new SecaggAttemptFailed('consistency', `only ${survivors.length} partners uploaded; a sum needs at least ${s.config.minSurvivors}`);
  }
  return { survivors, hash: keySetHash('survivors', survivors) };
}

export function readConsistency(s: Session, input: unknown, stage: SecaggStage = 'consistency'): ConsistencyBody {
  const from = (input as SignedConsistency | undefined)?.body?.from;
  const body = openSigned(
    signedConsistencySchema,
    input,
    partnerKey(s, String(from), 'consistency signature', stage),
    `consistency signature of ${from}`,
    stage,
  ).body;
  checkHeader(body, s.header, `consistency signature of ${from}`, stage);
  return body;
}

/**
 * The unmask request (U4): its survivor set must be exactly the one this party signed, and it must
 * carry at least t valid consistency signatures over that same set — one over any other set proves
 * the coordinator showed different survivor sets to different partners (Bonawitz et al. 2017, round 3).
 */
export function readUnmask(s: Session, input: unknown, survivorsHash: string): { survivors: string[]; signers: string[] } {
  const body = openSigned(signedUnmaskSchema, input, s.coordinatorKey, 'unmask request', 'unmask').body;
  checkHeader(body, s.header, 'unmask request', 'unmask');
  const survivors = sortedUnique(body.survivors, 'unmask survivor set', 'unmask');
  if (keySetHash('survivors', survivors) !== survivorsHash) {
    throw new SecaggError('SECAGG_INCONSISTENT_SURVIVORS', 'unmask', 'the unmask request names a survivor set other than the one this party signed');
  }
  const signers = new Set<string>();
  for (const sig of body.consistency) {
    const c = readConsistency(s, sig, 'unmask');
    if (c.survivorsHash !== survivorsHash) {
      throw new SecaggError(
        'SECAGG_INCONSISTENT_SURVIVORS',
        'unmask',
        `partner ${c.from} signed a different survivor set: the coordinator showed different sets to different partners`,
      );
    }
    if (!survivors.includes(c.from)) throw new SecaggError('SECAGG_BAD_MESSAGE', 'unmask', `consistency signature of ${c.from}, who is not a survivor`);
    if (signers.has(c.from)) throw new SecaggError('SECAGG_DUPLICATE', 'unmask', `two consistency signatures of ${c.from}`);
    signers.add(c.from);
  }
  if (signers.size < s.config.threshold) {
    throw new SecaggAttemptFailed(
      'unmask',
      `only ${signers.size} survivors confirmed the survivor set; at least ${s.config.threshold} are needed before any share is revealed`,
    );
  }
  return { survivors, signers: [...signers].sort() };
}

export function readReveal(s: Session, input: unknown, survivorsHash: string): RevealBody {
  const from = (input as { body?: { from?: string } } | undefined)?.body?.from;
  const body = openSigned(signedRevealSchema, input, partnerKey(s, String(from), 'reveal', 'unmask'), `reveal of ${from}`, 'unmask').body;
  checkHeader(body, s.header, `reveal of ${from}`, 'unmask');
  if (body.survivorsHash !== survivorsHash) {
    throw new SecaggError('SECAGG_INCONSISTENT_SURVIVORS', 'unmask', `${from} revealed shares for another survivor set`);
  }
  const seeds = new Set(body.seedShares.map((x) => x.of));
  for (const k of body.keyShares) {
    if (seeds.has(k.of)) throw new SecaggError('SECAGG_DOUBLE_REVEAL', 'unmask', `${from} revealed both shares of ${k.of}`);
  }
  return body;
}
