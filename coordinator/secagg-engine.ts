import type { Logger } from 'pino';
import type { Identity } from '../src/crypto/identity.ts';
import {
  SecaggCoordinator,
  SecaggError,
  isSecaggAttemptFailed,
  type SecaggEvidence,
  type SignedRoster,
  type SignedSurvivors,
  type SignedUnmask,
} from '../src/crypto/secagg/index.ts';
import { DomainError } from '../src/federation/protocol/errors.ts';
import type { SecaggPostStage, SecaggView } from '../src/federation/protocol/secagg-routes.ts';
import type { JobView } from '../src/federation/round-machine.ts';
import { attemptConfig } from '../src/federation/secagg/round-config.ts';
import type { JobEngine } from './job-engine.ts';
import { SecaggStore, type SecaggEventKind } from './secagg-store.ts';
import type { CoordinatorStore } from './store.ts';

/** Stages in order; stage k closes at the latest k/6 of the way from the attempt's opening to its deadline. */
const STAGES = ['advertise', 'share', 'upload', 'consistency', 'unmask'] as const;
type Stage = (typeof STAGES)[number];
const GOT: Record<Stage, SecaggEventKind> = { advertise: 'advertise', share: 'shares', upload: 'masked', consistency: 'consistency', unmask: 'reveal' };
const POSTED: Record<SecaggPostStage, SecaggEventKind> = {
  advertise: 'advertise',
  shares: 'shares',
  masked: 'masked-pending',
  consistency: 'consistency',
  reveal: 'reveal',
};

interface Attempt {
  machine: SecaggCoordinator;
  selected: string[];
  openedAt: number;
  deadlineAt: number;
  got: Map<SecaggEventKind, Set<string>>;
  roster?: SignedRoster;
  survivors?: SignedSurvivors;
  unmask?: SignedUnmask;
  failed?: { stage: string; reason: string };
  done: boolean;
}

/**
 * The coordinator's side of masked aggregation in the real federation: it relays the partners'
 * signed stage messages through crypto/secagg's SecaggCoordinator (which checks every one with the
 * library's readers and signs each view it publishes), closes each stage when every expected partner
 * answered or at its share of the round deadline, and tells the round machine when the attempt's
 * sum is complete (the survivors count as submitted) or failed (fewer than t: the attempt fails like
 * a missed quorum). Every accepted message and every close is a row of the stage log, written in the
 * transaction that accepts it; a restarted coordinator replays the log into the same machine.
 */
export class SecaggEngine {
  private readonly attempts = new Map<string, Attempt>();
  readonly log: SecaggStore;

  constructor(
    private readonly store: CoordinatorStore,
    private readonly engine: JobEngine,
    private readonly identity: Identity,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.log = new SecaggStore(store.db);
  }

  masked(jobId: string): boolean {
    return this.engine.manifest(jobId).encryption.scheme === 'secagg-bfv';
  }

  private requireMasked(jobId: string): void {
    if (!this.masked(jobId)) throw new DomainError('NOT_SECAGG', `job ${jobId} does not use masked aggregation`);
  }

  /** The attempt's machine, replayed from the stage log on first use in this process. */
  async load(jobId: string, round: number, attempt: number): Promise<Attempt> {
    const key = `${jobId}\n${round}\n${attempt}`;
    const cached = this.attempts.get(key);
    if (cached) return cached;
    const row = this.store.round(jobId, round, attempt);
    if (!row) throw new DomainError('ROUND_NOT_OPEN', `round ${round} attempt ${attempt} was never opened`);
    const { manifest, rules } = this.engine.context(jobId);
    const masking = (await this.engine.schemeOf(jobId)).masking!;
    const selected = JSON.parse(row.selected) as string[];
    const config = attemptConfig(manifest, rules.plan(round), masking, round, attempt, selected);
    const a: Attempt = {
      machine: new SecaggCoordinator({ config, identity: this.identity, partners: manifest.partners }),
      selected,
      openedAt: row.opened_at,
      deadlineAt: row.deadline_at,
      got: new Map(),
      done: false,
    };
    for (const ev of this.log.events(jobId, round, attempt)) this.apply(a, ev.kind, ev.from_key, JSON.parse(ev.body));
    if (this.attempts.size > 64) this.attempts.clear();
    this.attempts.set(key, a);
    return a;
  }

