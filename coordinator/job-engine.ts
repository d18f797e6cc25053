import type { Logger } from 'pino';
import { sha256Hex } from '../src/util/hash.ts';
import { accumulate } from '../src/federation/aggregation.ts';
import { verifySignedManifest, type JobManifest, type SignedManifest } from '../src/federation/manifest.ts';
import { DomainError } from '../src/federation/protocol/errors.ts';
import type { JobStatus } from '../src/federation/protocol/schemas.ts';
import { admitDecline, admitHashReport, admitUpload, roundRules, transition, type Effect, type RoundEvent } from '../src/federation/round-machine.ts';
import { openSecureSum, type SecureSumScheme } from '../src/federation/secure-sum.ts';
import { checkSubmission, maxSubmissionBytes } from '../src/federation/submission-check.ts';
import { decodeUpdate } from '../src/federation/update-codec.ts';
import type { ModelSelection, RoundPlan, WorkloadRegistry } from '../src/federation/workload.ts';
import { MASKED_PART, maskedWirePlan, roundEncoding } from '../src/federation/secagg/round-config.ts';
import type { SecaggEngine } from './secagg-engine.ts';
import type { RoundContents, SubmissionRecord } from '../src/federation/submission-record.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import type { LedgerEntry, PayloadInput } from '../src/privacy/ledger/entries.ts';
import type { HeadPointer } from '../src/privacy/ledger/head.ts';
import { genesisProblem } from '../src/federation/protocol/coordinator-proofs.ts';
import { entryHash, verifyAttestation } from '../src/privacy/ledger/signing.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { sha256Canonical } from '../src/privacy/ledger/canonical.ts';
import type { CoordinatorStore, JobRow } from './store.ts';
import type { JobLedgers } from './job-ledgers.ts';
import { jobView, roundView } from './job-view.ts';
import { RoundEffects, type JobContext } from './round-effects.ts';
import { storageErrorCode } from '../src/util/storage-errors.ts';

/**
 * The coordinator's protocol logic on top of the store. Each command validates and persists what a
 * party sent, then hands the matching event to the round machine (src/federation/round-machine.ts),
 * whose effects RoundEffects carries out. It adds ciphertexts (federation/aggregation.ts) and never
 * decrypts: it has no key to decrypt with.
 */
export class JobEngine {
  private readonly schemes = new Map<string, Promise<SecureSumScheme>>();
  /** The schemes opened so far, for the synchronous ledger writes that record a masked attempt's config. */
  private readonly opened = new Map<string, SecureSumScheme>();
  private readonly contexts = new Map<string, JobContext>();
  private readonly genesisEntries = new Map<string, LedgerEntry>();
  private readonly effects: RoundEffects;
  private readonly changeListeners = new Set<(jobId: string) => void>();
  private secagg: SecaggEngine | null = null;

  constructor(
    private readonly store: CoordinatorStore,
    private readonly ledger: JobLedgers,
    private readonly coordinatorKeyId: string,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    private readonly workloads: WorkloadRegistry = builtinWorkloads,
  ) {
    this.effects = new RoundEffects(
      store,
      ledger,
      log,
      () => this.now(),
      (jobId) => this.opened.get(jobId)?.masking,
    );
  }

  /** Manifest, workload and round rules of a stored job (resolved once per process). */
  context(jobId: string): JobContext {
    let ctx = this.contexts.get(jobId);
    if (!ctx) {
      const manifest = this.signedManifest(jobId).manifest;
      const workload = this.workloads.resolve(manifest);
      ctx = { jobId, manifest, workload, rules: roundRules(manifest, workload) };
      this.contexts.set(jobId, ctx);
    }
    return ctx;
  }

  manifest(jobId: string): JobManifest {
    return this.context(jobId).manifest;
  }

  /** The manifest exactly as its owner signed it. */
  signedManifest(jobId: string): SignedManifest {
    return JSON.parse(this.requireJob(jobId).signed_manifest) as SignedManifest;
  }

  /** The job's aggregation scheme (opened once per process). */
  schemeOf(jobId: string): Promise<SecureSumScheme> {
    return this.scheme(jobId);
  }

  /** Masked aggregation's stage engine (coordinator/secagg-engine.ts), set by the server. */
  useSecagg(secagg: SecaggEngine): void {
    this.secagg = secagg;
  }

