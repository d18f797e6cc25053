/**
 * Key holders' side: check the evidence of an attempt end to end, recover the secrets whose shares
 * were revealed (verifying each against its commitment), and remove from the decrypted sum what does
 * not cancel — the survivors' self-masks and the pairwise masks survivors share with partners that
 * dropped before uploading. The result is Σ_{u ∈ U3} x_u mod t, the exact sum of the survivors'
 * encoded inputs.
 */
import type { PublicIdentity } from '../identity.ts';
import type { SecaggConfig } from './config.ts';
import type { SecaggEvidence } from './coordinator.ts';
import { SecaggAttemptFailed, SecaggError } from './errors.ts';
import type { SecaggHistory } from './history.ts';
import { applyPairMask, applySelfMask, assertResidues, pairSign } from './masking.ts';
import type { MaskedBody, RevealBody } from './messages.ts';
import { seedCommitment } from './partner.ts';
import { holdersOf, openSession, readMasked, readRoster, readReveal, readSurvivors, readUnmask, type Roster, type Session } from './session.ts';
import { MaskAccumulator } from './prg.ts';
import { recoverSecret } from './shamir.ts';
import { x25519PublicKey } from './x25519.ts';

const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

export interface CheckedEvidence {
  roster: Roster;
  survivors: string[];
  masked: Map<string, MaskedBody>;
  signers: string[];
  reveals: RevealBody[];
  /** Partners some survivor masked with that did not upload: their mask keys are recovered. */
  dropped: string[];
}

/** Every check a key holder runs before trusting an attempt's evidence; throws a SecaggError naming the first failure. */
export function checkEvidence(s: Session, input: SecaggEvidence, history?: SecaggHistory): CheckedEvidence {
  const roster = readRoster(s, input.roster, history);
  const { survivors, hash } = readSurvivors(s, input.survivors);
  const { signers } = readUnmask(s, input.unmask, hash);
  const masked = new Map<string, MaskedBody>();
  for (const m of input.masked ?? []) {
    const body = readMasked(s, m, roster.hash);
    if (masked.has(body.from)) throw new SecaggError('SECAGG_DUPLICATE', 'reconstruct', `two masked uploads of ${body.from}`);
    masked.set(body.from, body);
  }
  if (masked.size !== survivors.length || survivors.some((u) => !masked.has(u))) {
    throw new SecaggError('SECAGG_SUM_MISMATCH', 'reconstruct', 'the signed uploads do not match the survivor set the coordinator published');
  }
  const inSum = new Set(survivors);
  for (const [u, body] of masked) {
    const neighbours = s.neighbours.get(u)!;
    for (const v of body.maskedWith) {
      if (!neighbours.has(v) || !roster.ads.has(v))
        throw new SecaggError('SECAGG_BAD_MESSAGE', 'reconstruct', `${u} claims a mask with ${v}, which is not an advertised neighbour`);
      // Masks between two survivors cancel only if both added them.
      if (inSum.has(v) && !masked.get(v)!.maskedWith.includes(u)) {
        throw new SecaggError(
          'SECAGG_BAD_INBOX',
          'reconstruct',
          `${u} masked with ${v} but ${v} did not mask with ${u}: the coordinator delivered different inboxes`,
        );
      }
    }
  }
  const reveals: RevealBody[] = [];
  const seen = new Set<string>();
  for (const r of input.reveals ?? []) {
    const body = readReveal(s, r, hash);
    if (!signers.includes(body.from))
      throw new SecaggError('SECAGG_UNKNOWN_PARTNER', 'reconstruct', `${body.from} revealed shares without confirming the survivor set`);
    if (seen.has(body.from)) throw new SecaggError('SECAGG_DUPLICATE', 'reconstruct', `two reveals of ${body.from}`);
    seen.add(body.from);
    for (const x of body.keyShares) {
      if (inSum.has(x.of)) throw new SecaggError('SECAGG_DOUBLE_REVEAL', 'reconstruct', `${body.from} revealed the mask-key share of survivor ${x.of}`);
    }
    for (const x of body.seedShares) {
      if (!inSum.has(x.of))
        throw new SecaggError('SECAGG_BAD_MESSAGE', 'reconstruct', `${body.from} revealed the seed share of ${x.of}, which is not a survivor`);
    }
    reveals.push(body);
  }
  const dropped = [...new Set([...masked.values()].flatMap((m) => m.maskedWith).filter((v) => !inSum.has(v)))].sort();
  return { roster, survivors, masked, signers, reveals, dropped };
}

