import { sha256Hex } from '../src/util/hash.ts';
import type { Logger } from 'pino';
import { DomainError } from '../src/federation/protocol/errors.ts';
import type { JobStatus } from '../src/federation/protocol/schemas.ts';
import { verifySignedManifest, type JobManifest, type SignedManifest } from '../src/federation/manifest.ts';
import { openSecureSum, type SecureSumScheme } from '../src/federation/secure-sum.ts';
import { checkSubmission, roundKind, selectPartners, totalRounds } from '../src/federation/rounds.ts';
import { decodeUpdate } from '../src/federation/update-codec.ts';
import { initialModelState } from '../src/federation/partner.ts';
import type { CoordinatorStore, JobRow, RoundRow } from './store.ts';
import type { JobLedgers } from './job-ledgers.ts';
import { LEDGER_SCHEMA_VERSION, parsePayload, type LedgerEntry, type PayloadInput } from '../src/privacy/ledger/entries.ts';
import { entryHash, verifyAttestation } from '../src/privacy/ledger/signing.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { sha256Canonical } from '../src/privacy/ledger/canonical.ts';
import type { DpReport } from '../src/federation/update-codec.ts';

/** How many times a round is retried when the quorum is not met before the job fails. */
export const MAX_ATTEMPTS = 3;



/**
 * The coordinator's protocol logic on top of the store: it validates, adds ciphertexts, closes
 * rounds and checks model-hash agreement. It never decrypts; it has no key to decrypt with.
 */
export class JobEngine {
  private readonly schemes = new Map<string, Promise<SecureSumScheme>>();
  private readonly manifests = new Map<string, JobManifest>();

  constructor(
    private readonly store: CoordinatorStore,
    private readonly ledger: JobLedgers,
    private readonly coordinatorKeyId: string,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  manifest(jobId: string): JobManifest {
    const cached = this.manifests.get(jobId);
    if (cached) return cached;
    const job = this.requireJob(jobId);
    const manifest = (JSON.parse(job.signed_manifest) as SignedManifest).manifest;
    this.manifests.set(jobId, manifest);
    return manifest;
  }

  private scheme(jobId: string): Promise<SecureSumScheme> {
    let s = this.schemes.get(jobId);
    if (!s) {
      s = openSecureSum(this.manifest(jobId).encryption);
      this.schemes.set(jobId, s);
    }
    return s;
  }

  /** The manifest exactly as its owner signed it. */
  signedManifest(jobId: string): SignedManifest {
    return JSON.parse(this.requireJob(jobId).signed_manifest) as SignedManifest;
  }

  requireJob(jobId: string): JobRow {
    const job = this.store.getJob(jobId);
    if (!job) throw new DomainError('UNKNOWN_JOB', `no job with id "${jobId}"`);
    return job;
  }

  /** Keys allowed to speak for a job: the owner and the partners named in the manifest. */
  lookupKey(jobId: string, keyId: string): { signPublicKey: string; role: 'owner' | 'partner' } | undefined {
    const job = this.store.getJob(jobId);
    if (!job) return undefined;
    const m = this.manifest(jobId);
    if (m.owner.keyId === keyId) return { signPublicKey: m.owner.signPublicKey, role: 'owner' };
    const p = m.partners.find((x) => x.keyId === keyId);
    return p ? { signPublicKey: p.signPublicKey, role: 'partner' } : undefined;
  }

  async createJob(signed: SignedManifest, genesis: LedgerEntry): Promise<JobManifest> {
    const manifest = verifySignedManifest(signed);
    if (this.store.getJob(manifest.jobId)) throw new DomainError('JOB_EXISTS', `job "${manifest.jobId}" already exists`);
    this.checkGenesis(manifest, genesis);
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
    this.manifests.set(manifest.jobId, manifest);
    this.ledger.appendGenesis(manifest.jobId, genesis, Buffer.from(manifest.owner.signPublicKey, 'base64'));
    this.log.info({ jobId: manifest.jobId, partners: manifest.partners.length, rounds: manifest.rounds }, 'job created');
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

  private readonly manifestHashes = new Map<string, string>();

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
    this.advance(jobId);
  }

  putSealedKey(jobId: string, keyId: string, blob: Uint8Array): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    if (job.state !== 'awaiting-keys') throw new DomainError('KEYS_LOCKED', 'the key ceremony is over: sealed keys cannot change once rounds run');
    if (!this.store.partner(jobId, keyId)) throw new DomainError('UNKNOWN_PARTNER', `key id ${keyId} is not a partner of job ${jobId}`);
    if (blob.length < 40 || blob.length > 8 * 1024 * 1024) throw new DomainError('SEALED_KEY_SIZE', `sealed key blob of ${blob.length} bytes is not plausible`);
    this.store.putSealedKey(jobId, keyId, blob);
    const m = this.manifest(jobId);
    if (this.store.sealedKeyCount(jobId) === m.partners.length) {
      this.ledger.append(jobId, 'key.ceremony', {
        jobId,
        heParamsHash: sha256Canonical(m.encryption),
        sealedKeys: m.partners.map((p) => ({ partner: p.keyId, sealedKeyHash: sha256Hex(this.store.sealedKey(jobId, p.keyId)!) })),
      });
    }
    this.advance(jobId);
  }