  /**
   * What uploads to `round` are checked against: the workload's plan, or for a masked job the plan
   * with its parts replaced by the one masked vector (secagg/round-config.ts).
   */
  private async wirePlan(jobId: string, round: number): Promise<RoundPlan> {
    const { manifest, rules } = this.context(jobId);
    const plan = rules.plan(round);
    const masking = (await this.scheme(jobId)).masking;
    return masking ? maskedWirePlan(plan, roundEncoding(manifest, plan, masking.plainModulus)) : plan;
  }

  private scheme(jobId: string): Promise<SecureSumScheme> {
    let s = this.schemes.get(jobId);
    if (!s) {
      s = openSecureSum(this.manifest(jobId).encryption);
      s.then(
        (x) => this.opened.set(jobId, x),
        () => undefined,
      );
      this.schemes.set(jobId, s);
    }
    return s;
  }

  requireJob(jobId: string): JobRow {
    const job = this.store.getJob(jobId);
    if (!job) throw new DomainError('UNKNOWN_JOB', `no job with id "${jobId}"`);
    return job;
  }

  private requireActive(job: JobRow): void {
    if (job.state === 'completed' || job.state === 'halted' || job.state === 'failed') {
      throw new DomainError('JOB_CLOSED', `job "${job.job_id}" is ${job.state}${job.status_reason ? `: ${job.status_reason}` : ''}`);
    }
  }

  /** Keys allowed to speak for a job: the owner and the partners named in the manifest. */
  lookupKey(jobId: string, keyId: string): { signPublicKey: string; role: 'owner' | 'partner' } | undefined {
    if (!this.store.getJob(jobId)) return undefined;
    const m = this.manifest(jobId);
    if (m.owner.keyId === keyId) return { signPublicKey: m.owner.signPublicKey, role: 'owner' };
    const p = m.partners.find((x) => x.keyId === keyId);
    return p ? { signPublicKey: p.signPublicKey, role: 'partner' } : undefined;
  }

  /** Hands an event to the round machine and carries out what follows. */
  private drive(jobId: string, event: RoundEvent): void {
    let effects: Effect[] = [];
    try {
      const ctx = this.context(jobId);
      const now = this.now();
      const view = jobView(this.store, jobId, ctx.rules, ctx.manifest.partners.length);
      ({ effects } = transition(this.secagg ? this.secagg.gate(jobId, view) : view, event, ctx.rules, now));
      this.effects.run(ctx, effects);
    } finally {
      // Every command committed its own writes before it drives the machine; a tick changes nothing without effects.
      if (event.type !== 'tick' || effects.length > 0) this.notifyChanged(jobId);
    }
  }

  /** Tells the change listeners that `jobId` may have changed (the relay engine calls it after storing a message). */
  notifyChanged(jobId: string): void {
    for (const l of this.changeListeners) l(jobId);
  }