async function recover(s: Session, ev: CheckedEvidence, of: string, kind: 'seed' | 'key'): Promise<Uint8Array> {
  const holders = new Set(holdersOf(s, of, new Set(ev.roster.ads.keys())));
  const shares = ev.reveals
    .filter((r) => holders.has(r.from))
    .flatMap((r) => (kind === 'seed' ? r.seedShares : r.keyShares).filter((x) => x.of === of).map((x) => fromB64(x.share)));
  const what = kind === 'seed' ? `self-mask seed of ${of}` : `mask key of ${of}`;
  if (shares.length < s.config.threshold) {
    throw new SecaggAttemptFailed('reconstruct', `only ${shares.length} shares of the ${what} were revealed; ${s.config.threshold} are needed`);
  }
  const secret = await recoverSecret(shares);
  const ad = ev.roster.ads.get(of)!;
  const ok = kind === 'seed' ? seedCommitment(secret) === ad.seedCommitment : sameBytes(x25519PublicKey(secret), fromB64(ad.maskPublicKey));
  if (!ok)
    throw new SecaggError('SECAGG_BAD_SHARES', 'reconstruct', `the revealed shares do not reconstruct the committed ${what}: a responder sent a wrong share`);
  return secret;
}

export interface UnmaskInput {
  config: SecaggConfig;
  partners: readonly PublicIdentity[];
  coordinatorSignPublicKey: string;
  evidence: SecaggEvidence;
  /** The decrypted sum (BfvCipher.decryptResidues of the published sum blob). */
  residues: Float64Array;
  /** Summands the sum blob declares (inspectBfvBlob); must equal the survivors. */
  sumSummands?: number;
  history?: SecaggHistory;
}

export interface UnmaskResult {
  /** Σ over survivors of their encoded vectors, mod t (decode with decodeSums(plan, residues, survivors.length)). */
  residues: Float64Array;
  survivors: string[];
  dropped: string[];
}

export async function unmaskAggregate(input: UnmaskInput): Promise<UnmaskResult> {
  const s = openSession(input.config, input.partners, input.coordinatorSignPublicKey);
  const ev = checkEvidence(s, input.evidence, input.history);
  if (input.sumSummands !== undefined && input.sumSummands !== ev.survivors.length) {
    throw new SecaggError(
      'SECAGG_SUM_MISMATCH',
      'reconstruct',
      `the published sum holds ${input.sumSummands} uploads, the survivor set ${ev.survivors.length}`,
    );
  }
  const t = s.config.he.plainModulus;
  if (!(input.residues instanceof Float64Array) || input.residues.length !== s.config.encoding.totalSlots) {
    throw new SecaggError('SECAGG_BAD_MESSAGE', 'reconstruct', `the decrypted sum must have ${s.config.encoding.totalSlots} slots`);
  }
  assertResidues(input.residues, t, 'decrypted sum');
  const acc = new MaskAccumulator(Float64Array.from(input.residues), t);
  for (const u of ev.survivors) {
    const seed = await recover(s, ev, u, 'seed');
    applySelfMask(acc, s.config, u, seed, -1);
    seed.fill(0);
  }
  for (const v of ev.dropped) {
    const key = await recover(s, ev, v, 'key');
    for (const u of ev.survivors) {
      if (!ev.masked.get(u)!.maskedWith.includes(v)) continue;
      // u added pairSign(u, v)·PRG(k_uv); take it out again.
      applyPairMask(acc, s.config, { a: u, b: v }, key, fromB64(ev.roster.ads.get(u)!.maskPublicKey), pairSign(u, v) === 1 ? -1 : 1);
    }
    key.fill(0);
  }
  return { residues: acc.finish(), survivors: ev.survivors, dropped: ev.dropped };
}
