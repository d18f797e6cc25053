import { describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import {
  admitDecline,
  admitHashReport,
  admitUpload,
  isLedgerEffect,
  MAX_ATTEMPTS,
  selectPartners,
  transition,
  type Effect,
  type JobView,
  type RoundEvent,
  type RoundRules,
  type RoundView,
} from '../../src/federation/round-machine.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import type { RoundPlan } from '../../src/federation/workload.ts';

const K = ['k-a', 'k-b', 'k-c'];

/** Two training rounds then an evaluation-only round, quorum 2, every accepted partner selected. */
function rules(o: { totalRounds?: number; lastUpdates?: boolean; quorum?: number } = {}): RoundRules {
  const total = o.totalRounds ?? 3;
  const plan = (round: number): RoundPlan => {
    const updates = round < total || !!o.lastUpdates;
    return {
      kind: updates ? 'train' : 'evaluate',
      stages: ['upload'],
      parts: [{ name: 'x', length: 1, domain: 'real', bound: null, use: 'state' }],
      selection: 'all',
      releases: [],
      updatesState: updates,
    };
  };
  return { quorum: o.quorum ?? 2, deadlineMs: 1000, totalRounds: total, plan, select: (_r, _a, eligible) => [...eligible].sort(), initialHash: 'h0' };
}

function fresh(status: 'invited' | 'accepted' = 'invited', keysReady = false): JobView {
  return { state: 'awaiting-keys', reason: null, createdAt: 0, keysReady, partners: K.map((keyId) => ({ keyId, status })), current: null, afterRound: 0 };
}

/** Feeds events in order (all at time `now` unless given), collecting every effect. */
function run(view: JobView, r: RoundRules, events: (RoundEvent | { at: number; e: RoundEvent })[]): { view: JobView; effects: Effect[] } {
  const effects: Effect[] = [];
  for (const x of events) {
    const [e, at] = 'at' in x ? [x.e, x.at] : [x, 10];
    const next = transition(view, e, r, at);
    view = next.view;
    effects.push(...next.effects);
  }
  return { view, effects };
}

const types = (effects: Effect[]) => effects.map((e) => e.type);
const up = (keyId: string, round: number, attempt = 0): RoundEvent => ({ type: 'uploaded', keyId, round, attempt });
const hashes = (round: number, pairs: [string, string][], attempt = 0): RoundEvent[] =>
  pairs.map((_, i) => ({ type: 'hash-reported', keyId: pairs[i][0], round, attempt, hashes: pairs.slice(0, i + 1).map(([keyId, hash]) => ({ keyId, hash })) }));

describe('round machine: opening round 1', () => {
  it('opens round 1 once every partner answered and the keys are ready, pinning the initial state hash', () => {
    const r = rules();
    let s = run(fresh(), r, [
      { type: 'answered', keyId: 'k-a', accepted: true },
      { type: 'answered', keyId: 'k-b', accepted: true },
    ]);
    expect(s.effects).toEqual([]);
    s = run(s.view, r, [{ type: 'keys-ready' }, { type: 'answered', keyId: 'k-c', accepted: false }]);
    expect(s.effects).toEqual([
      { type: 'open-round', round: 1, attempt: 0, kind: 'train', stage: 'upload', selected: ['k-a', 'k-b'], deadlineAt: 1010, baseHash: 'h0' },
    ]);
    expect(s.view.state).toBe('running');
    expect(s.view.current?.stage).toBe('upload');
  });

  it('after the join window, starts with a quorum even though someone never answered', () => {
    const view = { ...fresh('accepted', true), partners: [...fresh('accepted').partners.slice(0, 2), { keyId: 'k-c', status: 'invited' as const }] };
    expect(run(view, rules(), [{ at: 999, e: { type: 'tick' } }]).effects).toEqual([]);
    expect(types(run(view, rules(), [{ at: 1001, e: { type: 'tick' } }]).effects)).toEqual(['open-round']);
  });

  it('fails the job, ledger entry first, when every partner answered and fewer than the quorum accepted', () => {
    const s = run(
      fresh('invited', true),
      rules(),
      K.map((keyId, i) => ({ type: 'answered', keyId, accepted: i === 0 }) as RoundEvent),
    );
    expect(s.effects).toEqual([
      { type: 'record-halt', reason: 'job failed: only 1 partner(s) accepted, quorum is 2', afterRound: 0 },
      { type: 'stop', state: 'failed', cause: 'too-few-accepted', reason: 'only 1 partner(s) accepted, quorum is 2' },
    ]);
    expect(s.view.state).toBe('failed');
  });
});

describe('round machine: closing, retrying and failing rounds', () => {
  const running = () => run(fresh('accepted', true), rules(), [{ type: 'tick' }]).view;

  it('closes a round when every selected partner has uploaded, then waits for the state hashes', () => {
    const s = run(running(), rules(), [up('k-a', 1), up('k-b', 1)]);
    expect(types(s.effects)).toEqual([]);
    const c = run(s.view, rules(), [up('k-c', 1)]);
    expect(c.effects).toEqual([{ type: 'close-round', round: 1, attempt: 0, submitted: 3, selected: 3 }]);
    expect(c.view.current?.state).toBe('closed');
    expect(c.view.afterRound).toBe(1);
  });

  it('a decline or a withdrawal counts as an answer; at the deadline a quorum is enough', () => {
    expect(types(run(running(), rules(), [up('k-a', 1), up('k-b', 1), { type: 'declined', keyId: 'k-c', round: 1, attempt: 0 }]).effects)).toEqual([
      'close-round',
    ]);
    expect(types(run(running(), rules(), [up('k-a', 1), up('k-b', 1), { type: 'withdrawn', keyId: 'k-c' }]).effects)).toEqual(['close-round']);
    const late = run(running(), rules(), [up('k-a', 1), up('k-b', 1), { at: 1011, e: { type: 'tick' } }]);
    expect(types(late.effects)).toEqual(['close-round']);
  });

  it('a partner that left is not waited for in this round and selected for none after it', () => {
    const s = run(running(), rules(), [up('k-a', 1), { type: 'left', keyId: 'k-c' }]);
    expect(types(s.effects)).toEqual([]);
    expect(s.view.partners.find((p) => p.keyId === 'k-c')?.status).toBe('left');
    const closed = run(s.view, rules(), [up('k-b', 1)]);
    expect(closed.effects).toEqual([{ type: 'close-round', round: 1, attempt: 0, submitted: 2, selected: 3 }]);
    const next = run(
      closed.view,
      rules(),
      hashes(1, [
        ['k-a', 'h1'],
        ['k-b', 'h1'],
      ]),
    );
    expect(next.effects.find((e) => e.type === 'open-round')).toMatchObject({ round: 2, selected: ['k-a', 'k-b'] });
  });

  it('without a quorum the attempt fails and the round is retried, at most MAX_ATTEMPTS times', () => {
    let s = run(running(), rules(), [up('k-a', 1), { at: 1011, e: { type: 'tick' } }]);
    expect(s.effects).toEqual([
      { type: 'record-failed-attempt', round: 1, attempt: 0, reason: '1 submission(s) by the deadline, quorum is 2' },
      { type: 'fail-attempt', round: 1, attempt: 0, reason: '1 submission(s) by the deadline, quorum is 2' },
      { type: 'open-round', round: 1, attempt: 1, kind: 'train', stage: 'upload', selected: K, deadlineAt: 2011, baseHash: 'h0' },
    ]);
    for (let a = 1; a < MAX_ATTEMPTS; a++) s = run(s.view, rules(), [{ at: 1011 + a * 1001, e: { type: 'tick' } }]);
    expect(types(s.effects)).toEqual(['record-failed-attempt', 'fail-attempt', 'record-halt', 'stop']);
    expect(s.effects.at(-1)).toMatchObject({
      state: 'failed',
      cause: 'quorum-missed',
      reason: `round 1 failed ${MAX_ATTEMPTS} times: 0 submission(s) by the deadline, quorum is 2`,
    });
  });

  it('opens the next round from the agreed state hash once a quorum of partners reports the same one', () => {
    const closed = run(running(), rules(), [up('k-a', 1), up('k-b', 1), up('k-c', 1)]).view;
    const s = run(
      closed,
      rules(),
      hashes(1, [
        ['k-a', 'h1'],
        ['k-b', 'h1'],
      ]),
    );
    expect(s.effects).toEqual([
      {
        type: 'record-round',
        round: 1,
        attempt: 0,
        agreed: true,
        hashes: [
          { keyId: 'k-a', hash: 'h1' },
          { keyId: 'k-b', hash: 'h1' },
        ],
      },
      { type: 'open-round', round: 2, attempt: 0, kind: 'train', stage: 'upload', selected: K, deadlineAt: 1010, baseHash: 'h1' },
    ]);
  });

  it('stops the job when hashes disagree, also for a report that arrives after the next round opened', () => {
    const closed = run(running(), rules(), [up('k-a', 1), up('k-b', 1), up('k-c', 1)]).view;
    const split = run(
      closed,
      rules(),
      hashes(1, [
        ['k-a', 'h1'],
        ['k-b', 'hX'],
      ]),
    );
    expect(types(split.effects)).toEqual(['record-round', 'record-halt', 'stop']);
    expect(split.effects[0]).toMatchObject({ agreed: false });
    const agreed = run(
      closed,
      rules(),
      hashes(1, [
        ['k-a', 'h1'],
        ['k-b', 'h1'],
      ]),
    );
    const late = run(agreed.view, rules(), [
      {
        type: 'hash-reported',
        keyId: 'k-c',
        round: 1,
        attempt: 0,
        hashes: [
          { keyId: 'k-a', hash: 'h1' },
          { keyId: 'k-b', hash: 'h1' },
          { keyId: 'k-c', hash: 'hX' },
        ],
      },
    ]);
    expect(types(late.effects)).toEqual(['record-round', 'record-halt', 'stop']);
    expect(late.effects.at(-1)).toMatchObject({ cause: 'hashes-disagree', reason: "partners' model hashes disagree after round 1" });
  });

  it('the last round, evaluation only, writes evaluation and final model before the state changes, from the agreed state', () => {
    let s = run(running(), rules(), [
      up('k-a', 1),
      up('k-b', 1),
      up('k-c', 1),
      ...hashes(1, [
        ['k-a', 'h1'],
        ['k-b', 'h1'],
      ]),
    ]);
    s = run(s.view, rules(), [
      up('k-a', 2),
      up('k-b', 2),
      up('k-c', 2),
      ...hashes(2, [
        ['k-a', 'h2'],
        ['k-b', 'h2'],
      ]),
    ]);
    const last = run(s.view, rules(), [up('k-a', 3), up('k-b', 3), up('k-c', 3)]);
    expect(last.effects).toEqual([
      { type: 'record-evaluation', round: 3, attempt: 0 },
      { type: 'record-final', round: 3, modelHash: 'h2' },
      { type: 'complete' },
      { type: 'close-round', round: 3, attempt: 0, submitted: 3, selected: 3 },
    ]);
    expect(last.view.state).toBe('completed');
    // Ledger effects of a step always come before its state effects.
    const firstState = last.effects.findIndex((e) => !isLedgerEffect(e));
    expect(last.effects.slice(firstState).every((e) => !isLedgerEffect(e))).toBe(true);
  });

  it('a last round that changes the state completes once its hashes agree, recording the round then the final state', () => {
    const r = rules({ totalRounds: 1, lastUpdates: true });
    const s = run(fresh('accepted', true), r, [
      { type: 'tick' },
      up('k-a', 1),
      up('k-b', 1),
      up('k-c', 1),
      ...hashes(1, [
        ['k-a', 'm'],
        ['k-b', 'm'],
      ]),
    ]);
    expect(types(s.effects)).toEqual(['open-round', 'close-round', 'record-round', 'record-final', 'complete']);
    expect(s.effects[3]).toEqual({ type: 'record-final', round: 1, modelHash: 'm' });
  });

  it("halts on the owner's brake, and refuses to halt a job that is over", () => {
    const s = run(running(), rules(), [{ type: 'halt', reason: 'owner pulled the brake' }]);
    expect(s.effects).toEqual([
      { type: 'record-halt', reason: 'owner pulled the brake', afterRound: 0 },
      { type: 'stop', state: 'halted', cause: 'halted', reason: 'owner pulled the brake' },
    ]);
    expect(() => transition(s.view, { type: 'halt', reason: 'again' }, rules(), 20)).toThrow(/the job is halted/);
  });

  it('never mutates the view it is given', () => {
    const v = running();
    const copy = structuredClone(v);
    transition(v, up('k-a', 1), rules(), 10);
    transition(v, { type: 'halt', reason: 'x' }, rules(), 10);
    expect(v).toEqual(copy);
  });
});

describe('round machine: admission', () => {
  const open: RoundView = {
    round: 2,
    attempt: 1,
    kind: 'train',
    state: 'open',
    stage: 'upload',
    selected: ['k-a'],
    submitted: [],
    declined: [],
    deadlineAt: 100,
    baseHash: 'h',
    hashes: [],
  };
  const code = (f: () => void) => {
    try {
      f();
    } catch (err) {
      return (err as FedmarkError).code;
    }
    return 'ok';
  };

  it('takes uploads only for the open attempt, before its deadline, from a selected partner', () => {
    expect(code(() => admitUpload(open, { round: 2, attempt: 1 }, 'k-a', 2, 1, 50))).toBe('ok');
    expect(code(() => admitUpload(undefined, { round: 2, attempt: 1 }, 'k-a', 3, 0, 50))).toBe('ROUND_NOT_OPEN');
    expect(code(() => admitUpload({ ...open, state: 'failed' }, { round: 2, attempt: 2 }, 'k-a', 2, 1, 50))).toBe('ROUND_CLOSED');
    expect(code(() => admitUpload(open, { round: 2, attempt: 1 }, 'k-a', 2, 1, 101))).toBe('ROUND_DEADLINE');
    expect(code(() => admitUpload(open, { round: 2, attempt: 1 }, 'k-b', 2, 1, 50))).toBe('NOT_SELECTED');
    expect(code(() => admitDecline(open, 'k-b', 2, 1))).toBe('NOT_SELECTED');
    expect(code(() => admitDecline({ ...open, state: 'closed' }, 'k-a', 2, 1))).toBe('ROUND_NOT_OPEN');
  });

  it('takes state hashes only for closed rounds that change the state', () => {
    const plan = rules().plan;
    expect(code(() => admitHashReport({ ...open, state: 'closed' }, plan(2), 2))).toBe('ok');
    expect(code(() => admitHashReport(undefined, null, 2))).toBe('ROUND_NOT_CLOSED');
    expect(code(() => admitHashReport({ ...open, state: 'closed' }, plan(3), 3))).toBe('NO_MODEL_IN_ROUND');
  });
});

describe('partner selection', () => {
  const m = { seed: 42, partnersPerRound: 2 } as JobManifest;
  const eligible = ['e', 'c', 'a', 'd', 'b'];

  it('is seeded by the manifest, round and attempt, and returns sorted key ids', () => {
    const s = selectPartners(m, 'sample', 1, 0, eligible);
    expect(s).toHaveLength(2);
    expect(s).toEqual([...s].sort());
    expect(selectPartners(m, 'sample', 1, 0, [...eligible].reverse())).toEqual(s);
    const across = new Set([0, 1, 2, 3, 4, 5].map((r) => selectPartners(m, 'sample', r, 0, eligible).join()));
    expect(across.size).toBeGreaterThan(1);
  });

  it('takes everyone for `all` rounds and when there are no more eligible partners than partnersPerRound', () => {
    expect(selectPartners(m, 'all', 1, 0, eligible)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(selectPartners(m, 'sample', 1, 0, ['z', 'y'])).toEqual(['y', 'z']);
  });
});

describe('round machine: an early stop the agreed state records', () => {
  const stopAt = (round: number, sel: (keyId: string) => { round: number; stopped: boolean } | null): RoundEvent[] => {
    const reports = K.map((keyId) => ({ keyId, hash: `h${round}`, selection: sel(keyId) }));
    return reports.map((_, i) => ({ type: 'hash-reported', keyId: K[i], round, attempt: 0, hashes: reports.slice(0, i + 1) }));
  };
  const r5 = rules({ totalRounds: 5 });
  const start: RoundEvent[] = [{ type: 'keys-ready' }, ...K.map((keyId): RoundEvent => ({ type: 'answered', keyId, accepted: true }))];

  it('skips the remaining training rounds and opens the last round on the stopped state, recording the selection', () => {
    const { view, effects } = run(fresh(), r5, [...start, ...K.map((k) => up(k, 1)), ...stopAt(1, () => ({ round: 1, stopped: true }))]);
    expect(view.current).toMatchObject({ round: 5, kind: 'evaluate', baseHash: 'h1', state: 'open' });
    expect(effects.find((e) => e.type === 'record-round')).toMatchObject({ round: 1, agreed: true, selection: { round: 1, stopped: true } });
  });

  it('a partner that claims a stop its state (and the others’) does not record stops the job: hashes alone do not agree', () => {
    const { view, effects } = run(fresh(), r5, [...start, ...K.map((k) => up(k, 1)), ...stopAt(1, (k) => (k === 'k-c' ? { round: 1, stopped: true } : null))]);
    expect(view.state).toBe('failed');
    expect(effects.some((e) => e.type === 'stop' && e.cause === 'hashes-disagree')).toBe(true);
    expect(effects.some((e) => e.type === 'open-round' && e.round === 5)).toBe(false);
  });
});
