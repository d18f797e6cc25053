import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Identity } from '../src/crypto/identity.ts';
import { keyId } from '../src/crypto/identity.ts';
import { LedgerWriter } from '../src/privacy/ledger/writer.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import type { HeadPointer } from '../src/privacy/ledger/head.ts';
import { attestPayload, signerFromSecretKey, toBase64, type LedgerSigner } from '../src/privacy/ledger/signing.ts';
import { hashCustomerId, writeIdSidecar } from '../src/privacy/ledger/subject-rights.ts';
import { parsePayload, type AttemptReleases, type PayloadInput, type PayloadOf, type PolicyLimits } from '../src/privacy/ledger/entries.ts';
import { roundRecord } from '../src/federation/release-records.ts';
import type { ModelSelection } from '../src/federation/workload.ts';

const roundKey = (jobId: string, round: number) => `${jobId} ${round}`;
const selectionKey = (jobId: string) => `${jobId} selection`;

export interface ConsentCounts {
  rowsUsed: number;
  rowsExcludedNoConsent: number;
  rowsExcludedWithdrawn: number;
  /** Ids of the rows used, for data-subject requests; only their salted hashes are written. */
  ids: string[] | null;
}

/**
 * A partner's own ledger of what it did with its data: acceptances, consent counts, every DP
 * release with its ε, refusals and the final model. It is signed by the node's key, so the
 * partner can hand it to its own auditors and `fedmark audit` can cross-check it against the
 * coordinator's job ledger.
 */
export class PartnerLedger {
  private constructor(
    private readonly writer: LedgerWriter,
    private readonly signer: LedgerSigner,
    private readonly self: string,
    private readonly salt: Buffer,
    private readonly sidecarDir: string,
    /** `jobId round` of every partner.round and partner.participation entry (and `jobId selection` of every partner.selection) already in the ledger: a node replaying the job after a restart does not record one twice. */
    private readonly roundsRecorded: Set<string>,
  ) {}

  static open(path: string, identity: Identity, stateDir: string): PartnerLedger {
    const signer = signerFromSecretKey(identity.signSecretKey);
    const writer = LedgerWriter.open(path, signer, { repairTruncatedTail: true });
    if (writer.lastSeq < 0) {
      writer.append('ledger.genesis', {
        ledgerId: identity.name,
        role: 'partner',
        owner: { name: identity.name, keyId: keyId(identity.signPublicKey), signPublicKey: toBase64(identity.signPublicKey) },
      });
    }
    const entries = readLedger(path).entries;
    const recorded = new Set([
      ...entries
        .filter((e) => e.type === 'partner.round' || e.type === 'partner.participation')
        .map((e) => roundKey((e.payload as { jobId: string }).jobId, (e.payload as { round: number }).round)),
      ...entries.filter((e) => e.type === 'partner.selection').map((e) => selectionKey((e.payload as { jobId: string }).jobId)),
    ]);
    return new PartnerLedger(writer, signer, keyId(identity.signPublicKey), loadSalt(stateDir), join(stateDir, 'subject-ids'), recorded);
  }

  /**
   * This node's own last answer to a job — acceptance, refusal or withdrawal — from its ledger file:
   * what it agreed to is its own record, never the coordinator's status.
   */
  answerTo(
    jobId: string,
  ):
    | { type: 'partner.acceptance'; payload: PayloadOf<'partner.acceptance'> }
    | { type: 'partner.refusal'; payload: PayloadOf<'partner.refusal'> }
    | { type: 'partner.withdraw'; payload: PayloadOf<'partner.withdraw'> & { manifestHash: string } }
    | null {
    let found: ReturnType<PartnerLedger['answerTo']> = null;
    let manifestHash = '';
    for (const e of readLedger(this.writer.path).entries) {
      if (e.author !== this.self || (e.payload as { jobId?: string }).jobId !== jobId) continue;
      if (e.type === 'partner.acceptance' || e.type === 'partner.refusal') {
        const p = parsePayload(e.type, e.payload, e.schemaVersion);
        if (!p.success) continue;
        manifestHash = p.data.manifestHash;
        found = { type: e.type, payload: p.data } as unknown as NonNullable<typeof found>;
      } else if (e.type === 'partner.withdraw') {
        const p = parsePayload('partner.withdraw', e.payload, e.schemaVersion);
        if (p.success) found = { type: 'partner.withdraw', payload: { ...p.data, manifestHash } };
      }
    }
    return found;
  }

  /** The attested acceptance, recorded here and sent to the coordinator to record in the job ledger. */
  acceptance(jobId: string, manifestHash: string, policy: PolicyLimits): PayloadInput<'partner.acceptance'> {
    const statement = attestPayload({ jobId, partner: this.self, manifestHash, policy }, this.signer);
    this.writer.append('partner.acceptance', statement);
    return statement;
  }

  refusal(jobId: string, manifestHash: string, reason: string, policy: PolicyLimits): PayloadInput<'partner.refusal'> {
    const statement = attestPayload({ jobId, partner: this.self, manifestHash, code: 'POLICY', reason, policy }, this.signer);
    this.writer.append('partner.refusal', statement);
    return statement;
  }

  consentUsage(jobId: string, c: ConsentCounts): void {
    const sidecar = c.ids ? writeIdSidecar(this.sidecarDir, jobId, c.ids, this.salt) : undefined;
    this.writer.append('consent.usage', {
      jobId,
      partner: this.self,
      rowsUsed: c.rowsUsed,
      rowsExcludedNoConsent: c.rowsExcludedNoConsent,
      rowsExcludedWithdrawn: c.rowsExcludedWithdrawn,
      ...(sidecar ? { sidecar } : {}),
    });
  }

