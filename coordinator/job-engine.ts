import type { Logger } from 'pino';
import { sha256Hex } from '../src/util/hash.ts';
import { accumulate } from '../src/federation/aggregation.ts';
import { verifySignedManifest, type JobManifest, type SignedManifest } from '../src/federation/manifest.ts';
import { DomainError } from '../src/federation/protocol/errors.ts';
import type { JobStatus } from '../src/federation/protocol/schemas.ts';
import { admitDecline, admitHashReport, admitUpload, roundRules, transition, type RoundEvent } from '../src/federation/round-machine.ts';
import { openSecureSum, type SecureSumScheme } from '../src/federation/secure-sum.ts';
import { checkSubmission } from '../src/federation/submission-check.ts';
import { decodeUpdate } from '../src/federation/update-codec.ts';
import type { WorkloadRegistry } from '../src/federation/workload.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import { LEDGER_SCHEMA_VERSION, parsePayload, type LedgerEntry, type PayloadInput } from '../src/privacy/ledger/entries.ts';
import { entryHash, verifyAttestation } from '../src/privacy/ledger/signing.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { sha256Canonical } from '../src/privacy/ledger/canonical.ts';
import type { CoordinatorStore, JobRow } from './store.ts';
import type { JobLedgers } from './job-ledgers.ts';
import { jobView, roundView } from './job-view.ts';
import { RoundEffects, type JobContext } from './round-effects.ts';

/**
 * The coordinator's protocol logic on top of the store. Each command validates and persists what a
 * party sent, then hands the matching event to the round machine (src/federation/round-machine.ts),
 * whose effects RoundEffects carries out. It adds ciphertexts (federation/aggregation.ts) and never
 * decrypts: it has no key to decrypt with.
 */
export class JobEngine {
  private readonly schemes = new Map<string, Promise<SecureSumScheme>>();
  private readonly contexts = new Map<string, JobContext>();
  private readonly manifestHashes = new Map<string, string>();
  private readonly effects: RoundEffects;

