import type { LedgerEntry, PayloadOf } from '../entries.ts';
import { entryHash } from '../signing.ts';
import type { KeyRing, LedgerFinding, Severity } from '../verify.ts';
import { analyzeMembership } from './analyze-membership.ts';
import { analyzeRound } from './analyze-round.ts';
import { analyzeAttemptReleases } from './charges.ts';
import { analyzeVertical, plannedReleases } from './analyze-vertical.ts';
import { fmt, ofType, typed, understated, type EpsilonOf, type JobAnalysis, type JobWalk } from './types.ts';

/** Semantic checks and ε recomputation over a verified job ledger, section by section in seq order. */
export function analyzeJob(
  entries: LedgerEntry[],
  ring: KeyRing,
  valid: Set<number>,
  epsilonOf: EpsilonOf | null,
  tol: number,
  add: (f: Omit<LedgerFinding, 'ledger'>) => void,
  allowRunning: boolean,
): JobAnalysis {
  const list = typed(entries, valid);
  const manifest = ofType(list, 'job.manifest').find((m) => m.seq === 0);
  const out: JobAnalysis = {
    jobId: ring.jobId ?? null,
    isPrivate: manifest?.payload.dp != null,
    manifestSeq0: manifest?.entry ?? null,
    partners: new Map(),
    roundsBySeq: [],
  };
  if (!manifest) return out;
  for (const p of manifest.payload.partners) {
    out.partners.set(p.keyId, {
      keyId: p.keyId,
      name: p.name,
      status: 'no-response',
      budgetRefusedRounds: new Set(),
      events: [],
      rounds: new Map(),
      submittedRounds: new Set(),
      releaseRecords: new Map(),
      epsilonRecorded: 0,
      epsilonRecomputed: epsilonOf ? 0 : null,
      delta: null,
    });
  }
  const w: JobWalk = {
    m: manifest.payload,
    out,
    anchor: entryHash(manifest.entry),
    halted: null,
    lastRound: 0,
    seenCiphertexts: new Map(),
    epsilonOf,
    tol,
    err: (seq: number, code: string, message: string, severity: Severity = 'error'): void => add({ seq, code, message, severity }),
  };

  for (const item of list) {
    const { seq } = item;
    switch (item.type) {
      case 'job.halt': {
        const p = item.payload as PayloadOf<'job.halt'>;
        if (!w.halted) w.halted = { seq, afterRound: p.afterRound };
        break;
      }
      case 'model.final': {
        const p = item.payload as PayloadOf<'model.final'>;
        if (out.final) w.err(seq, 'DUPLICATE_FINAL', `second model.final (first at seq ${out.final.seq})`);
        else out.final = { seq, payload: p };
        break;
      }
      case 'round':
        analyzeRound(w, seq, item.payload as PayloadOf<'round'>);
        break;
      case 'evaluation': {
        const p = item.payload as PayloadOf<'evaluation'>;
        if (p.partners) analyzeAttemptReleases(w, seq, p.round ?? 0, `evaluation round ${p.round ?? '?'}`, p.partners, null);
        break;
      }
      case 'attempt.failed': {
        const p = item.payload as PayloadOf<'attempt.failed'>;
        if (w.halted) w.err(seq, 'ROUND_AFTER_HALT', `round ${p.round} attempt ${p.attempt} recorded after the job was halted at seq ${w.halted.seq}`);
        analyzeAttemptReleases(w, seq, p.round, `round ${p.round} attempt ${p.attempt} (failed)`, p.partners, p.selected);
        break;
      }
      default:
        analyzeMembership(w, item);
    }
  }
  analyzeVertical(list, out, plannedReleases(manifest.payload.manifest), epsilonOf, tol, add);
  checkEnd(w, entries, allowRunning, add);
  return out;
}

/** The end of the ledger: the final entry against the rounds, or the job halted, or (an error unless it may still run) neither. */
function checkEnd(w: JobWalk, entries: LedgerEntry[], allowRunning: boolean, add: (f: Omit<LedgerFinding, 'ledger'>) => void): void {
  // Once the agreed state stopped training early, no state round may follow it.
  const stop = w.out.roundsBySeq.find((r) => r.payload.selection?.stopped);
  for (const r of w.out.roundsBySeq)
    if (stop && r.seq > stop.seq)
      w.err(r.seq, 'ROUND_AFTER_STOP', `round ${r.payload.round} recorded after round ${stop.payload.round}'s agreed state stopped training (seq ${stop.seq})`);
  if (w.out.final) {
    const f = w.out.final;
    const lastR = w.out.roundsBySeq[w.out.roundsBySeq.length - 1];
    if (lastR && f.payload.modelHash !== lastR.payload.globalModelHash) {
      w.err(f.seq, 'FINAL_MODEL_MISMATCH', `final model hash differs from round ${lastR.payload.round}'s global model hash`);
    }
    const selected = lastR?.payload.selection;
    if (JSON.stringify(f.payload.selection ?? null) !== JSON.stringify(selected ?? null)) {
      w.err(
        f.seq,
        'FINAL_SELECTION_MISMATCH',
        `final entry says the model is ${f.payload.selection ? `round ${f.payload.selection.round}'s` : 'not a selected one'}, round ${lastR?.payload.round ?? '?'}'s agreed state selected ${selected ? `round ${selected.round}` : 'none'}`,
      );
    }
    if (f.payload.rounds !== w.out.roundsBySeq.length) {
      w.err(f.seq, 'FINAL_ROUNDS_MISMATCH', `final entry says ${f.payload.rounds} rounds, the ledger records ${w.out.roundsBySeq.length}`);
    }
    for (const fp of f.payload.partners) {
      const st = w.out.partners.get(fp.partner);
      if (!st) continue;
      const floor = Math.max(st.epsilonRecorded, st.epsilonRecomputed ?? 0);
      if (understated(fp.epsilon, floor, w.tol)) {
        w.err(f.seq, 'EPSILON_UNDERSTATED', `final entry reports ε=${fmt(fp.epsilon)} for ${st.name}, the rounds give ${fmt(floor)}`);
      }
    }
    for (const st of w.out.partners.values()) {
      if (st.rounds.size && !f.payload.partners.some((x) => x.partner === st.keyId)) {
        w.err(f.seq, 'FINAL_PARTNER_MISSING', `final entry omits ${st.name}, who took part in ${st.rounds.size} round(s)`);
      }
    }
  } else if (!w.halted) {
    const lastSeq = entries.length ? entries[entries.length - 1].seq : -1;
    add({
      seq: lastSeq + 1,
      code: 'JOB_NOT_FINALIZED',
      severity: allowRunning ? 'warning' : 'error',
      message: `the ledger ends at seq ${lastSeq} without model.final or job.halt${allowRunning ? ' (job may still be running)' : ': the final entries may have been cut off'}`,
    });
  }
}