  /** One event into the machine (live or replayed). Throws SecaggError on a message the library refuses. */
  private apply(a: Attempt, kind: SecaggEventKind, from: string, body: unknown): void {
    const m = a.machine;
    const b = body as { message: unknown; blobSha256: string; stage: string; reason: string };
    switch (kind) {
      case 'advertise':
        m.acceptAdvertise(body);
        break;
      case 'close-advertise':
        a.roster = m.closeAdvertise();
        break;
      case 'shares':
        m.acceptShares(body);
        break;
      case 'close-shares':
        m.closeShares();
        break;
      case 'masked-pending':
        break;
      case 'masked':
        m.acceptMasked(b.message, b.blobSha256);
        break;
      case 'close-upload':
        a.survivors = m.closeUpload();
        break;
      case 'consistency':
        m.acceptConsistency(body);
        break;
      case 'close-consistency':
        a.unmask = m.closeConsistency();
        break;
      case 'reveal':
        m.acceptReveal(body);
        break;
      case 'close-unmask':
        m.closeUnmask();
        a.done = true;
        break;
      case 'failed':
        a.failed = { stage: b.stage, reason: b.reason };
        break;
    }
    let set = a.got.get(kind);
    if (!set) a.got.set(kind, (set = new Set()));
    set.add(from);
  }

  private requireCurrent(jobId: string, round: number, attempt: number, keyId: string): void {
    const job = this.engine.requireJob(jobId);
    const row = this.store.round(jobId, round, attempt);
    if (!row || job.current_round !== round || job.attempt !== attempt || row.state !== 'open') {
      throw new DomainError(
        'SECAGG_ATTEMPT_OVER',
        `round ${round} attempt ${attempt} is not the open attempt (round ${job.current_round} attempt ${job.attempt})`,
      );
    }
    if (!(JSON.parse(row.selected) as string[]).includes(keyId))
      throw new DomainError('NOT_SELECTED', `this partner is not selected for round ${round} attempt ${attempt}`);
  }

  /** A selected partner's signed stage answer: checked by the machine and logged in one transaction. */
  async post(
    jobId: string,
    round: number,
    keyId: string,
    stage: SecaggPostStage,
    attempt: number,
    message: Record<string, unknown>,
  ): Promise<{ duplicate: boolean }> {
    this.requireMasked(jobId);
    this.requireCurrent(jobId, round, attempt, keyId);
    const from = (message.body as { from?: unknown } | undefined)?.from;
    if (from !== keyId) throw new DomainError('SECAGG_REFUSED', `a ${stage} message from ${String(from)} cannot be posted by ${keyId}`);
    const a = await this.load(jobId, round, attempt);
    if (a.failed) throw new DomainError('SECAGG_ATTEMPT_OVER', `round ${round} attempt ${attempt} failed at its ${a.failed.stage} stage: ${a.failed.reason}`);
    const kind = POSTED[stage];
    const before = this.log.event(jobId, round, attempt, kind, keyId);
    if (before) {
      if (before.body === JSON.stringify(message)) return { duplicate: true };
      throw new DomainError('SECAGG_REFUSED', `a second, different ${stage} message from ${keyId} for round ${round} attempt ${attempt}`);
    }
    this.commit(jobId, round, attempt, a, kind, keyId, message);
    await this.progress(jobId, round, attempt);
    return { duplicate: false };
  }

  /** Applies and logs one event together; a refusal or a storage failure leaves neither (the machine is replayed afresh). */
  private commit(jobId: string, round: number, attempt: number, a: Attempt, kind: SecaggEventKind, from: string, body: unknown): void {
    try {
      this.store.transaction(() => {
        this.apply(a, kind, from, body);
        this.log.append(jobId, round, attempt, kind, from, body, this.now());
      });
    } catch (err) {
      this.attempts.delete(`${jobId}\n${round}\n${attempt}`);
      if (err instanceof SecaggError) throw new DomainError('SECAGG_REFUSED', `${err.code}: ${err.message}`);
      throw err;
    }
  }