  /**
   * Subscribes to "this job may have changed": raised after every command's committed step and every
   * tick that moved the job (the long-poll route wakes its held requests on it). Returns the unsubscribe.
   */
  onChange(listener: (jobId: string) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Drives the machine after a message was committed. A storage failure here (a full disk while
   * closing the round) must not turn an accepted message into an error answer — the sender would
   * treat it as lost. The step is redone by the next tick (its ledger appends are redo-safe).
   */
  private driveAccepted(jobId: string, event: RoundEvent): void {
    try {
      this.drive(jobId, event);
    } catch (err) {
      if (!storageErrorCode(err)) throw err;
      this.log.error({ err, jobId, event: event.type }, 'accepted, but the step after it failed on storage: the tick retries it');
    }
  }

  /** Hands a relay round's event (a sender delivered everything it owes the round) to the round machine, as for any accepted message. */
  dispatch(jobId: string, event: RoundEvent): void {
    this.driveAccepted(jobId, event);
  }

  /** Moves a job forward: opens, closes, retries or finishes rounds. Safe to call any time, any number of times. */
  advance(jobId: string): void {
    this.requireJob(jobId);
    this.drive(jobId, { type: 'tick' });
  }

  async createJob(signed: SignedManifest, genesis: LedgerEntry): Promise<JobManifest> {
    const manifest = verifySignedManifest(signed);
    if (this.store.getJob(manifest.jobId)) throw new DomainError('JOB_EXISTS', `job "${manifest.jobId}" already exists`);
    this.checkGenesis(manifest, genesis);
    // The workload must be one this coordinator runs, and every round's plan must hold, before anything is stored.
    const workload = this.workloads.resolve(manifest);
    const rules = roundRules(manifest, workload);
    for (let r = 1; r <= rules.totalRounds; r++) rules.plan(r);
    // Opening the scheme checks the HE parameters (128-bit security) before anything is stored.
    const scheme = await openSecureSum(manifest.encryption);
    this.store.transaction(() => {
      this.store.insertJob({ job_id: manifest.jobId, signed_manifest: JSON.stringify(signed), state: 'awaiting-keys', created_at: this.now() });
      for (const p of manifest.partners) {
        this.store.insertPartner({
          job_id: manifest.jobId,
          key_id: p.keyId,
          name: p.name,
          sign_public_key: p.signPublicKey,
          box_public_key: p.boxPublicKey,
          status: 'invited',
          acceptance: null,
        });
      }
    });
    this.schemes.set(manifest.jobId, Promise.resolve(scheme));
    this.opened.set(manifest.jobId, scheme);
    this.contexts.set(manifest.jobId, { jobId: manifest.jobId, manifest, workload, rules });
    try {
      this.ledger.appendGenesis(manifest.jobId, genesis, Buffer.from(manifest.owner.signPublicKey, 'base64'));
    } catch (err) {
      // A job without its genesis would be answered JOB_EXISTS on the owner's retry and never get one.
      this.store.deleteNewJob(manifest.jobId);
      this.schemes.delete(manifest.jobId);
      this.opened.delete(manifest.jobId);
      this.contexts.delete(manifest.jobId);
      scheme.dispose();
      throw err;
    }
    this.log.info({ jobId: manifest.jobId, workload: workload.kind, partners: manifest.partners.length, rounds: rules.totalRounds }, 'job created');
    return manifest;
  }

  /** The owner's seq-0 ledger entry must describe this very manifest and name this coordinator (its signature is checked on append). */
  private checkGenesis(m: JobManifest, genesis: LedgerEntry): void {
    const problem = genesisProblem(m, genesis, this.coordinatorKeyId);
    if (problem) throw new DomainError('LEDGER_GENESIS_MISMATCH', `ledger manifest entry: ${problem}`);
  }

  /** A statement the coordinator records on a partner's behalf must carry that partner's own signature. */
  private requireAttested(jobId: string, keyId: string, statement: unknown, what: string): Record<string, unknown> {
    const s = statement as Record<string, unknown> | undefined;
    const key = this.lookupKey(jobId, keyId);
    if (!s || typeof s !== 'object' || !key) throw new DomainError('STATEMENT_MISSING', `${what}: a statement signed by the partner is required`);
    if (s.jobId !== jobId || s.partner !== keyId)
      throw new DomainError('STATEMENT_SCOPE', `${what}: the statement is for job ${String(s.jobId)} / partner ${String(s.partner)}`);
    if (!verifyAttestation(s, Buffer.from(key.signPublicKey, 'base64'))) {
      throw new DomainError('STATEMENT_SIGNATURE', `${what}: the statement's attestation does not verify against the partner's key`);
    }
    return s;
  }

  /** The ledger's seq-0 manifest entry, signed by the owner: partners check it themselves. */
  manifestEntry(jobId: string): LedgerEntry {
    this.requireJob(jobId);
    let e = this.genesisEntries.get(jobId);
    if (!e) {
      e = readLedger(this.ledger.path(jobId)).entries[0];
      if (!e) throw new DomainError('LEDGER_EMPTY', `job ${jobId} has no ledger manifest entry`);
      this.genesisEntries.set(jobId, e);
    }
    return e;
  }

  /** Hash of the ledger's seq-0 manifest entry: what partners name when they accept. */
  manifestEntryHash(jobId: string): string {
    return entryHash(this.manifestEntry(jobId));
  }

  /** Head of the job's ledger, signed by the coordinator: partners witness it in their own ledgers. */
  ledgerHead(jobId: string): HeadPointer {
    this.requireJob(jobId);
    return this.ledger.signedHead(jobId);
  }

  ledgerPath(jobId: string): string {
    this.requireJob(jobId);
    return this.ledger.path(jobId);
  }

  accept(jobId: string, keyId: string, body: { accepted: boolean; reason?: string; statement?: unknown }): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    const p = this.store.partner(jobId, keyId);
    if (!p) throw new DomainError('NOT_PARTNER', 'only partners accept or refuse a job');
    if (p.status === 'withdrawn') throw new DomainError('WITHDRAWN', 'this partner has withdrawn from the job');
    const status = body.accepted ? 'accepted' : 'refused';
    if (p.status === status) return;
    if (p.status !== 'invited') throw new DomainError('ALREADY_ANSWERED', `this partner already ${p.status} the job`);
    const statement = this.requireAttested(jobId, keyId, body.statement, body.accepted ? 'acceptance' : 'refusal');
    if (body.accepted) this.ledger.append(jobId, 'partner.acceptance', statement as PayloadInput<'partner.acceptance'>);
    else this.ledger.append(jobId, 'partner.refusal', statement as PayloadInput<'partner.refusal'>);
    this.store.setPartnerStatus(jobId, keyId, status, JSON.stringify(body));
    this.driveAccepted(jobId, { type: 'answered', keyId, accepted: body.accepted });
  }

