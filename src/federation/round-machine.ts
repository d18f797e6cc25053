import { createRng, deriveSeed, shuffleInPlace } from '../util/rng.ts';
import type { JobManifest } from './manifest.ts';
import { DomainError } from './protocol/errors.ts';
import type { JobState, PartnerStatus, RoundState } from './protocol/schemas.ts';
import { planOf, relaySenders, type AnyWorkload, type ModelSelection, type RoundPlan, type StageName } from './workload.ts';

/**
 * The round rules of every job, as a pure state machine: `transition(view, event)` returns the next
 * view and the effects to carry out — quorum, deadline, attempts and retries, the evaluation round,
 * model-hash agreement, withdrawals and halts. It does no I/O and reads no clock (the caller passes
 * `now`). The coordinator's engine builds the view from SQLite, persists the effects and writes the
 * ledger; simulate() keeps the view in memory and runs the partners in-process. Both drive this one
 * copy of the rules.
 */

/** How many times a round is tried when its quorum is not met, before the job fails. */
export const MAX_ATTEMPTS = 3;

export interface RoundView {
  round: number;
  attempt: number;
  kind: string;
  state: RoundState;
  /** The stage collecting messages while the round is open (today always `upload`); null once it is over. */
  stage: StageName | null;
  selected: string[];
  submitted: string[];
  declined: string[];
  deadlineAt: number;
  /** Hash of the state the round started from. */
  baseHash: string | null;
  /** State hashes the partners reported after applying this round. */
  hashes: HashReport[];
  /** A multi-stage aggregation that cannot complete (masked aggregation with fewer than t responders): the attempt fails with this reason, like a missed quorum. */
  failure?: string;
}

/** A key holder's report after applying a round: the state's hash and the model selection the state records (if any). */
export interface HashReport {
  keyId: string;
  hash: string;
  selection?: ModelSelection | null;
}

/** What reports must agree on: the hash and the selection (a partner cannot claim a stop the state does not record). */
function reportKey(h: HashReport): string {
  return h.selection ? `${h.hash} ${h.selection.round} ${h.selection.stopped}` : h.hash;
}

export interface JobView {
  state: JobState;
  reason: string | null;
  createdAt: number;
  keysReady: boolean;
  partners: { keyId: string; status: PartnerStatus }[];
  /** The latest (round, attempt); null before round 1. */
  current: RoundView | null;
  /** The last closed round that changed the state (a halt records it as `afterRound`). */
  afterRound: number;
}

/** What the machine needs to know about a job, from its manifest and workload alone. */
export interface RoundRules {
  quorum: number;
  deadlineMs: number;
  totalRounds: number;
  plan(round: number): RoundPlan;
  select(round: number, attempt: number, eligible: string[]): string[];
  /** Hash of the workload's initial state: round 1 pins it. */
  initialHash: string;
  /** false: round 1 does not wait for a key ceremony (workloads whose parties keep their own keys). */
  sharedKey?: boolean;
}

export type RoundEvent =
  /** Time passed (the coordinator's deadline sweep) or the view was reloaded: re-evaluate. */
  | { type: 'tick' }
  | { type: 'answered'; keyId: string; accepted: boolean }
  | { type: 'keys-ready' }
  | { type: 'uploaded'; keyId: string; round: number; attempt: number }
  | { type: 'declined'; keyId: string; round: number; attempt: number }
  | { type: 'withdrawn'; keyId: string }
  /** The partner stopped for good: like a decline of this and every later round (it is selected for none). */
  | { type: 'left'; keyId: string }
  /** A state hash for a closed round; `hashes` are all reported for it so far, this one included. */
  | { type: 'hash-reported'; keyId: string; round: number; attempt: number; hashes: HashReport[] }
  | { type: 'halt'; reason: string };

/** Ledger effects: written before the state change they belong to (a crash in between redoes the step; ledger appends are redo-safe). */
export type LedgerEffect =
  | { type: 'record-round'; round: number; attempt: number; agreed: boolean; hashes: HashReport[]; selection?: ModelSelection }
  | { type: 'record-evaluation'; round: number; attempt: number }
  /** An attempt that missed its quorum: its submitters' releases stay spent, so they are recorded. */
  | { type: 'record-failed-attempt'; round: number; attempt: number; reason: string }
  | { type: 'record-final'; round: number; modelHash: string }
  | { type: 'record-halt'; reason: string; afterRound: number };

