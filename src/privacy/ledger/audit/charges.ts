/**
 * What every record of a partner's releases is audited for, wherever the ledger holds it — a
 * `round`, an `evaluation`, an `attempt.failed` (version 3) — so ε is recomputed from every attempt
 * that was charged, failed attempts included.
 */
import type { AttemptReleases, PayloadOf } from '../entries.ts';
import type { DpEvent } from '../../dp-event.ts';
import { fmt, limitOf, understated, type JobWalk, type PartnerState } from './types.ts';

type RoundPartnerRecord = PayloadOf<'round'>['partners'][number];

/** A partner may take part only after accepting, never after refusing, withdrawing or refusing that round for budget. */
export function checkParticipation(w: JobWalk, seq: number, st: PartnerState, round: number): void {
  if (st.status === 'no-response') w.err(seq, 'PARTICIPATION_WITHOUT_ACCEPTANCE', `round ${round}: ${st.name} took part without an acceptance`);
  if (st.status === 'refused') w.err(seq, 'PARTICIPATION_AFTER_REFUSAL', `round ${round}: ${st.name} took part after refusing the job (seq ${st.responseSeq})`);
  if (st.withdrawAfterRound !== undefined && round > st.withdrawAfterRound) {
    w.err(seq, 'PARTICIPATION_AFTER_WITHDRAW', `round ${round}: ${st.name} took part after withdrawing after round ${st.withdrawAfterRound}`);
  }
  if (st.budgetRefusedRounds.has(round)) w.err(seq, 'PARTICIPATION_AFTER_BUDGET_REFUSAL', `round ${round}: ${st.name} took part after refusing it for budget`);
}

/** The DP events of a round record: its labelled releases (version 3), or its one release (version 2). */
export function eventsOfRoundRecord(rec: RoundPartnerRecord): DpEvent[] {
  if (rec.releases) return rec.releases.map((r) => ({ samplingRate: r.samplingRate, noiseMultiplier: r.noiseMultiplier, steps: r.steps }));
  return [{ samplingRate: rec.samplingRate, noiseMultiplier: rec.noiseMultiplier, steps: rec.steps }];
}

/** A round record as an attempt's releases (a version-2 record is one `update` release of the round's attempt, or 0). */
export function recordOf(rec: RoundPartnerRecord, roundAttempt: number | undefined): AttemptReleases {
  return {
    partner: rec.partner,
    attempt: rec.attempt ?? roundAttempt ?? 0,
    releases: rec.releases ?? [
      { label: 'update', samplingRate: rec.samplingRate, noiseMultiplier: rec.noiseMultiplier, steps: rec.steps, sensitivity: rec.clipNorm },
    ],
    delta: rec.delta,
    epsilonSpent: rec.epsilonSpent,
    epsilonCumulative: rec.epsilonCumulative,
    ciphertextHashes: rec.ciphertextHashes,
  };
}

export function checkCiphertexts(w: JobWalk, seq: number, st: PartnerState, where: string, hashes: readonly string[]): void {
  for (const h of hashes) {
    const first = w.seenCiphertexts.get(h);
    if (first !== undefined) w.err(seq, 'CIPHERTEXT_REPLAYED', `${where}: ${st.name}'s ciphertext ${h.slice(0, 12)}… was already recorded at seq ${first}`);
    else w.seenCiphertexts.set(h, seq);
  }
}

/**
 * Adds one record's events to the partner's history and recomputes its ε: the recorded cumulative
 * ε must not fall, nor be below the recomputed one, nor may ε spent understate the increase; the
 * partner's declared limits (ε, δ, minimum noise) are checked against every release.
 */
