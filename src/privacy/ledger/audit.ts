/**
 * The audit: everything a compliance reviewer can recompute from ledgers alone.
 *
 * 1. Integrity of every ledger (verify.ts): chain, sequence, signatures, authorship, head pointer.
 * 2. Privacy accounting: each partner's ε is recomputed from the DP parameters recorded per round
 *    (sampling rate q, noise multiplier σ, steps) with the injected accountant `epsilonOf`; any
 *    recorded ε *below* the recomputed value is flagged. Overstating ε is conservative and allowed.
 * 3. Policy: no partner may exceed the limits it declared in its acceptance (ε, δ, rounds, minimum
 *    noise, purposes, columns), nor take part without acceptance, after refusing, after withdrawing
 *    or after a budget refusal; no round may follow a job halt.
 * 4. Cross-checks: each partner's local ledger must agree with the coordinator's (acceptance and
 *    manifest hash, rounds, DP parameters, ciphertext hashes, ε, model hashes, consent counts), and
 *    every coordinator-head witness a partner recorded must still be in the coordinator ledger.
 */
import { verifyLedger } from './verify.ts';
import { analyzeJob } from './audit/analyze-job.ts';
import { crossCheck } from './audit/cross-check.ts';
import { checkScoringEntries } from './audit/scoring-checks.ts';
import { crossCheckTail } from './audit/cross-tail.ts';
import { crossCheckVertical } from './audit/analyze-vertical.ts';
import {
  limitOf,
  load,
  type AuditFinding,
  type AuditOptions,
  type AuditResult,
  type EpsilonOf,
  type JobAnalysis,
  type LedgerInput,
  type PartnerSummary,
} from './audit/types.ts';

export type { AuditFinding, AuditOptions, AuditResult, DpEvent, EpsilonOf, LedgerInput, PartnerStatus, PartnerSummary } from './audit/types.ts';
export { ceilTo, floorTo, formatAuditSummary, NOT_DP } from './audit/format.ts';

/**
 * An accountant that rejects a recorded parameter (e.g. a sampling rate it cannot handle) must not
 * abort the audit: the ε is then unknown, which is reported, and treated as +∞ for budget checks.
 */
function safeEpsilonOf(epsilonOf: EpsilonOf, onError: (message: string) => void): EpsilonOf {
  return (events, delta) => {
    try {
      const eps = epsilonOf(events, delta);
      if (typeof eps !== 'number' || Number.isNaN(eps)) throw new Error(`accountant returned ${String(eps)}`);
      return eps;
    } catch (err) {
      onError((err as Error).message);
      return Infinity;
    }
  };
}