/** State effects: the changes of one step, committed together. */
export type StateEffect =
  | { type: 'open-round'; round: number; attempt: number; kind: string; stage: StageName; selected: string[]; deadlineAt: number; baseHash: string | null }
  | { type: 'close-round'; round: number; attempt: number; submitted: number; selected: number }
  | { type: 'fail-attempt'; round: number; attempt: number; reason: string }
  | { type: 'complete' }
  | { type: 'stop'; state: 'failed' | 'halted'; cause: StopCause; reason: string };

/** Why a job stops before completing. */
export type StopCause = 'too-few-accepted' | 'quorum-missed' | 'hashes-disagree' | 'halted';

export type Effect = LedgerEffect | StateEffect;

export function isLedgerEffect(e: Effect): e is LedgerEffect {
  return e.type.startsWith('record-');
}

/** Seeded choice of partnersPerRound among the eligible partners (all of them for `all` rounds). */
export function selectPartners(manifest: JobManifest, selection: RoundPlan['selection'], round: number, attempt: number, eligible: string[]): string[] {
  const sorted = [...eligible].sort();
  if (selection === 'all' || sorted.length <= manifest.partnersPerRound) return sorted;
  const rng = createRng(deriveSeed(manifest.seed, 'select', round, attempt));
  shuffleInPlace(sorted, rng);
  return sorted.slice(0, manifest.partnersPerRound).sort();
}

export function roundRules(manifest: JobManifest, workload: AnyWorkload): RoundRules {
  const plans = new Map<number, RoundPlan>();
  const plan = (round: number): RoundPlan => {
    let p = plans.get(round);
    if (!p) {
      p = planOf(workload, manifest, round);
      plans.set(round, p);
    }
    return p;
  };
  return {
    quorum: manifest.quorum,
    deadlineMs: manifest.roundDeadlineSeconds * 1000,
    totalRounds: workload.totalRounds(manifest),
    plan,
    // A relay round needs every one of its senders: they are selected whether eligible or not (open() stops the job when one is gone).
    select: (round, attempt, eligible) =>
      plan(round).relay ? relaySenders(plan(round)) : selectPartners(manifest, plan(round).selection, round, attempt, eligible),
    initialHash: workload.hash(workload.initialState(manifest)),
    sharedKey: workload.sharedKey !== false,
  };
}

// --- admission: may this message be taken at all? (the engine asks before it persists anything) -----

/** Throws the domain error that refuses an upload to (round, attempt), or returns. */
export function admitUpload(
  target: RoundView | undefined,
  current: { round: number; attempt: number },
  keyId: string,
  round: number,
  attempt: number,
  now: number,
): void {
  if (!target)
    throw new DomainError('ROUND_NOT_OPEN', `round ${round} attempt ${attempt} is not open (current: round ${current.round} attempt ${current.attempt})`);
  if (target.state !== 'open') throw new DomainError('ROUND_CLOSED', `round ${round} attempt ${attempt} is ${target.state}: late submissions are not accepted`);
  if (now > target.deadlineAt) throw new DomainError('ROUND_DEADLINE', `round ${round} passed its deadline: late submissions are not accepted`);
  if (!target.selected.includes(keyId)) throw new DomainError('NOT_SELECTED', `this partner is not selected for round ${round} attempt ${attempt}`);
}

export function admitDecline(target: RoundView | undefined, keyId: string, round: number, attempt: number): void {
  if (!target || target.state !== 'open') throw new DomainError('ROUND_NOT_OPEN', `round ${round} attempt ${attempt} is not open`);
  if (!target.selected.includes(keyId)) throw new DomainError('NOT_SELECTED', 'only selected partners can decline a round');
}

/** A state hash is reported for a closed round that changes the state. */
export function admitHashReport(closed: RoundView | undefined, plan: RoundPlan | null, round: number): void {
  if (!closed || !plan) throw new DomainError('ROUND_NOT_CLOSED', `round ${round} has no published aggregate yet`);
  if (!plan.updatesState)
    throw new DomainError(
      'NO_MODEL_IN_ROUND',
      `round ${round} is ${plan.kind === 'evaluate' ? 'an evaluation round' : `a ${plan.kind} round`} and changes no model`,
    );
}

// --- transitions -------------------------------------------------------------------------------

const isActive = (s: JobState) => s === 'awaiting-keys' || s === 'running';

