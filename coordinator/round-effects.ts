import { attemptConfig, MASKED_PART, secaggSpecOf } from '../src/federation/secagg/round-config.ts';
import { secaggLedgerRecord } from '../src/federation/secagg/ledger-record.ts';
import type { SecureSumScheme } from '../src/federation/secure-sum.ts';
import { FedmarkError } from '../src/errors.ts';
import type { Logger } from 'pino';
import { sha256Hex } from '../src/util/hash.ts';
import type { JobManifest } from '../src/federation/manifest.ts';
import { isLedgerEffect, type Effect, type LedgerEffect, type RoundRules, type StateEffect } from '../src/federation/round-machine.ts';
import { stateRounds, type AnyWorkload } from '../src/federation/workload.ts';
import type { DpReport } from '../src/federation/update-codec.ts';
import { attemptReleases, roundRecord } from '../src/federation/release-records.ts';
import type { AttemptReleases, SecaggLedgerRecord } from '../src/privacy/ledger/entries.ts';
import type { CoordinatorStore, SubmissionRow } from './store.ts';
import type { JobLedgers } from './job-ledgers.ts';

export interface JobContext {
  jobId: string;
  manifest: JobManifest;
  workload: AnyWorkload;
  rules: RoundRules;
}

/**
 * Carries out the round machine's effects for the coordinator. Ledger first, state second: each
 * step's ledger entries are written before its state changes are committed (together, in one SQLite
 * transaction), so a crash in between redoes the step on restart, and the ledger's redo-safe appends
 * keep the entries single.
 */
export class RoundEffects {
  constructor(
    private readonly store: CoordinatorStore,
    private readonly ledger: JobLedgers,
    private readonly log: Logger,
    private readonly now: () => number,
    /** Masked jobs: the BFV parameters of the job's scheme (opened before any masked attempt ends; coordinator/job-engine.ts). */
    private readonly maskingOf: (jobId: string) => SecureSumScheme['masking'] | undefined = () => undefined,
  ) {}

  run(ctx: JobContext, effects: Effect[]): void {
    let batch: StateEffect[] = [];
    const flush = () => {
      if (!batch.length) return;
      const step = batch;
      batch = [];
      this.store.transaction(() => {
        for (const e of step) this.applyState(ctx.jobId, e);
      });
      for (const e of step) this.logState(ctx.jobId, e);
    };
    for (const e of effects) {
      if (isLedgerEffect(e)) {
        flush();
        this.writeLedger(ctx, e);
      } else batch.push(e);
    }
    flush();
  }

  private applyState(jobId: string, e: StateEffect): void {
    const now = this.now();
    switch (e.type) {
      case 'open-round':
        this.store.insertRound({
          job_id: jobId,
          round: e.round,
          attempt: e.attempt,
          kind: e.kind,
          state: 'open',
          stage: e.stage,
          selected: JSON.stringify(e.selected),
          opened_at: now,
          deadline_at: e.deadlineAt,
          base_model_hash: e.baseHash,
        });
        this.store.updateJob(jobId, { state: 'running', current_round: e.round, attempt: e.attempt });
        break;
      case 'close-round':
        this.store.updateRound(jobId, e.round, e.attempt, { state: 'closed', stage: null, closed_at: now });
        break;
      case 'fail-attempt':
        this.store.updateRound(jobId, e.round, e.attempt, { state: 'failed', stage: null, closed_at: now });
        break;
      case 'complete':
        this.store.updateJob(jobId, { state: 'completed', status_reason: null });
        break;
      case 'stop':
        this.store.updateJob(jobId, { state: e.state, status_reason: e.reason });
        break;
    }
  }

  private logState(jobId: string, e: StateEffect): void {
    if (e.type === 'open-round') this.log.info({ jobId, round: e.round, attempt: e.attempt, selected: e.selected.length }, 'round opened');
    else if (e.type === 'close-round') this.log.info({ jobId, round: e.round, submitted: e.submitted, selected: e.selected }, 'round closed');
    else if (e.type === 'fail-attempt') this.log.warn({ jobId, round: e.round, attempt: e.attempt, reason: e.reason }, 'round failed');
    else if (e.type === 'stop' && e.cause === 'hashes-disagree') this.log.error({ jobId, reason: e.reason }, 'model hashes disagree: job stopped');
    else if (e.type === 'stop') this.log.warn({ jobId, state: e.state, reason: e.reason }, e.cause === 'halted' ? 'job halted by its owner' : 'job failed');
  }