/** Audits a job ledger and, optionally, partners' local ledgers. Never throws on bad ledgers. */
export function auditLedgers(opts: AuditOptions): AuditResult {
  const tol = opts.epsilonTolerance ?? 1e-9;
  const findings: AuditFinding[] = [];
  let epsilonFailure: string | null = null;
  const epsilonOf = safeEpsilonOf(opts.epsilonOf, (m) => {
    epsilonFailure ??= m;
  });
  const coordIn = load(opts.coordinator, 'coordinator');
  const cv = verifyLedger(coordIn.read, { name: coordIn.name, trustedOwnerKeys: opts.trustedOwnerKeys, trustedCoordinatorKeys: opts.trustedCoordinatorKeys });
  findings.push(...cv.findings);
  const ledgers = [{ name: cv.ledger, entries: cv.entries.length, ok: cv.ok }];
  if (cv.keyRing.kind !== 'job') {
    if (cv.keyRing.kind === 'local') {
      findings.push({
        ledger: cv.ledger,
        seq: 0,
        code: 'NOT_A_JOB_LEDGER',
        severity: 'error',
        message: 'the coordinator ledger must start with a job manifest',
      });
    }
  }
  const job = analyzeJob(
    cv.entries,
    cv.keyRing,
    cv.validPayloadSeqs,
    epsilonOf,
    tol,
    (f) => findings.push({ ledger: cv.ledger, ...f }),
    opts.allowRunning ?? false,
  );

  const checked = new Set<string>();
  (opts.partners ?? []).forEach((input, i) => {
    const li = load(input, `partner[${i}]`);
    const pv = verifyLedger(li.read, { name: li.name });
    findings.push(...pv.findings, ...checkScoringEntries(pv.ledger, pv.entries, pv.validPayloadSeqs, { sidecarDir: opts.sidecarDirs?.[i] }));
    ledgers.push({ name: pv.ledger, entries: pv.entries.length, ok: pv.ok });
    const who = crossCheck(
      { name: pv.ledger, entries: pv.entries, ring: pv.keyRing, valid: pv.validPayloadSeqs },
      { name: cv.ledger, entries: cv.entries, ring: cv.keyRing, job },
      epsilonOf,
      tol,
      (f) => findings.push(f),
    );
    if (who) {
      checked.add(who);
      crossCheckVertical(
        { name: pv.ledger, entries: pv.entries, valid: pv.validPayloadSeqs, self: who, jobId: job.jobId },
        { name: cv.ledger, entries: cv.entries, valid: cv.validPayloadSeqs },
        (f) => findings.push(f),
      );
    }
    crossCheckTail(
      { name: pv.ledger, entries: pv.entries, ring: pv.keyRing, valid: pv.validPayloadSeqs },
      { name: cv.ledger, entries: cv.entries, ring: cv.keyRing, valid: cv.validPayloadSeqs, job },
      (f) => findings.push(f),
    );
  });

  if (epsilonFailure !== null) {
    findings.push({
      ledger: cv.ledger,
      code: 'EPSILON_UNCOMPUTABLE',
      severity: 'error',
      message: `the accountant could not recompute ε from the recorded parameters: ${epsilonFailure}`,
    });
  }
  const partners = summaries(job, checked);
  return { ok: !findings.some((f) => f.severity === 'error'), jobId: job.jobId, findings, partners, ledgers };
}

function summaries(job: JobAnalysis, checked: Set<string>): PartnerSummary[] {
  return [...job.partners.values()].map((st) => {
    // A job without DP bounds nothing: its privacy loss is unbounded, which reads as ∞, never as 0.
    const epsilon = job.isPrivate ? Math.max(st.epsilonRecorded, st.epsilonRecomputed ?? 0, st.epsilonLocal ?? 0) : Number.POSITIVE_INFINITY;
    const lim = limitOf(st.policy);
    return {
      partner: st.keyId,
      name: st.name,
      status: st.status,
      rounds: new Set([...st.rounds.keys(), ...st.submittedRounds]).size,
      private: job.isPrivate,
      rowsUsed: (st.consent ?? st.localConsent)?.payload.rowsUsed ?? null,
      rowsWithoutConsent: (st.consent ?? st.localConsent)?.payload.rowsExcludedNoConsent ?? null,
      epsilon,
      epsilonRecorded: st.epsilonRecorded,
      epsilonRecomputed: st.epsilonRecomputed,
      delta: st.delta,
      epsilonLimit: lim,
      budgetLeft: lim === null || !job.isPrivate ? null : lim - epsilon,
      localLedgerChecked: checked.has(st.keyId),
    };
  });
}

/**
 * Per-partner privacy summary of a job ledger without judging it (no findings). With `epsilonOf`
 * the summary's ε is max(recorded, recomputed); without it, the recorded ε.
 */
export function summarizePrivacy(ledger: LedgerInput, opts: { epsilonOf?: EpsilonOf } = {}): { jobId: string | null; partners: PartnerSummary[] } {
  const li = load(ledger, 'ledger');
  const v = verifyLedger(li.read, { name: li.name });
  const job = analyzeJob(
    v.entries,
    v.keyRing,
    v.validPayloadSeqs,
    opts.epsilonOf ? safeEpsilonOf(opts.epsilonOf, () => undefined) : null,
    1e-9,
    () => undefined,
    true,
  );
  return { jobId: job.jobId, partners: summaries(job, new Set()) };
}