/** Applies one event and settles: returns the next view and the effects, in the order they must be carried out. */
export function transition(view: JobView, event: RoundEvent, rules: RoundRules, now: number): { view: JobView; effects: Effect[] } {
  const v = cloneView(view);
  const effects: Effect[] = [];
  const stop = (cause: StopCause, reason: string) => {
    const state = cause === 'halted' ? 'halted' : 'failed';
    effects.push(
      { type: 'record-halt', reason: state === 'failed' ? `job failed: ${reason}` : reason, afterRound: v.afterRound },
      { type: 'stop', state, cause, reason },
    );
    v.state = state;
    v.reason = reason;
  };
  const setStatus = (keyId: string, status: PartnerStatus) => {
    const p = v.partners.find((x) => x.keyId === keyId);
    if (p) p.status = status;
  };
  const isCurrent = (round: number, attempt: number) => v.current !== null && v.current.round === round && v.current.attempt === attempt;

  switch (event.type) {
    case 'tick':
    case 'keys-ready':
      if (event.type === 'keys-ready') v.keysReady = true;
      break;
    case 'answered':
      setStatus(event.keyId, event.accepted ? 'accepted' : 'refused');
      break;
    case 'withdrawn':
    case 'left':
      setStatus(event.keyId, event.type);
      break;
    case 'uploaded':
      if (isCurrent(event.round, event.attempt) && !v.current!.submitted.includes(event.keyId)) v.current!.submitted.push(event.keyId);
      break;
    case 'declined':
      if (isCurrent(event.round, event.attempt) && !v.current!.declined.includes(event.keyId)) v.current!.declined.push(event.keyId);
      break;
    case 'hash-reported': {
      if (v.current && v.current.round === event.round) v.current.hashes = event.hashes.map((h) => ({ ...h }));
      // A partner whose state differs from the others' after a round stops the job, even after the
      // next round has opened: its copy of the model is not the one the others train.
      if (new Set(event.hashes.map(reportKey)).size > 1 && v.state === 'running') {
        effects.push({ type: 'record-round', round: event.round, attempt: event.attempt, agreed: false, hashes: event.hashes });
        stop('hashes-disagree', `partners' model hashes disagree after round ${event.round}`);
        return { view: v, effects };
      }
      break;
    }
    case 'halt':
      if (!isActive(v.state)) throw new DomainError('JOB_CLOSED', `the job is ${v.state}`);
      stop('halted', event.reason);
      return { view: v, effects };
  }
  settle(v, rules, now, effects, stop);
  return { view: v, effects };
}