  /**
   * Inside JobEngine.submit's transaction, before the blob is added: the partner's masked commitment
   * (posted first) must sign exactly this blob and this partner's masking, else nothing is added.
   */
  acceptUpload(jobId: string, round: number, attempt: number, keyId: string, blobSha256: string): void {
    const a = this.attempts.get(`${jobId}\n${round}\n${attempt}`);
    if (!a) throw new DomainError('SECAGG_NO_COMMITMENT', `round ${round} attempt ${attempt}: the masked aggregation state is not loaded`);
    const pending = this.log.event(jobId, round, attempt, 'masked-pending', keyId);
    if (!pending) throw new DomainError('SECAGG_NO_COMMITMENT', `a masked upload needs its signed commitment first (POST …/secagg/masked)`);
    const body = { message: JSON.parse(pending.body) as unknown, blobSha256 };
    try {
      a.machine.acceptMasked(body.message, blobSha256);
    } catch (err) {
      if (err instanceof SecaggError) throw new DomainError('SECAGG_REFUSED', `${err.code}: ${err.message}`);
      throw err;
    }
    let set = a.got.get('masked');
    if (!set) a.got.set('masked', (set = new Set()));
    set.add(keyId);
    this.log.append(jobId, round, attempt, 'masked', keyId, body, this.now());
  }

  /** Drops the cached machine (JobEngine.submit's transaction failed after acceptUpload). */
  forget(jobId: string, round: number, attempt: number): void {
    this.attempts.delete(`${jobId}\n${round}\n${attempt}`);
  }

  /** The coordinator's signed view of an attempt for one partner, once the stage that makes it has closed. */
  async view(jobId: string, round: number, attempt: number, keyId: string, view: SecaggView): Promise<{ message: Record<string, unknown> }> {
    this.requireMasked(jobId);
    const a = await this.load(jobId, round, attempt);
    if (!a.selected.includes(keyId)) throw new DomainError('NOT_SELECTED', `this partner is not selected for round ${round} attempt ${attempt}`);
    const stage = a.machine.currentStage;
    let message: unknown;
    if (view === 'roster') message = a.roster;
    else if (view === 'survivors') message = a.survivors;
    else if (view === 'unmask') message = a.unmask;
    else if (a.roster && stage !== 'share' && (a.got.get('shares')?.has(keyId) ?? false)) message = a.machine.inboxFor(keyId);
    if (message) return { message: message as Record<string, unknown> };
    if (a.failed) throw new DomainError('SECAGG_ATTEMPT_OVER', `round ${round} attempt ${attempt} failed at its ${a.failed.stage} stage: ${a.failed.reason}`);
    if (stage === 'done' || (view === 'inbox' && stage !== 'share' && stage !== 'advertise'))
      throw new DomainError(
        'SECAGG_ATTEMPT_OVER',
        `round ${round} attempt ${attempt} has no ${view} for this partner: it did not take part in the stage before`,
      );
    throw new DomainError('SECAGG_NOT_YET', `round ${round} attempt ${attempt}: the ${view} is not out yet`);
  }

  /** The evidence key holders unmask a closed attempt with (logged with the unmask stage's close). */
  evidence(jobId: string, round: number, attempt: number): SecaggEvidence | undefined {
    const ev = this.log.event(jobId, round, attempt, 'close-unmask', '');
    return ev ? (JSON.parse(ev.body) as { evidence: SecaggEvidence }).evidence : undefined;
  }

  /**
   * The round machine's view of a masked attempt: nothing counts as submitted until the unmask stage
   * closed (then the survivors did, and the selected partners that dropped out are not waited for);
   * a failed attempt carries its reason, and the machine fails it like a missed quorum.
   */
  gate(jobId: string, view: JobView): JobView {
    const r = view.current;
    if (!r || r.state !== 'open' || !this.masked(jobId)) return view;
    const failed = this.log.event(jobId, r.round, r.attempt, 'failed', '');
    if (failed) {
      const f = JSON.parse(failed.body) as { stage: string; reason: string };
      return { ...view, current: { ...r, failure: `masked aggregation failed at its ${f.stage} stage: ${f.reason}` } };
    }
    const done = this.log.event(jobId, r.round, r.attempt, 'close-unmask', '');
    if (!done) return { ...view, current: { ...r, submitted: [] } };
    const { survivors } = JSON.parse(done.body) as { survivors: string[] };
    const out = r.selected.filter((k) => !survivors.includes(k) && !r.declined.includes(k));
    return { ...view, current: { ...r, submitted: r.submitted.filter((k) => survivors.includes(k)), declined: [...r.declined, ...out] } };
  }