  sealedKey(jobId: string, keyId: string): Uint8Array {
    this.requireJob(jobId);
    const blob = this.store.sealedKey(jobId, keyId);
    if (!blob) throw new DomainError('NO_SEALED_KEY', 'no sealed key has been uploaded for this partner yet');
    return blob;
  }

  private requireActive(job: JobRow): void {
    if (job.state === 'completed' || job.state === 'halted' || job.state === 'failed') {
      throw new DomainError('JOB_CLOSED', `job "${job.job_id}" is ${job.state}${job.status_reason ? `: ${job.status_reason}` : ''}`);
    }
  }

  private openRound(job: JobRow, round: number, attempt: number, baseModelHash: string | null): void {
    const m = this.manifest(job.job_id);
    const eligible = this.store.partners(job.job_id).filter((p) => p.status === 'accepted').map((p) => p.key_id);
    const selected = selectPartners(m, round, attempt, eligible);
    const now = this.now();
    this.store.transaction(() => {
      this.store.insertRound({
        job_id: job.job_id,
        round,
        attempt,
        kind: roundKind(m, round),
        state: 'open',
        selected: JSON.stringify(selected),
        opened_at: now,
        deadline_at: now + m.roundDeadlineSeconds * 1000,
        base_model_hash: baseModelHash,
      });
      this.store.updateJob(job.job_id, { state: 'running', current_round: round, attempt });
    });
    this.log.info({ jobId: job.job_id, round, attempt, selected: selected.length }, 'round opened');
  }