/** Moves the job forward until nothing more follows from its view: opens, closes, retries or finishes rounds. */
function settle(v: JobView, rules: RoundRules, now: number, effects: Effect[], stop: (cause: StopCause, reason: string) => void): void {
  const open = (round: number, attempt: number, baseHash: string | null) => {
    const plan = rules.plan(round);
    const eligible = v.partners.filter((p) => p.status === 'accepted').map((p) => p.keyId);
    const selected = rules.select(round, attempt, eligible);
    const missing = plan.relay ? selected.filter((k) => !eligible.includes(k)) : [];
    if (missing.length) {
      stop('quorum-missed', `round ${round} relays messages of ${missing.join(', ')}, who no longer take part`);
      return;
    }
    const r: RoundView = {
      round,
      attempt,
      kind: plan.kind,
      state: 'open',
      stage: plan.stages[0],
      selected,
      submitted: [],
      declined: [],
      deadlineAt: now + rules.deadlineMs,
      baseHash,
      hashes: [],
    };
    effects.push({ type: 'open-round', round, attempt, kind: r.kind, stage: plan.stages[0], selected, deadlineAt: r.deadlineAt, baseHash });
    v.current = r;
    v.state = 'running';
  };
  const finish = (round: number, modelHash: string) => {
    effects.push({ type: 'record-final', round, modelHash }, { type: 'complete' });
    v.state = 'completed';
    v.reason = null;
  };

  for (let guard = 0; guard < 4 * MAX_ATTEMPTS * (rules.totalRounds + 2); guard++) {
    if (v.state === 'awaiting-keys') {
      // Round 1 waits until every partner has answered, or until the join window (one round
      // deadline after the job was registered) closes with at least a quorum on board.
      const answered = v.partners.filter((p) => p.status !== 'invited').length;
      const accepted = v.partners.filter((p) => p.status === 'accepted').length;
      if (answered === v.partners.length && accepted < rules.quorum) {
        stop('too-few-accepted', `only ${accepted} partner(s) accepted, quorum is ${rules.quorum}`);
        return;
      }
      const joinWindowOver = now > v.createdAt + rules.deadlineMs;
      // The initial state is public (seeded from the manifest), so round 1 pins its hash too.
      if ((v.keysReady || rules.sharedKey === false) && accepted >= rules.quorum && (answered === v.partners.length || joinWindowOver)) {
        open(1, 0, rules.initialHash);
        continue;
      }
      return;
    }
    if (v.state !== 'running' || !v.current) return;
    const r = v.current;
    const plan = rules.plan(r.round);
    const last = r.round === rules.totalRounds;
    if (r.state === 'open') {
      // A partner that withdrew or left is not waited for (it answered this round for good).
      const gone = new Set(v.partners.filter((p) => p.status === 'withdrawn' || p.status === 'left').map((p) => p.keyId));
      const outstanding = r.selected.filter((k) => !r.submitted.includes(k) && !r.declined.includes(k) && !gone.has(k));
      const pastDeadline = now > r.deadlineAt;
      if (outstanding.length > 0 && !pastDeadline && !r.failure) return;
      // An upload stage completes with a quorum; a relay stage only when every sender has relayed its messages.
      const complete = !r.failure && (plan.relay ? r.selected.every((k) => r.submitted.includes(k)) : r.submitted.length >= rules.quorum);
      if (complete) {
        // The upload stage is complete: the round's sums are final (a relay round has nothing to evaluate).
        if (!plan.updatesState && !plan.relay) effects.push({ type: 'record-evaluation', round: r.round, attempt: r.attempt });
        if (last && !plan.updatesState) finish(r.round, r.baseHash!);
        effects.push({ type: 'close-round', round: r.round, attempt: r.attempt, submitted: r.submitted.length, selected: r.selected.length });
        r.state = 'closed';
        r.stage = null;
        if (plan.updatesState) v.afterRound = Math.max(v.afterRound, r.round);
        else if (!last) open(r.round + 1, 0, r.baseHash);
        continue;
      }
      const reason = r.failure
        ? r.failure
        : plan.relay
          ? `${r.selected.filter((k) => !r.submitted.includes(k)).join(', ')} relayed nothing ${pastDeadline ? 'by the deadline' : 'and no longer take part'}`
          : `${r.submitted.length} submission(s) ${pastDeadline ? 'by the deadline' : 'possible'}, quorum is ${rules.quorum}`;
      effects.push(
        { type: 'record-failed-attempt', round: r.round, attempt: r.attempt, reason },
        { type: 'fail-attempt', round: r.round, attempt: r.attempt, reason },
      );
      r.state = 'failed';
      r.stage = null;
      if (r.attempt + 1 >= MAX_ATTEMPTS) {
        stop('quorum-missed', `round ${r.round} failed ${MAX_ATTEMPTS} times: ${reason}`);
        return;
      }
      open(r.round, r.attempt + 1, r.baseHash);
      continue;
    }
    if (r.state === 'closed' && plan.updatesState) {
      const distinct = new Set(r.hashes.map(reportKey));
      const active = v.partners.filter((p) => p.status === 'accepted').length;
      if (distinct.size === 1 && r.hashes.length >= Math.min(rules.quorum, active)) {
        const agreed = r.hashes[0].hash;
        const selection = r.hashes[0].selection ?? undefined;
        effects.push({ type: 'record-round', round: r.round, attempt: r.attempt, agreed: true, hashes: r.hashes, ...(selection ? { selection } : {}) });
        if (last) finish(r.round, agreed);
        // Training stopped early (the agreed state says so): the remaining state rounds are skipped, the last round follows.
        else open(selection?.stopped ? rules.totalRounds : r.round + 1, 0, agreed);
        continue;
      }
    }
    return;
  }
}

function cloneView(v: JobView): JobView {
  return {
    ...v,
    partners: v.partners.map((p) => ({ ...p })),
    current: v.current
      ? {
          ...v.current,
          selected: [...v.current.selected],
          submitted: [...v.current.submitted],
          declined: [...v.current.declined],
          hashes: v.current.hashes.map((h) => ({ ...h })),
        }
      : null,
  };
}