  /** Closes every stage that is due (all expected answers in, or its deadline passed); tells the round machine when the attempt ended. */
  async progress(jobId: string, round: number, attempt: number): Promise<void> {
    const a = await this.load(jobId, round, attempt);
    const gone = new Set(
      this.store
        .partners(jobId)
        .filter((p) => p.status === 'left' || p.status === 'withdrawn')
        .map((p) => p.key_id),
    );
    // A partner that declined the attempt (its budget) is not waited for either.
    for (const d of this.store.declines(jobId, round, attempt)) gone.add(d.key_id);
    let ended = false;
    for (;;) {
      const stage = a.machine.currentStage;
      if (stage === 'done' || a.failed) break;
      const k = STAGES.indexOf(stage);
      const expected = this.expected(a, stage).filter((x) => !gone.has(x));
      const got = a.got.get(GOT[stage]) ?? new Set<string>();
      const due = this.now() > a.openedAt + ((k + 1) * (a.deadlineAt - a.openedAt)) / 6 || expected.every((x) => got.has(x));
      if (!due) break;
      try {
        this.store.transaction(() => this.close(jobId, round, attempt, a, stage));
      } catch (err) {
        this.attempts.delete(`${jobId}\n${round}\n${attempt}`);
        if (!isSecaggAttemptFailed(err)) throw err;
        const f = { stage, reason: err.message };
        this.store.transaction(() => this.log.append(jobId, round, attempt, 'failed', '', f, this.now()));
        this.logger.warn({ jobId, round, attempt, stage, reason: err.message }, 'masked aggregation attempt failed');
        ended = true;
        break;
      }
      if (stage === 'unmask') ended = true;
    }
    if (ended) this.engine.dispatch(jobId, { type: 'tick' });
  }

  private expected(a: Attempt, stage: Stage): string[] {
    const from = (kind: SecaggEventKind) => [...(a.got.get(kind) ?? [])];
    if (stage === 'advertise') return a.selected;
    if (stage === 'share') return from('advertise');
    if (stage === 'upload') return from('shares');
    if (stage === 'consistency') return a.machine.survivorIds;
    return from('consistency');
  }

  private close(jobId: string, round: number, attempt: number, a: Attempt, stage: Stage): void {
    const at = this.now();
    if (stage === 'advertise') {
      a.roster = a.machine.closeAdvertise();
      this.log.append(jobId, round, attempt, 'close-advertise', '', {}, at);
    } else if (stage === 'share') {
      a.machine.closeShares();
      this.log.append(jobId, round, attempt, 'close-shares', '', {}, at);
    } else if (stage === 'upload') {
      a.survivors = a.machine.closeUpload();
      this.log.append(jobId, round, attempt, 'close-upload', '', {}, at);
    } else if (stage === 'consistency') {
      a.unmask = a.machine.closeConsistency();
      this.log.append(jobId, round, attempt, 'close-consistency', '', {}, at);
    } else {
      const evidence = a.machine.closeUnmask();
      a.done = true;
      this.log.append(jobId, round, attempt, 'close-unmask', '', { survivors: a.machine.survivorIds, evidence }, at);
      this.logger.info({ jobId, round, attempt, survivors: a.machine.survivorIds.length, selected: a.selected.length }, 'masked aggregation complete');
    }
  }

  /** Deadline sweep: closes due stages of every open masked attempt. */
  async tick(): Promise<void> {
    for (const job of this.store.activeJobs()) {
      try {
        if (!this.masked(job.job_id) || !job.current_round) continue;
        const row = this.store.round(job.job_id, job.current_round, job.attempt);
        if (row?.state === 'open') await this.progress(job.job_id, row.round, row.attempt);
      } catch (err) {
        this.logger.error({ err, jobId: job.job_id }, 'advancing masked aggregation failed');
      }
    }
  }
}