  private writeLedger(ctx: JobContext, e: LedgerEffect): void {
    const { jobId } = ctx;
    switch (e.type) {
      case 'record-round':
        this.ledger.append(jobId, 'round', this.roundEntry(ctx, e));
        break;
      case 'record-evaluation': {
        const subs = this.store.submissions(jobId, e.round, e.attempt);
        const partners = releasesOf(subs);
        this.ledger.append(jobId, 'evaluation', {
          jobId,
          round: e.round,
          attempt: e.attempt,
          // The coordinator cannot read the metrics: it records which encrypted sums were formed from which uploads.
          metrics: { partners: subs.length },
          ciphertextHashes: [...subs.flatMap((s) => JSON.parse(s.part_hashes) as string[]), ...this.sumHashes(ctx, e.round, e.attempt, 'all')],
          ...(partners.length ? { partners } : {}),
        });
        break;
      }
      case 'record-failed-attempt': {
        const row = this.store.round(jobId, e.round, e.attempt)!;
        const subs = this.store.submissions(jobId, e.round, e.attempt);
        this.ledger.append(jobId, 'attempt.failed', {
          jobId,
          round: e.round,
          attempt: e.attempt,
          kind: row.kind,
          reason: e.reason,
          selected: JSON.parse(row.selected) as string[],
          submitted: subs.map((s) => s.key_id),
          partners: releasesOf(subs),
          ...this.secaggRecord(ctx, e.round, e.attempt, JSON.parse(row.selected) as string[]),
        });
        break;
      }
      case 'record-final': {
        const privacy = ctx.workload.privacy(ctx.manifest);
        const ran = stateRounds(ctx.workload, ctx.manifest).filter((r) => this.store.closedRound(jobId, r));
        const selection = ran.length ? (this.store.modelHashes(jobId, ran[ran.length - 1])[0]?.selection ?? null) : null;
        this.ledger.append(jobId, 'model.final', {
          jobId,
          modelHash: e.modelHash,
          // The state rounds that ran: fewer than planned when training stopped early.
          rounds: ran.length,
          ...(selection ? { selection } : {}),
          partners: privacy ? this.finalEpsilons(jobId).map((x) => ({ partner: x.keyId, epsilon: x.epsilon, delta: privacy.delta })) : [],
        });
        break;
      }
      case 'record-halt':
        this.ledger.append(jobId, 'job.halt', { jobId, reason: e.reason, afterRound: e.afterRound });
        break;
    }
  }

  /** Hashes of a round's published sums, in the plan's part order (`state`: the parts the state is built from). */
  private sumHashes(ctx: JobContext, round: number, attempt: number, use: 'state' | 'all'): string[] {
    const sums = this.store.partSums(ctx.jobId, round, attempt);
    return sumPartNames(ctx, round, use)
      .filter((name) => sums[name])
      .map((name) => sha256Hex(sums[name]));
  }

  /** The ledger's record of a state-changing round: who took part, their DP parameters and ε, ciphertext and state hashes. */
  private roundEntry(ctx: JobContext, e: Extract<LedgerEffect, { type: 'record-round' }>) {
    const { jobId } = ctx;
    const row = this.store.round(jobId, e.round, e.attempt)!;
    const selected = JSON.parse(row.selected) as string[];
    const subs = this.store.submissions(jobId, e.round, e.attempt);
    const submitted = subs.map((s) => s.key_id);
    const partners = releasesOf(subs).map(roundRecord);
    const counts = new Map<string, number>();
    for (const h of e.hashes) counts.set(h.hash, (counts.get(h.hash) ?? 0) + 1);
    const majority = [...counts].sort((a, b) => b[1] - a[1])[0][0];
    const sums = this.store.partSums(jobId, e.round, e.attempt);
    const stateSums = sumPartNames(ctx, e.round, 'state')
      .filter((name) => sums[name])
      .map((name) => sums[name]);
    return {
      jobId,
      round: e.round,
      attempt: e.attempt,
      selected,
      submitted,
      dropped: selected.filter((k) => !submitted.includes(k)),
      partners,
      aggregateHash: sha256Hex(Buffer.concat(stateSums)),
      globalModelHash: majority,
      modelHashes: e.hashes.map((h) => ({ partner: h.keyId, hash: h.hash })),
      modelHashesAgreed: e.agreed,
      ...(e.selection ? { selection: e.selection } : {}),
      ...this.secaggRecord(ctx, e.round, e.attempt, selected),
    };
  }

  /** A masked attempt's secure-aggregation config, as every partner derived it (the audit recomputes it: federation/secagg/ledger-record.ts). */
  private secaggRecord(ctx: JobContext, round: number, attempt: number, selected: string[]): { secagg?: SecaggLedgerRecord } {
    if (!secaggSpecOf(ctx.manifest)) return {};
    const masking = this.maskingOf(ctx.jobId);
    if (!masking)
      throw new FedmarkError(
        'SECAGG_SCHEME_NOT_OPEN',
        `job ${ctx.jobId}: its BFV scheme is not open, so round ${round}'s ledger entry cannot record its config`,
      );
    return { secagg: secaggLedgerRecord(attemptConfig(ctx.manifest, ctx.rules.plan(round), masking, round, attempt, selected)) };
  }

  /** The highest cumulative ε each partner reported, over every attempt it uploaded to (failed ones included: they were charged). */
  private finalEpsilons(jobId: string): { keyId: string; epsilon: number }[] {
    const last = new Map<string, number>();
    for (const s of this.store.allSubmissions(jobId)) {
      const dp = (JSON.parse(s.meta) as { dp: DpReport | null }).dp;
      if (dp) last.set(s.key_id, Math.max(last.get(s.key_id) ?? 0, dp.epsilonAfterRound));
    }
    return [...last].map(([keyId, epsilon]) => ({ keyId, epsilon }));
  }
}

/** The names of a round's published sums (`state`: those the state is built from); a masked round publishes one, holding every part. */
function sumPartNames(ctx: JobContext, round: number, use: 'state' | 'all'): string[] {
  if (ctx.manifest.encryption.scheme === 'secagg-bfv') return [MASKED_PART];
  return ctx.rules
    .plan(round)
    .parts.filter((p) => use === 'all' || p.use === 'state')
    .map((p) => p.name);
}

/** What each submitter of an attempt released, from its upload's DP report (nothing for uploads without DP). */
function releasesOf(subs: SubmissionRow[]): AttemptReleases[] {
  return subs.flatMap((s) => {
    const meta = JSON.parse(s.meta) as { attempt: number; dp: DpReport | null };
    return meta.dp ? [attemptReleases(s.key_id, meta.attempt, meta.dp, JSON.parse(s.part_hashes) as string[])] : [];
  });
}
