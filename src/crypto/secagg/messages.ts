/**
 * Every message of the secure-aggregation stages, as zod schemas (one schema = validation + type), and
 * their Ed25519 signatures. Partner messages are signed by the partner's identity; the coordinator's
 * relayed views (roster, inbox, survivor set, unmask request) are signed by the coordinator, so a lie
 * about who took part is a signed, attributable statement. Shares travel sealed (opaque to the
 * coordinator); everything else the coordinator may read.
 *
 * Stages (Bonawitz et al., CCS 2017, Fig. 4; round numbers in brackets):
 *   advertise    partner → coordinator   fresh mask and share-encryption public keys [0]
 *   roster       coordinator → partners  the advertisements it collected (U1)
 *   shares       partner → coordinator   Shamir shares of its mask key and seed, sealed per holder [1]
 *   inbox        coordinator → partner   the sealed shares addressed to it, and who shared (U2)
 *   masked       partner → coordinator   commitment to its masked, encrypted upload [2]
 *   survivors    coordinator → partners  the set of partners whose upload is in the sum (U3)
 *   consistency  partner → coordinator   its signature on that set [3]
 *   unmask       coordinator → partners  the set and ≥ t signatures on it (U4)
 *   reveal       partner → coordinator   seed shares of survivors, key shares of the dropped [4]
 */