export function chargeReleases(
  w: JobWalk,
  seq: number,
  st: PartnerState,
  where: string,
  rec: { delta: number; epsilonSpent: number; epsilonCumulative: number },
  events: DpEvent[],
): void {
  if (rec.epsilonCumulative < st.epsilonRecorded) {
    w.err(seq, 'EPSILON_DECREASED', `${where}: ${st.name}'s cumulative ε fell from ${fmt(st.epsilonRecorded)} to ${fmt(rec.epsilonCumulative)}`);
  }
  const prevRecomputed = st.epsilonRecomputed;
  const prevRecorded = st.epsilonRecorded;
  st.events.push(...events);
  if (w.epsilonOf) {
    const eps = w.epsilonOf(st.events, rec.delta);
    st.epsilonRecomputed = eps;
    if (understated(rec.epsilonCumulative, eps, w.tol)) {
      w.err(
        seq,
        'EPSILON_UNDERSTATED',
        `${where}: ${st.name}'s cumulative ε is recorded as ${fmt(rec.epsilonCumulative)} but the recorded DP parameters give ${fmt(eps)}`,
      );
    }
    // Measured from the higher of the recorded and recomputed previous totals, so an
    // overstated earlier round (conservative) does not make this one look understated.
    const inc = eps - Math.max(prevRecomputed ?? 0, prevRecorded);
    if (understated(rec.epsilonSpent, inc, w.tol)) {
      w.err(
        seq,
        'EPSILON_SPENT_UNDERSTATED',
        `${where}: ${st.name}'s ε spent is recorded as ${fmt(rec.epsilonSpent)} but the recomputed increase is ${fmt(inc)}`,
      );
    }
  }
  st.epsilonRecorded = Math.max(st.epsilonRecorded, rec.epsilonCumulative);
  st.delta = rec.delta;
  const pol = st.policy;
  if (!pol) return;
  const spent = Math.max(st.epsilonRecorded, st.epsilonRecomputed ?? 0);
  const lim = limitOf(pol)!;
  if (spent > lim) w.err(seq, 'POLICY_EPSILON_EXCEEDED', `${where}: ${st.name} reached ε=${fmt(spent)}, above its declared limit ${fmt(lim)}`);
  if (rec.delta > pol.maxDelta) w.err(seq, 'POLICY_DELTA_EXCEEDED', `${where}: ${st.name} accounted at δ=${rec.delta}, above its limit ${pol.maxDelta}`);
  const low = pol.minNoiseMultiplier === undefined ? undefined : events.find((e) => e.noiseMultiplier < pol.minNoiseMultiplier!);
  if (low) w.err(seq, 'POLICY_NOISE_TOO_LOW', `${where}: ${st.name} used σ=${low.noiseMultiplier}, below its minimum ${pol.minNoiseMultiplier}`);
}

/**
 * The releases an `evaluation` or `attempt.failed` entry records (version 3): each submitter was
 * selected, may take part, charged each release once per attempt, and its ε is recomputed.
 */
export function analyzeAttemptReleases(
  w: JobWalk,
  seq: number,
  round: number,
  where: string,
  partners: readonly AttemptReleases[],
  selected: readonly string[] | null,
): void {
  for (const rec of partners) {
    const st = w.out.partners.get(rec.partner);
    if (!st) {
      w.err(seq, 'UNKNOWN_PARTNER', `${where} names ${rec.partner}, who is not a partner`);
      continue;
    }
    if (selected && !selected.includes(rec.partner)) w.err(seq, 'DP_RECORD_NOT_SELECTED', `${where}: ε recorded for ${st.name}, who was not selected`);
    const key = `${round}.${rec.attempt}`;
    if (st.releaseRecords.has(key)) {
      w.err(
        seq,
        'DUPLICATE_PARTICIPATION',
        `${where}: ${st.name}'s releases of attempt ${rec.attempt} recorded twice (also seq ${st.releaseRecords.get(key)!.seq})`,
      );
      continue;
    }
    checkParticipation(w, seq, st, round);
    if (w.m.dp && rec.delta !== w.m.dp.delta) w.err(seq, 'DELTA_MISMATCH', `${where}: ${st.name} accounted at δ=${rec.delta}, manifest says ${w.m.dp.delta}`);
    checkCiphertexts(w, seq, st, where, rec.ciphertextHashes);
    chargeReleases(
      w,
      seq,
      st,
      where,
      rec,
      rec.releases.map((r) => ({ samplingRate: r.samplingRate, noiseMultiplier: r.noiseMultiplier, steps: r.steps })),
    );
    st.releaseRecords.set(key, { seq, round, record: rec });
  }
}