  putSealedKey(jobId: string, keyId: string, blob: Uint8Array): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    if (job.state !== 'awaiting-keys') throw new DomainError('KEYS_LOCKED', 'the key ceremony is over: sealed keys cannot change once rounds run');
    if (!this.store.partner(jobId, keyId)) throw new DomainError('UNKNOWN_PARTNER', `key id ${keyId} is not a partner of job ${jobId}`);
    if (blob.length < 40 || blob.length > 8 * 1024 * 1024) throw new DomainError('SEALED_KEY_SIZE', `sealed key blob of ${blob.length} bytes is not plausible`);
    this.store.putSealedKey(jobId, keyId, blob);
    const m = this.manifest(jobId);
    const ready = this.store.sealedKeyCount(jobId) === m.partners.length;
    if (ready) {
      this.ledger.append(jobId, 'key.ceremony', {
        jobId,
        heParamsHash: sha256Canonical(m.encryption),
        sealedKeys: m.partners.map((p) => ({ partner: p.keyId, sealedKeyHash: sha256Hex(this.store.sealedKey(jobId, p.keyId)!) })),
      });
    }
    this.driveAccepted(jobId, { type: ready ? 'keys-ready' : 'tick' });
  }

  sealedKey(jobId: string, keyId: string): Uint8Array {
    this.requireJob(jobId);
    const blob = this.store.sealedKey(jobId, keyId);
    if (!blob) throw new DomainError('NO_SEALED_KEY', 'no sealed key has been uploaded for this partner yet');
    return blob;
  }

  /**
   * The largest body an upload to `round` can have (the plan's parts under the job's scheme; a relay
   * round's largest message): the
   * coordinator refuses a longer body before reading it. A round the job does not have admits only
   * what an error needs.
   */
  async maxSubmissionBytes(jobId: string, round: number): Promise<number> {
    const { rules } = this.context(jobId);
    if (!(Number.isInteger(round) && round >= 1 && round <= rules.totalRounds)) return 64 * 1024;
    const plan = rules.plan(round);
    // A relay round's message (one per sender and recipient) is bounded by the round's own plan.
    if (plan.relay) return plan.relay.maxBytes;
    return maxSubmissionBytes(await this.wirePlan(jobId, round), await this.scheme(jobId));
  }

  /** An upload: decoded, admitted by the round rules, checked against the round's plan, then added into the round's sums. */
  async submit(jobId: string, round: number, keyId: string, body: Uint8Array): Promise<{ duplicate: boolean }> {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    const decoded = decodeUpdate(body);
    const attempt = decoded.meta.attempt;
    const bodyHash = sha256Hex(body);
    const previous = this.store.submission(jobId, round, attempt, keyId);
    if (previous) {
      // Idempotent per job, round, attempt and partner: a retried upload is acknowledged, never re-added.
      if (previous.body_hash === bodyHash) return { duplicate: true };
      throw new DomainError('ALREADY_SUBMITTED', `partner already submitted a different update for round ${round} attempt ${attempt}`);
    }
    const row = this.store.round(jobId, round, attempt);
    admitUpload(row && roundView(this.store, row), { round: job.current_round, attempt: job.attempt }, keyId, round, attempt, this.now());
    const plan = await this.wirePlan(jobId, round);
    const scheme = await this.scheme(jobId);
    const masked = scheme.scheme === 'secagg-bfv' ? this.secagg : null;
    if (scheme.scheme === 'secagg-bfv' && !masked) throw new DomainError('NOT_SECAGG', 'this coordinator runs no masked aggregation');
    // The attempt's stage machine, loaded before the transaction that feeds it the upload's commitment.
    if (masked) await masked.load(jobId, round, attempt);
    checkSubmission(plan, scheme, { jobId, round, attempt, baseModelHash: row!.base_model_hash, manifest: this.manifest(jobId), partner: keyId }, decoded);
    // Re-read inside the transaction: another submission may have landed while we awaited.
    try {
      this.store.transaction(() => {
        const cur = this.store.round(jobId, round, attempt)!;
        if (cur.state !== 'open') throw new DomainError('ROUND_CLOSED', `round ${round} closed while the update was checked`);
        // Masked: only the blob the partner's signed commitment names, masked with the partners its inbox listed.
        masked?.acceptUpload(jobId, round, attempt, keyId, sha256Hex(decoded.parts[MASKED_PART]));
        const sums = accumulate(scheme, plan, this.store.partSums(jobId, round, attempt), decoded.parts);
        for (const [part, sum] of Object.entries(sums)) this.store.putPartSum(jobId, round, attempt, part, sum);
        this.store.insertSubmission({
          job_id: jobId,
          round,
          attempt,
          key_id: keyId,
          body_hash: bodyHash,
          meta: JSON.stringify(decoded.meta),
          part_hashes: JSON.stringify(decoded.meta.parts.map((p) => sha256Hex(decoded.parts[p.name]))),
          received_at: this.now(),
        });
        this.store.updateRound(jobId, round, attempt, { submissions: cur.submissions + 1 });
      });
    } catch (err) {
      masked?.forget(jobId, round, attempt);
      throw err;
    }
    const partBytes = Object.fromEntries(decoded.meta.parts.map((p) => [p.name, p.bytes]));
    this.log.info({ jobId, round, attempt, keyId, bytes: body.length, partBytes }, 'submission accepted');
    this.driveAccepted(jobId, { type: 'uploaded', keyId, round, attempt });
    if (masked) await masked.progress(jobId, round, attempt);
    return { duplicate: false };
  }

  decline(jobId: string, round: number, keyId: string, attempt: number, reason: string, requestedEpsilon = 0, remainingEpsilon = 0): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    const row = this.store.round(jobId, round, attempt);
    admitDecline(row && roundView(this.store, row), keyId, round, attempt);
    // Ledger first (its append is redo-safe): a decline stored without its entry would never get one.
    this.ledger.append(jobId, 'budget.refusal', { jobId, partner: keyId, round, requestedEpsilon: Math.max(0, requestedEpsilon), remainingEpsilon, reason });
    this.store.insertDecline(jobId, round, attempt, keyId, reason);
    this.driveAccepted(jobId, { type: 'declined', keyId, round, attempt });
  }

  reportModelHash(jobId: string, round: number, keyId: string, hash: string, selection: ModelSelection | null = null): void {
    this.requireJob(jobId);
    const closed = this.store.closedRound(jobId, round);
    admitHashReport(closed && roundView(this.store, closed), closed ? this.context(jobId).rules.plan(round) : null, round);
    if (!this.store.putModelHash(jobId, round, keyId, hash, selection)) {
      const existing = this.store.modelHashes(jobId, round).find((h) => h.keyId === keyId);
      if (existing?.hash !== hash || JSON.stringify(existing.selection) !== JSON.stringify(selection))
        throw new DomainError('HASH_CHANGED', 'a different model hash or selection was already reported for this round');
      return;
    }
    const hashes = this.store.modelHashes(jobId, round);
    this.driveAccepted(jobId, { type: 'hash-reported', keyId, round, attempt: closed!.attempt, hashes });
  }

  withdraw(jobId: string, keyId: string, reason: string, statement: unknown): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    const p = this.store.partner(jobId, keyId);
    if (!p) throw new DomainError('NOT_PARTNER', 'only partners can withdraw');
    if (p.status === 'withdrawn') return;
    const attested = this.requireAttested(jobId, keyId, statement, 'withdrawal');
    this.ledger.append(jobId, 'partner.withdraw', attested as PayloadInput<'partner.withdraw'>);
    this.store.setPartnerStatus(jobId, keyId, 'withdrawn', null);
    this.log.warn({ jobId, keyId, reason }, 'partner withdrew');
    this.driveAccepted(jobId, { type: 'withdrawn', keyId });
  }

  /** A partner stops for good: recorded, and the round machine counts it as declining every round from now on. */
  leave(jobId: string, keyId: string, reason: string, statement: unknown): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    const p = this.store.partner(jobId, keyId);
    if (!p) throw new DomainError('NOT_PARTNER', 'only partners can leave a job');
    if (p.status === 'left' || p.status === 'withdrawn' || p.status === 'refused') return;
    const attested = this.requireAttested(jobId, keyId, statement, 'leave');
    this.ledger.append(jobId, 'partner.leave', attested as PayloadInput<'partner.leave'>);
    this.store.setPartnerStatus(jobId, keyId, 'left', null);
    this.log.warn({ jobId, keyId, reason }, 'partner left the job');
    this.driveAccepted(jobId, { type: 'left', keyId });
  }

  halt(jobId: string, reason: string): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    this.drive(jobId, { type: 'halt', reason });
  }

  /** A closed round's published sum of one part. */
  aggregate(jobId: string, round: number, part: string): Uint8Array {
    this.requireJob(jobId);
    const r = this.store.closedRound(jobId, round);
    if (!r) throw new DomainError('ROUND_NOT_CLOSED', `round ${round} has no published aggregate yet`);
    const blob = this.store.partSums(jobId, round, r.attempt)[part];
    if (!blob) throw new DomainError('NO_SUCH_PART', `round ${round} has no ${part} aggregate`);
    return blob;
  }

  /** What a closed round's published sums hold: the closed attempt and the signed records of the uploads added into them. */
  contents(jobId: string, round: number): RoundContents {
    this.requireJob(jobId);
    const r = this.store.closedRound(jobId, round);
    if (!r) throw new DomainError('ROUND_NOT_CLOSED', `round ${round} has no published aggregate yet`);
    const records = this.store.submissions(jobId, round, r.attempt).map((s) => (JSON.parse(s.meta) as { record: SubmissionRecord }).record);
    const secagg = this.secagg?.masked(jobId) ? this.secagg.evidence(jobId, round, r.attempt) : undefined;
    return secagg ? { round, attempt: r.attempt, records, secagg } : { round, attempt: r.attempt, records };
  }

  status(jobId: string): JobStatus {
    const job = this.requireJob(jobId);
    const { manifest: m, rules } = this.context(jobId);
    const r = job.current_round ? this.store.round(jobId, job.current_round, job.attempt) : undefined;
    const closedRounds = this.store
      .rounds(jobId)
      .filter((x) => x.state === 'closed')
      .map((x) => x.round);
    return {
      jobId,
      state: job.state,
      reason: job.status_reason,
      round: job.current_round,
      attempt: job.attempt,
      totalRounds: rules.totalRounds,
      roundState: r?.state ?? null,
      roundKind: r?.kind ?? null,
      stage: r?.stage ?? null,
      selected: r ? (JSON.parse(r.selected) as string[]) : [],
      deadlineAt: r?.deadline_at ?? null,
      baseModelHash: r?.base_model_hash ?? null,
      submitted: r ? this.store.submissions(jobId, r.round, r.attempt).map((s) => s.key_id) : [],
      closedRounds,
      partners: this.store.partners(jobId).map((p) => ({ keyId: p.key_id, name: p.name, status: p.status })),
      keysReady: this.store.sealedKeyCount(jobId) === m.partners.length,
    };
  }

  /** Deadline sweep, run on a timer: masked aggregation's stages first (they may end an attempt), then the rounds. */
  async tickAll(): Promise<void> {
    await this.secagg?.tick();
    // A masked attempt that ends in this sweep records its config: the job's scheme must be open first.
    for (const job of this.store.activeJobs()) if (this.secagg?.masked(job.job_id)) await this.scheme(job.job_id);
    this.tick();
  }

  /** Deadline sweep of the rounds. */
  tick(): void {
    for (const job of this.store.activeJobs()) {
      try {
        this.advance(job.job_id);
      } catch (err) {
        this.log.error({ err, jobId: job.job_id }, 'advancing job failed');
      }
    }
  }

  async close(): Promise<void> {
    for (const s of this.schemes.values()) (await s).dispose();
    this.schemes.clear();
    this.opened.clear();
  }
}