  constructor(
    private readonly store: CoordinatorStore,
    private readonly ledger: JobLedgers,
    private readonly coordinatorKeyId: string,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    private readonly workloads: WorkloadRegistry = builtinWorkloads,
  ) {
    this.effects = new RoundEffects(store, ledger, log, () => this.now());
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

  private scheme(jobId: string): Promise<SecureSumScheme> {
    let s = this.schemes.get(jobId);
    if (!s) {
      s = openSecureSum(this.manifest(jobId).encryption);
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
    const ctx = this.context(jobId);
    const now = this.now();
    const { effects } = transition(jobView(this.store, jobId, ctx.rules, ctx.manifest.partners.length), event, ctx.rules, now);
    this.effects.run(ctx, effects);
  }

  /** Hands a relay round's event (a sender delivered everything it owes the round) to the round machine. */
  dispatch(jobId: string, event: RoundEvent): void {
    this.drive(jobId, event);
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
    this.contexts.set(manifest.jobId, { jobId: manifest.jobId, manifest, workload, rules });
    this.ledger.appendGenesis(manifest.jobId, genesis, Buffer.from(manifest.owner.signPublicKey, 'base64'));
    this.log.info({ jobId: manifest.jobId, workload: workload.kind, partners: manifest.partners.length, rounds: rules.totalRounds }, 'job created');
    return manifest;
  }

  /** The owner's seq-0 ledger entry must describe this very manifest and name this coordinator. */
  private checkGenesis(m: JobManifest, genesis: LedgerEntry): void {
    const bad = (why: string) => new DomainError('LEDGER_GENESIS_MISMATCH', `ledger manifest entry: ${why}`);
    if (genesis.type !== 'job.manifest' || genesis.seq !== 0) throw bad('must be the job.manifest entry at seq 0');
    if (genesis.schemaVersion !== LEDGER_SCHEMA_VERSION) throw bad(`is written under ledger schema ${genesis.schemaVersion}; this coordinator writes version ${LEDGER_SCHEMA_VERSION}`);
    const parsed = parsePayload('job.manifest', genesis.payload);
    if (!parsed.success) throw bad(`payload invalid at ${parsed.error.issues[0]?.path.join('.') || '(root)'}: ${parsed.error.issues[0]?.message}`);
    const p = parsed.data;
    if (p.jobId !== m.jobId) throw bad(`names job ${p.jobId}, not ${m.jobId}`);
    if (genesis.author !== m.owner.keyId || p.owner.keyId !== m.owner.keyId) throw bad("is not authored by the manifest's owner");
    if (p.coordinator.keyId !== this.coordinatorKeyId) throw bad(`names coordinator ${p.coordinator.keyId}, this coordinator is ${this.coordinatorKeyId}`);
    const want = m.partners.map((x) => `${x.keyId}:${x.signPublicKey}`).sort().join(',');
    const got = p.partners.map((x) => `${x.keyId}:${x.signPublicKey}`).sort().join(',');
    if (want !== got) throw bad("partners differ from the manifest's");
    if (p.rounds !== m.rounds) throw bad(`rounds ${p.rounds} differ from the manifest's ${m.rounds}`);
  }

  /** A statement the coordinator records on a partner's behalf must carry that partner's own signature. */
  private requireAttested(jobId: string, keyId: string, statement: unknown, what: string): Record<string, unknown> {
    const s = statement as Record<string, unknown> | undefined;
    const key = this.lookupKey(jobId, keyId);
    if (!s || typeof s !== 'object' || !key) throw new DomainError('STATEMENT_MISSING', `${what}: a statement signed by the partner is required`);
    if (s.jobId !== jobId || s.partner !== keyId) throw new DomainError('STATEMENT_SCOPE', `${what}: the statement is for job ${String(s.jobId)} / partner ${String(s.partner)}`);
    if (!verifyAttestation(s, Buffer.from(key.signPublicKey, 'base64'))) {
      throw new DomainError('STATEMENT_SIGNATURE', `${what}: the statement's attestation does not verify against the partner's key`);
    }
    return s;
  }

  /** Hash of the ledger's seq-0 manifest entry: what partners name when they accept. */
  manifestEntryHash(jobId: string): string {
    this.requireJob(jobId);
    let h = this.manifestHashes.get(jobId);
    if (!h) {
      const first = readLedger(this.ledger.path(jobId)).entries[0];
      if (!first) throw new DomainError('LEDGER_EMPTY', `job ${jobId} has no ledger manifest entry`);
      h = entryHash(first);
      this.manifestHashes.set(jobId, h);
    }
    return h;
  }

  /** Head of the job's ledger, which partners witness in their own ledgers. */
  ledgerHead(jobId: string): { seq: number; hash: string } {
    this.requireJob(jobId);
    return this.ledger.head(jobId);
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
    this.drive(jobId, { type: 'answered', keyId, accepted: body.accepted });
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
    this.drive(jobId, { type: ready ? 'keys-ready' : 'tick' });
  }

  sealedKey(jobId: string, keyId: string): Uint8Array {
    this.requireJob(jobId);
    const blob = this.store.sealedKey(jobId, keyId);
    if (!blob) throw new DomainError('NO_SEALED_KEY', 'no sealed key has been uploaded for this partner yet');
    return blob;
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
    const { rules } = this.context(jobId);
    const plan = rules.plan(round);
    const scheme = await this.scheme(jobId);
    checkSubmission(plan, scheme, { jobId, round, attempt, baseModelHash: row!.base_model_hash }, decoded);
    // Re-read inside the transaction: another submission may have landed while we awaited.
    this.store.transaction(() => {
      const cur = this.store.round(jobId, round, attempt)!;
      if (cur.state !== 'open') throw new DomainError('ROUND_CLOSED', `round ${round} closed while the update was checked`);
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
    const partBytes = Object.fromEntries(decoded.meta.parts.map((p) => [p.name, p.bytes]));
    this.log.info({ jobId, round, attempt, keyId, bytes: body.length, partBytes }, 'submission accepted');
    this.drive(jobId, { type: 'uploaded', keyId, round, attempt });
    return { duplicate: false };
  }

  decline(jobId: string, round: number, keyId: string, attempt: number, reason: string, requestedEpsilon = 0, remainingEpsilon = 0): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    const row = this.store.round(jobId, round, attempt);
    admitDecline(row && roundView(this.store, row), keyId, round, attempt);
    if (this.store.insertDecline(jobId, round, attempt, keyId, reason)) {
      this.ledger.append(jobId, 'budget.refusal', { jobId, partner: keyId, round, requestedEpsilon: Math.max(0, requestedEpsilon), remainingEpsilon, reason });
    }
    this.drive(jobId, { type: 'declined', keyId, round, attempt });
  }

  reportModelHash(jobId: string, round: number, keyId: string, hash: string): void {
    this.requireJob(jobId);
    const closed = this.store.closedRound(jobId, round);
    admitHashReport(closed && roundView(this.store, closed), closed ? this.context(jobId).rules.plan(round) : null, round);
    if (!this.store.putModelHash(jobId, round, keyId, hash)) {
      const existing = this.store.modelHashes(jobId, round).find((h) => h.key_id === keyId);
      if (existing?.hash !== hash) throw new DomainError('HASH_CHANGED', 'a different model hash was already reported for this round');
      return;
    }
    const hashes = this.store.modelHashes(jobId, round).map((h) => ({ keyId: h.key_id, hash: h.hash }));
    this.drive(jobId, { type: 'hash-reported', keyId, round, attempt: closed!.attempt, hashes });
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
    this.drive(jobId, { type: 'withdrawn', keyId });
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

  /** Deadline sweep, run on a timer. */
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
  }
}