import { z } from 'zod';
import { canonicalBytes, sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { signBytes, verifyBytes, type Identity } from '../identity.ts';
import { secaggConfigSchema, SECAGG_PROTOCOL } from './config.ts';
import { SecaggError, type SecaggStage } from './errors.ts';

const keyId = z.string().regex(/^[0-9a-f]{32}$/, 'must be a 32-hex key id');
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex characters');
const b64 = (maxBytes: number) =>
  z
    .string()
    .max(Math.ceil(maxBytes / 3) * 4 + 4)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const b64Exact = (bytes: number) => b64(bytes).refine((s) => Buffer.from(s, 'base64').length === bytes, `must be base64 of ${bytes} bytes`);
const keyIdList = z.array(keyId).max(1 << 16);

/** A sealed share (sealed-share.ts): 9-byte prefix, 12-byte nonce, two 33-byte shares, 16-byte tag. */
const SEALED_SHARE_MAX = 9 + 12 + 66 + 16;
/** A Shamir share of a 32-byte secret (plus its x-coordinate byte). */
export const SHARE_BYTES = 33;

const header = {
  configId: hex64,
  jobId: z.string().min(1).max(200),
  round: z.number().int().min(0),
  attempt: z.number().int().min(0),
};

export const advertiseBodySchema = z
  .object({
    type: z.literal('advertise'),
    ...header,
    from: keyId,
    maskPublicKey: b64Exact(32),
    sharePublicKey: b64Exact(32),
    /** sha256 of the self-mask seed (domain-separated): checks reconstruction, catches reuse. */
    seedCommitment: hex64,
  })
  .strict();

const signed = <T extends z.ZodTypeAny>(body: T) => z.object({ body, signature: b64Exact(64) }).strict();

export const signedAdvertiseSchema = signed(advertiseBodySchema);

export const rosterBodySchema = z
  .object({ type: z.literal('roster'), ...header, config: secaggConfigSchema, advertisements: z.array(signedAdvertiseSchema).max(1 << 16) })
  .strict();

export const sharesBodySchema = z
  .object({
    type: z.literal('shares'),
    ...header,
    from: keyId,
    /** Hash of the advertisements this partner accepted: the roster it acted on. */
    rosterHash: hex64,
    shares: z.array(z.object({ to: keyId, sealed: b64(SEALED_SHARE_MAX) }).strict()).max(255),
  })
  .strict();

export const inboxBodySchema = z
  .object({
    type: z.literal('inbox'),
    ...header,
    to: keyId,
    rosterHash: hex64,
    /** U2: every partner whose shares the coordinator accepted (sorted). */
    sharers: keyIdList,
    shares: z.array(z.object({ from: keyId, sealed: b64(SEALED_SHARE_MAX) }).strict()).max(255),
  })
  .strict();

export const maskedBodySchema = z
  .object({
    type: z.literal('masked'),
    ...header,
    from: keyId,
    rosterHash: hex64,
    /** The partners whose pairwise masks this upload carries (sorted): U2 ∩ neighbours. */
    maskedWith: keyIdList,
    /** sha256 (hex) of the BFV blob uploaded with this message. */
    blobSha256: hex64,
    slots: z.number().int().min(1),
  })
  .strict();

export const survivorsBodySchema = z.object({ type: z.literal('survivors'), ...header, survivors: keyIdList }).strict();

export const consistencyBodySchema = z.object({ type: z.literal('consistency'), ...header, from: keyId, survivorsHash: hex64 }).strict();
export const signedConsistencySchema = signed(consistencyBodySchema);

export const unmaskBodySchema = z
  .object({ type: z.literal('unmask'), ...header, survivors: keyIdList, consistency: z.array(signedConsistencySchema).max(1 << 16) })
  .strict();

const shareList = z.array(z.object({ of: keyId, share: b64Exact(SHARE_BYTES) }).strict()).max(255);
export const revealBodySchema = z
  .object({ type: z.literal('reveal'), ...header, from: keyId, survivorsHash: hex64, seedShares: shareList, keyShares: shareList })
  .strict();

export const signedRosterSchema = signed(rosterBodySchema);
export const signedSharesSchema = signed(sharesBodySchema);
export const signedInboxSchema = signed(inboxBodySchema);
export const signedMaskedSchema = signed(maskedBodySchema);
export const signedSurvivorsSchema = signed(survivorsBodySchema);
export const signedUnmaskSchema = signed(unmaskBodySchema);
export const signedRevealSchema = signed(revealBodySchema);

export type AdvertiseBody = z.infer<typeof advertiseBodySchema>;
export type RosterBody = z.infer<typeof rosterBodySchema>;
export type SharesBody = z.infer<typeof sharesBodySchema>;
export type InboxBody = z.infer<typeof inboxBodySchema>;
export type MaskedBody = z.infer<typeof maskedBodySchema>;
export type SurvivorsBody = z.infer<typeof survivorsBodySchema>;
export type ConsistencyBody = z.infer<typeof consistencyBodySchema>;
export type UnmaskBody = z.infer<typeof unmaskBodySchema>;
export type RevealBody = z.infer<typeof revealBodySchema>;
export interface Signed<T> {
  body: T;
  signature: string;
}
export type SignedAdvertise = Signed<AdvertiseBody>;
export type SignedRoster = Signed<RosterBody>;
export type SignedShares = Signed<SharesBody>;
export type SignedInbox = Signed<InboxBody>;
export type SignedMasked = Signed<MaskedBody>;
export type SignedSurvivors = Signed<SurvivorsBody>;
export type SignedConsistency = Signed<ConsistencyBody>;
export type SignedUnmask = Signed<UnmaskBody>;
export type SignedReveal = Signed<RevealBody>;

/** Header fields shared by every body. */
export type MessageHeader = Pick<AdvertiseBody, 'configId' | 'jobId' | 'round' | 'attempt'>;

/** The bytes a signature covers: canonical JSON (RFC 8785) of the body under the protocol's domain tag. */
function signingBytes(body: unknown): Uint8Array {
  return canonicalBytes({ domain: SECAGG_PROTOCOL, body });
}

export function signBody<T>(body: T, identity: Identity): Signed<T> {
  return { body, signature: signBytes(signingBytes(body), identity) };
}

/**
 * Parses untrusted input with `schema` and checks its signature against `signPublicKey` (base64).
 * Throws SECAGG_BAD_MESSAGE (malformed) or SECAGG_BAD_SIGNATURE, naming `what`.
 */
export function openSigned<S extends z.ZodTypeAny>(schema: S, input: unknown, signPublicKey: string, what: string, stage: SecaggStage): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SecaggError('SECAGG_BAD_MESSAGE', stage, `${what}: malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  const msg = parsed.data as { body: unknown; signature: string };
  if (!verifyBytes(signingBytes(msg.body), msg.signature, signPublicKey)) {
    throw new SecaggError('SECAGG_BAD_SIGNATURE', stage, `${what}: signature does not verify`);
  }
  return parsed.data;
}

/** Throws SECAGG_WRONG_ATTEMPT unless the body belongs to this job, round, attempt and config. */
export function checkHeader(body: MessageHeader, expected: MessageHeader, what: string, stage: SecaggStage): void {
  if (body.jobId !== expected.jobId || body.round !== expected.round || body.attempt !== expected.attempt) {
    throw new SecaggError(
      'SECAGG_WRONG_ATTEMPT',
      stage,
      `${what} belongs to job ${body.jobId} round ${body.round} attempt ${body.attempt}, not job ${expected.jobId} round ${expected.round} attempt ${expected.attempt}`,
    );
  }
  if (body.configId !== expected.configId) {
    throw new SecaggError(
      'SECAGG_WRONG_ATTEMPT',
      stage,
      `${what} was made under secure-aggregation config ${body.configId.slice(0, 16)}…, expected ${expected.configId.slice(0, 16)}…`,
    );
  }
}

/** Hash of a set of key ids (sorted first): what consistency signatures and reveals commit to. */
export function keySetHash(kind: string, ids: readonly string[]): string {
  return sha256Canonical({ kind, ids: [...ids].sort() });
}

/** Hash of the advertisements a partner acted on. */
export function rosterHash(ads: readonly SignedAdvertise[]): string {
  return sha256Canonical([...ads].map((a) => a.body).sort((a, b) => (a.from < b.from ? -1 : 1)));
}
