import type { LedgerEntry } from '../entries.ts';
import { verifyHeadSignature } from '../head.ts';
import { entryHash } from '../signing.ts';
import type { KeyRing, LedgerFinding, Severity } from '../verify.ts';
import { ofType, typed, type JobAnalysis } from './types.ts';

/**
 * What a partner's own ledger proves about the *end* of the coordinator's: the coordinator writes
 * its ledger with its own key, so it could cut entries off the tail, append a `job.halt` of its own
 * and re-sign the head. Against the partner's ledger that shows:
 *
 * - every partner entry about a round (a DP round, a round without DP, an evaluation, a refusal…)
 *   needs a coordinator entry about the same round;
 * - a partner's `model.final` needs the coordinator's `model.final` (not a halt in its place);
 * - every coordinator head a partner witnessed (`partner.witness`, taken after the job's final
 *   entries, and `coordinatorHead` of its round records) must still be in the coordinator ledger
 *   with the hash witnessed — and a witnessed head must carry the coordinator's signature, so a
 *   partner cannot fabricate one either;
 * - in a job without DP, each round the coordinator records the partner submitting to must be in
 *   the partner's own ledger (`partner.participation`).
 */
export function crossCheckTail(
  local: { name: string; entries: LedgerEntry[]; ring: KeyRing; valid: Set<number> },
  coord: { name: string; entries: LedgerEntry[]; ring: KeyRing; valid: Set<number>; job: JobAnalysis },
  push: (f: LedgerFinding) => void,
): void {
  const L = (seq: number | undefined, code: string, message: string, severity: Severity = 'error'): void =>
    push({ ledger: local.name, seq, code, message, severity });
  const self = local.ring.ownerKeyId;
  const jobId = coord.job.jobId;
  const st = self ? coord.job.partners.get(self) : undefined;
  if (local.ring.kind !== 'local' || !self || !st || !jobId) return; // crossCheck reported why
  const name = st.name;
  const mine = typed(local.entries, local.valid).filter((x) => (x.payload as { jobId?: string }).jobId === jobId);
  const coordList = typed(coord.entries, coord.valid);

  // Rounds: the coordinator must have said something about every round the partner recorded.
  const coordRounds = new Set<number>();
  for (const x of coordList) {
    const r = (x.payload as { round?: unknown }).round;
    if (typeof r === 'number') coordRounds.add(r);
  }
  for (const x of mine) {
    const r = (x.payload as { round?: unknown }).round;
    if (typeof r !== 'number' || coordRounds.has(r)) continue;
    // A DP round the coordinator lacks is named by crossCheck (CROSS_ROUND_MISSING_IN_COORDINATOR) with its ε;
    // a release without a coordinator record by crossCheckReleases (an upload that never arrived is no rewrite).
    if (x.type === 'partner.round' || x.type === 'partner.release') continue;
    L(
      x.seq,
      'CROSS_ROUND_MISSING_IN_COORDINATOR',
      `${name} records ${x.type} for round ${r}, the coordinator ledger has no entry for round ${r} (cut off or never written)`,
    );
  }

  // The model selection: the partner's own record must be the one the coordinator recorded for that round's agreed state.
  for (const x of ofType(mine, 'partner.selection')) {
    const coordRound = ofType(coordList, 'round').find((r) => r.payload.round === x.payload.round);
    if (coordRound && JSON.stringify(coordRound.payload.selection ?? null) !== JSON.stringify(x.payload.selection))
      L(
        x.seq,
        'CROSS_SELECTION_MISMATCH',
        `${name} records that round ${x.payload.round}'s state selected round ${x.payload.selection.round}${x.payload.selection.stopped ? ' and stopped' : ''}, the coordinator's round entry says ${coordRound.payload.selection ? `round ${coordRound.payload.selection.round}` : 'no selection'}`,
      );
  }

  // The final model.
  const localFinal = ofType(mine, 'model.final')[0];
  if (localFinal && !coord.job.final) {
    const halt = ofType(coordList, 'job.halt')[0];
    L(
      localFinal.seq,
      'CROSS_FINAL_MISSING_IN_COORDINATOR',
      `${name} recorded the final model ${localFinal.payload.modelHash.slice(0, 12)}…, the coordinator ledger has no model.final${halt ? ` but a job.halt at seq ${halt.seq} ("${halt.payload.reason}")` : ''}`,
    );
  }

  // Witnessed heads.
  const coordKey = coord.ring.coordinatorKeyId ? coord.ring.keys.get(coord.ring.coordinatorKeyId) : undefined;
  const bySeq = new Map(coord.entries.map((e) => [e.seq, e]));
  for (const x of ofType(mine, 'partner.witness')) {
    const h = x.payload.coordinatorHead;
    if (!coordKey || h.author !== coordKey.keyId || !verifyHeadSignature(h as Parameters<typeof verifyHeadSignature>[0], coordKey.publicKey)) {
      L(
        x.seq,
        'WITNESS_NOT_SIGNED',
        `${name}'s witnessed head (seq ${h.seq}) is not signed by the job's coordinator key ${coord.ring.coordinatorKeyId ?? '(none)'}`,
      );
      continue;
    }
    const at = bySeq.get(h.seq);
    if (!at) {
      L(
        x.seq,
        'CROSS_WITNESS_MISSING',
        `after the job ${x.payload.state}, ${name} witnessed the coordinator's signed head at seq ${h.seq}, which the coordinator ledger no longer has (its tail was cut)`,
      );
    } else if (entryHash(at) !== h.hash) {
      L(
        x.seq,
        'CROSS_WITNESS_MISMATCH',
        `after the job ${x.payload.state}, ${name} witnessed the coordinator's signed head at seq ${h.seq}; the coordinator ledger's entry there is another one (history rewritten)`,
      );
    }
  }

  // A job without DP: the partner's own record of every round it submitted to.
  if (!coord.job.isPrivate) {
    const recorded = new Set(ofType(mine, 'partner.participation').map((x) => x.payload.round));
    for (const r of coord.job.roundsBySeq) {
      if (r.payload.submitted.includes(self) && !recorded.has(r.payload.round)) {
        push({
          ledger: coord.name,
          seq: r.seq,
          code: 'CROSS_ROUND_MISSING_IN_PARTNER',
          severity: 'warning',
          message: `round ${r.payload.round}: the coordinator records ${name}'s submission, ${name}'s own ledger has no record of it`,
        });
      }
    }
  }
}