  currentRound(jobId: string): RoundRow | undefined {
    const job = this.requireJob(jobId);
    if (job.current_round === 0) return undefined;
    return this.store.round(jobId, job.current_round, job.attempt);
  }

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
    const r = this.store.round(jobId, round, attempt);
    if (!r) throw new DomainError('ROUND_NOT_OPEN', `round ${round} attempt ${attempt} is not open (current: round ${job.current_round} attempt ${job.attempt})`);
    if (r.state !== 'open') throw new DomainError('ROUND_CLOSED', `round ${round} attempt ${attempt} is ${r.state}: late submissions are not accepted`);
    if (this.now() > r.deadline_at) throw new DomainError('ROUND_DEADLINE', `round ${round} passed its deadline: late submissions are not accepted`);
    const selected = JSON.parse(r.selected) as string[];
    if (!selected.includes(keyId)) throw new DomainError('NOT_SELECTED', `this partner is not selected for round ${round} attempt ${attempt}`);
    const m = this.manifest(jobId);
    const scheme = await this.scheme(jobId);
    checkSubmission(m, scheme, { jobId, round, attempt, baseModelHash: r.base_model_hash }, decoded);
    // Re-read inside the transaction: another submission may have landed while we awaited.
    this.store.transaction(() => {
      const cur = this.store.round(jobId, round, attempt)!;
      if (cur.state !== 'open') throw new DomainError('ROUND_CLOSED', `round ${round} closed while the update was checked`);
      const sums: Partial<Pick<RoundRow, 'update_sum' | 'eval_sum'>> = {};
      for (const [name, column] of [['update', 'update_sum'], ['evaluation', 'eval_sum']] as const) {
        const part = decoded.parts[name];
        if (!part) continue;
        const sum = scheme.sum(cur[column]);
        try {
          sum.add(part);
          sums[column] = Buffer.from(sum.toBytes());
        } finally {
          sum.dispose();
        }
      }
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
      this.store.updateRound(jobId, round, attempt, { ...sums, submissions: cur.submissions + 1 });
    });
    this.log.info({ jobId, round, attempt, keyId, bytes: body.length, updateBytes: decoded.parts.update?.length }, 'submission accepted');
    this.advance(jobId);
    return { duplicate: false };
  }

  decline(jobId: string, round: number, keyId: string, attempt: number, reason: string, requestedEpsilon = 0, remainingEpsilon = 0): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    const r = this.store.round(jobId, round, attempt);
    if (!r || r.state !== 'open') throw new DomainError('ROUND_NOT_OPEN', `round ${round} attempt ${attempt} is not open`);
    if (!(JSON.parse(r.selected) as string[]).includes(keyId)) throw new DomainError('NOT_SELECTED', 'only selected partners can decline a round');
    if (this.store.insertDecline(jobId, round, attempt, keyId, reason)) {
      this.ledger.append(jobId, 'budget.refusal', { jobId, partner: keyId, round, requestedEpsilon: Math.max(0, requestedEpsilon), remainingEpsilon, reason });
    }
    this.advance(jobId);
  }

  reportModelHash(jobId: string, round: number, keyId: string, hash: string): void {
    const job = this.requireJob(jobId);
    const r = this.store.closedRound(jobId, round);
    if (!r) throw new DomainError('ROUND_NOT_CLOSED', `round ${round} has no published aggregate yet`);
    if (r.kind !== 'train') throw new DomainError('NO_MODEL_IN_ROUND', `round ${round} is an evaluation round and changes no model`);
    if (!this.store.putModelHash(jobId, round, keyId, hash)) {
      const existing = this.store.modelHashes(jobId, round).find((h) => h.key_id === keyId);
      if (existing?.hash !== hash) throw new DomainError('HASH_CHANGED', 'a different model hash was already reported for this round');
      return;
    }
    const hashes = this.store.modelHashes(jobId, round);
    const distinct = new Set(hashes.map((h) => h.hash));
    if (distinct.size > 1 && job.state === 'running') {
      this.recordRound(jobId, r, hashes, false);
      this.stopJob(job, 'failed', `partners' model hashes disagree after round ${round}`);
      this.log.error({ jobId, round }, 'model hashes disagree: job stopped');
      return;
    }
    this.advance(jobId);
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
    this.advance(jobId);
  }

  halt(jobId: string, reason: string): void {
    const job = this.requireJob(jobId);
    this.requireActive(job);
    this.stopJob(job, 'halted', reason);
    this.log.warn({ jobId, reason }, 'job halted by its owner');
  }

  /** Moves a job forward: opens, closes, retries or finishes rounds. Safe to call any time, any number of times. */
  advance(jobId: string): void {
    const job = this.requireJob(jobId);
    const m = this.manifest(jobId);
    const partners = this.store.partners(jobId);
    const accepted = partners.filter((p) => p.status === 'accepted');
    if (job.state === 'awaiting-keys') {
      // Round 1 waits until every partner has answered, or until the join window (one round
      // deadline after the job was registered) closes with at least a quorum on board.
      const answered = partners.filter((p) => p.status !== 'invited').length;
      const joinWindowOver = this.now() > job.created_at + m.roundDeadlineSeconds * 1000;
      const keysReady = this.store.sealedKeyCount(jobId) === m.partners.length;
      if (answered === partners.length && accepted.length < m.quorum) {
        this.stopJob(job, 'failed', `only ${accepted.length} partner(s) accepted, quorum is ${m.quorum}`);
        return;
      }
      // The initial model is public (seeded from the manifest), so round 1 can pin its hash too.
      if (keysReady && accepted.length >= m.quorum && (answered === partners.length || joinWindowOver)) this.openRound(job, 1, 0, initialModelState(m).hash);
      return;
    }
    if (job.state !== 'running') return;
    const r = this.store.round(jobId, job.current_round, job.attempt)!;
    if (r.state === 'open') {
      const selected = JSON.parse(r.selected) as string[];
      const submitted = this.store.submissions(jobId, r.round, r.attempt).map((s) => s.key_id);
      const declined = new Set(this.store.declines(jobId, r.round, r.attempt).map((d) => d.key_id));
      const withdrawn = new Set(partners.filter((p) => p.status === 'withdrawn').map((p) => p.key_id));
      const outstanding = selected.filter((k) => !submitted.includes(k) && !declined.has(k) && !withdrawn.has(k));
      const pastDeadline = this.now() > r.deadline_at;
      if (outstanding.length > 0 && !pastDeadline) return;
      if (submitted.length >= m.quorum) this.closeRound(job, r, selected, submitted);
      else this.failAttempt(job, r, submitted.length, pastDeadline);
      return;
    }
    if (r.state === 'closed') {
      if (r.kind === 'evaluate') return;
      const hashes = this.store.modelHashes(jobId, r.round);
      const distinct = new Set(hashes.map((h) => h.hash));
      const active = partners.filter((p) => p.status === 'accepted').length;
      if (distinct.size === 1 && hashes.length >= Math.min(m.quorum, active)) {
        const [agreed] = distinct;
        this.recordRound(jobId, r, hashes, true);
        this.openRound(job, r.round + 1, 0, agreed);
      }
    }
  }

  private closeRound(job: JobRow, r: RoundRow, selected: string[], submitted: string[]): void {
    const full = this.store.round(job.job_id, r.round, r.attempt)!;
    const now = this.now();
    const isLast = r.round === totalRounds(this.manifest(job.job_id));
    // Ledger first, state second: a crash in between redoes this close, and the ledger's
    // redo-safe appends keep the entries single.
    if (isLast) {
      const subs = this.store.submissions(job.job_id, r.round, r.attempt);
      this.ledger.append(job.job_id, 'evaluation', {
        jobId: job.job_id,
        round: r.round,
        // The coordinator cannot read the metrics: it records which encrypted histograms were summed.
        metrics: { partners: subs.length },
        ciphertextHashes: [...subs.flatMap((s) => JSON.parse(s.part_hashes) as string[]), ...(full.eval_sum ? [sha256Hex(full.eval_sum)] : [])],
      });
      const m = this.manifest(job.job_id);
      this.ledger.append(job.job_id, 'model.final', {
        jobId: job.job_id,
        modelHash: r.base_model_hash!,
        rounds: m.rounds,
        partners: m.dp ? this.finalEpsilons(job.job_id).map((e) => ({ partner: e.keyId, epsilon: e.epsilon, delta: m.dp!.delta })) : [],
      });
    }
    this.store.transaction(() => {
      this.store.updateRound(job.job_id, r.round, r.attempt, { state: 'closed', closed_at: now });
      if (isLast) this.store.updateJob(job.job_id, { state: 'completed', status_reason: null });
    });
    this.log.info({ jobId: job.job_id, round: r.round, submitted: submitted.length, selected: selected.length }, 'round closed');
  }

  private failAttempt(job: JobRow, r: RoundRow, submitted: number, pastDeadline: boolean): void {
    const reason = `${submitted} submission(s) ${pastDeadline ? 'by the deadline' : 'possible'}, quorum is ${this.manifest(job.job_id).quorum}`;
    this.store.updateRound(job.job_id, r.round, r.attempt, { state: 'failed', closed_at: this.now() });
    this.log.warn({ jobId: job.job_id, round: r.round, attempt: r.attempt, reason }, 'round failed');
    if (r.attempt + 1 >= MAX_ATTEMPTS) {
      this.stopJob(job, 'failed', `round ${r.round} failed ${MAX_ATTEMPTS} times: ${reason}`);
      return;
    }
    this.openRound(job, r.round, r.attempt + 1, r.base_model_hash);
  }

  /** Ends a job for good (halt or failure); recorded as the ledger's emergency-brake entry. */
  private stopJob(job: JobRow, state: 'halted' | 'failed', reason: string): void {
    this.ledger.append(job.job_id, 'job.halt', { jobId: job.job_id, reason: state === 'failed' ? `job failed: ${reason}` : reason, afterRound: this.lastAgreedRound(job.job_id) });
    this.store.updateJob(job.job_id, { state, status_reason: reason });
  }

  private lastAgreedRound(jobId: string): number {
    const closed = this.store.rounds(jobId).filter((x) => x.state === 'closed' && x.kind === 'train');
    return closed.length ? Math.max(...closed.map((x) => x.round)) : 0;
  }

  /** Latest cumulative ε each partner reported, over the job's closed rounds. */
  private finalEpsilons(jobId: string): { keyId: string; epsilon: number }[] {
    const last = new Map<string, number>();
    for (const s of this.store.closedSubmissions(jobId)) {
      const dp = (JSON.parse(s.meta) as { dp: DpReport | null }).dp;
      if (dp) last.set(s.key_id, dp.epsilonAfterRound);
    }
    return [...last].map(([keyId, epsilon]) => ({ keyId, epsilon }));
  }

  /** The ledger's record of a training round: who took part, their DP parameters and ε, ciphertext and model hashes. */
  private recordRound(jobId: string, r: RoundRow, hashes: { key_id: string; hash: string }[], agreed: boolean): void {
    const full = this.store.round(jobId, r.round, r.attempt)!;
    const selected = JSON.parse(full.selected) as string[];
    const subs = this.store.submissions(jobId, r.round, r.attempt);
    const submitted = subs.map((s) => s.key_id);
    const partners = subs.flatMap((s) => {
      const dp = (JSON.parse(s.meta) as { dp: DpReport | null }).dp;
      if (!dp) return [];
      return [
        {
          partner: s.key_id,
          samplingRate: dp.samplingRate,
          noiseMultiplier: dp.noiseMultiplier,
          clipNorm: dp.clipNorm,
          steps: dp.steps,
          delta: dp.delta,
          epsilonSpent: dp.epsilonSpent,
          epsilonCumulative: dp.epsilonAfterRound,
          ciphertextHashes: JSON.parse(s.part_hashes) as string[],
        },
      ];
    });
    const counts = new Map<string, number>();
    for (const h of hashes) counts.set(h.hash, (counts.get(h.hash) ?? 0) + 1);
    const majority = [...counts].sort((a, b) => b[1] - a[1])[0][0];
    this.ledger.append(jobId, 'round', {
      jobId,
      round: r.round,
      selected,
      submitted,
      dropped: selected.filter((k) => !submitted.includes(k)),
      partners,
      aggregateHash: sha256Hex(full.update_sum ?? new Uint8Array(0)),
      globalModelHash: majority,
      modelHashes: hashes.map((h) => ({ partner: h.key_id, hash: h.hash })),
      modelHashesAgreed: agreed,
    });
  }

  aggregate(jobId: string, round: number, part: string): Uint8Array {
    this.requireJob(jobId);
    const r = this.store.closedRound(jobId, round);
    if (!r) throw new DomainError('ROUND_NOT_CLOSED', `round ${round} has no published aggregate yet`);
    const full = this.store.round(jobId, round, r.attempt)!;
    const blob = part === 'update' ? full.update_sum : part === 'evaluation' ? full.eval_sum : null;
    if (!blob) throw new DomainError('NO_SUCH_PART', `round ${round} has no ${part} aggregate`);
    return blob;
  }

  status(jobId: string): JobStatus {
    const job = this.requireJob(jobId);
    const m = this.manifest(jobId);
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
      totalRounds: totalRounds(m),
      roundState: r?.state ?? null,
      roundKind: r?.kind ?? null,
      stage: r?.state === 'open' ? 'upload' : null,
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