  /** What this node released in one attempt, written before the upload leaves (so a release that never arrives is still on record). */
  release(jobId: string, round: number, kind: string, r: AttemptReleases): void {
    this.writer.append('partner.release', { jobId, round, kind, ...r });
  }

  /** A round whose aggregate this node applied, with the attempt it took part in and the coordinator head it witnessed. */
  round(
    jobId: string,
    round: number,
    r: { releases: AttemptReleases; rowsUsed: number; globalModelHash: string; coordinatorHead: { seq: number; hash: string } },
  ): void {
    if (this.roundsRecorded.has(roundKey(jobId, round))) return;
    const { partner: _self, ...rec } = roundRecord(r.releases);
    this.writer.append('partner.round', {
      jobId,
      round,
      ...rec,
      rowsUsed: r.rowsUsed,
      globalModelHash: r.globalModelHash,
      coordinatorHead: r.coordinatorHead,
    });
    this.roundsRecorded.add(roundKey(jobId, round));
  }

  /** The model selection this node's state made after applying `round` (early stopping): once per job. */
  selection(jobId: string, round: number, selection: ModelSelection, globalModelHash: string): void {
    const key = selectionKey(jobId);
    if (this.roundsRecorded.has(key)) return;
    this.writer.append('partner.selection', { jobId, partner: this.self, round, selection, globalModelHash });
    this.roundsRecorded.add(key);
  }

  /** A round of a job without differential privacy this node took part in: what it sent and the state it computed (no ε bounds it). */
  participation(
    jobId: string,
    round: number,
    r: { ciphertextHashes: string[]; rowsUsed: number; globalModelHash: string; coordinatorHead: { seq: number; hash: string } },
  ): void {
    if (this.roundsRecorded.has(roundKey(jobId, round))) return;
    this.writer.append('partner.participation', { jobId, partner: this.self, round, ...r });
    this.roundsRecorded.add(roundKey(jobId, round));
  }

  budgetRefusal(jobId: string, round: number, requestedEpsilon: number, remainingEpsilon: number, reason: string): void {
    this.writer.append('budget.refusal', { jobId, partner: this.self, round, requestedEpsilon: Math.max(0, requestedEpsilon), remainingEpsilon, reason });
  }

  /** Customers who withdrew consent: recorded by salted hash only, with the running total. */
  consentWithdrawal(customerIds: string[], totalWithdrawn: number): void {
    const idHashes = [...new Set(customerIds.map((id) => hashCustomerId(id, this.salt)))].sort();
    this.writer.append('consent.withdrawal', { partner: this.self, idHashes, count: idHashes.length, totalWithdrawn, effectiveFrom: new Date().toISOString() });
  }

  withdrawal(jobId: string, reason: string, afterRound: number): PayloadInput<'partner.withdraw'> {
    const statement = attestPayload({ jobId, partner: this.self, reason, afterRound }, this.signer);
    this.writer.append('partner.withdraw', statement);
    return statement;
  }

  /** An entry of a vertical job (psi.party.*, vertical.release, vertical.party.job), validated by the writer like every other. */
  record<T extends 'psi.party.list' | 'psi.party.hop' | 'psi.party.result' | 'vertical.release' | 'vertical.party.job'>(
    type: T,
    payload: PayloadInput<T>,
  ): void {
    this.writer.append(type, payload);
  }

  /** Attests a statement with this node's key (as acceptances are), records it here and returns it for the coordinator. */
  attest<P extends Record<string, unknown>>(payload: P): P & { attestation: { keyId: string; sig: string } } {
    return attestPayload(payload, this.signer);
  }

  /** The node stops for good: the statement the coordinator records in the job ledger. */
  leave(jobId: string, reason: string, afterRound: number): PayloadInput<'partner.leave'> {
    const statement = attestPayload({ jobId, partner: this.self, reason, afterRound }, this.signer);
    this.writer.append('partner.leave', statement);
    return statement;
  }

  finalModel(jobId: string, modelHash: string, rounds: number, privacy: { epsilon: number; delta: number } | null): void {
    this.writer.append('model.final', { jobId, modelHash, rounds, partners: privacy ? [{ partner: this.self, ...privacy }] : [] });
  }

  /** A scoring run (a batch file, or a sealed window of the scoring service); see docs/SCORING.md. */
  modelScoring(run: Omit<PayloadInput<'model.scoring'>, 'partner'>): void {
    this.writer.append('model.scoring', { ...run, partner: this.self });
  }

  /** Salted hash of a customer id, as sidecars and withdrawals record it. */
  idHash(customerId: string): string {
    return hashCustomerId(customerId, this.salt);
  }

  /** Directory of this partner's id sidecars. */
  get sidecarDirectory(): string {
    return this.sidecarDir;
  }

  /**
   * The coordinator's signed head, witnessed after the job's final entries: a later rewrite of the
   * coordinator's ledger up to this head — entries cut off, replaced or appended in their place — no
   * longer matches it, and the head's signature shows the coordinator itself stated it.
   */
  witness(jobId: string, coordinatorHead: HeadPointer, state: string): void {
    this.writer.append('partner.witness', { jobId, partner: this.self, state, coordinatorHead });
  }

  close(): void {
    this.writer.close();
  }
}

/** A partner-local secret: salted id hashes are useless to anyone without it. */
function loadSalt(stateDir: string): Buffer {
  mkdirSync(stateDir, { recursive: true });
  const path = join(stateDir, 'subject-salt');
  if (existsSync(path)) return readFileSync(path);
  const salt = randomBytes(32);
  writeFileSync(path, salt, { mode: 0o600, flag: 'wx' });
  return salt;
}
