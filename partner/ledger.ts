import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Identity } from '../src/crypto/identity.ts';
import { keyId } from '../src/crypto/identity.ts';
import { LedgerWriter } from '../src/privacy/ledger/writer.ts';
import { attestPayload, signerFromSecretKey, toBase64, type LedgerSigner } from '../src/privacy/ledger/signing.ts';
import { hashCustomerId, writeIdSidecar } from '../src/privacy/ledger/subject-rights.ts';
import type { PayloadInput, PolicyLimits } from '../src/privacy/ledger/entries.ts';
import type { DpReport } from '../src/federation/update-codec.ts';

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
    return new PartnerLedger(writer, signer, keyId(identity.signPublicKey), loadSalt(stateDir), join(stateDir, 'subject-ids'));
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

  round(
    jobId: string,
    round: number,
    r: { dp: DpReport; ciphertextHashes: string[]; rowsUsed: number; globalModelHash: string; coordinatorHead: { seq: number; hash: string } },
  ): void {
    this.writer.append('partner.round', {
      jobId,
      round,
      samplingRate: r.dp.samplingRate,
      noiseMultiplier: r.dp.noiseMultiplier,
      clipNorm: r.dp.clipNorm,
      steps: r.dp.steps,
      delta: r.dp.delta,
      epsilonSpent: r.dp.epsilonSpent,
      epsilonCumulative: r.dp.epsilonAfterRound,
      ciphertextHashes: r.ciphertextHashes,
      rowsUsed: r.rowsUsed,
      globalModelHash: r.globalModelHash,
      coordinatorHead: r.coordinatorHead,
    });
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
  record<T extends 'psi.party.list' | 'psi.party.hop' | 'psi.party.result' | 'vertical.release' | 'vertical.party.job'>(type: T, payload: PayloadInput<T>): void {
    this.writer.append(type, payload);
  }

  /** Attests a statement with this node's key (as acceptances are), records it here and returns it for the coordinator. */
  attest<P extends Record<string, unknown>>(payload: P): P & { attestation: { keyId: string; sig: string } } {
    return attestPayload(payload, this.signer);
  }

  finalModel(jobId: string, modelHash: string, rounds: number, privacy: { epsilon: number; delta: number } | null): void {
    this.writer.append('model.final', { jobId, modelHash, rounds, partners: privacy ? [{ partner: this.self, ...privacy }] : [] });
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
