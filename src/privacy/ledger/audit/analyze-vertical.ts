/**
 * The audit of vertical jobs (docs/VERTICAL.md): what a reviewer can recompute from the ledgers of a
 * PSI or vertical SecureBoost job.
 *
 * Job ledger: the PSI parameters are the manifest's; every fully blinded list has the cap's length when
 * padded (else its count is an unnoised release, flagged); the parties' receipts agreed; every relay
 * round is recorded; each labelled release is one the job's plan declares, and the label holder's ε
 * recomputed from its recorded releases is never above what it recorded, nor above its declared limit.
 * Partner ledgers: each party's own records agree with the job ledger (its list length, its last
 * blinding, the agreed intersection, its releases, the digest of the messages it sent).
 */
import { sha256Hex } from '../../../util/hash.ts';
import type { JobManifest } from '../../../federation/manifest.ts';
import { secureBoostOf } from '../../../vertical/jobs/secureboost-workload.ts';
import { releaseOf } from '../../../vertical/secureboost/dp.ts';
import { stepAt, totalRounds } from '../../../vertical/secureboost/schedule.ts';
import type { LedgerEntry, PayloadOf } from '../entries.ts';
import type { LedgerFinding, Severity } from '../verify.ts';
import { fmt, limitOf, ofType, typed, understated, type EpsilonOf, type JobAnalysis, type Typed } from './types.ts';

type Add = (f: Omit<LedgerFinding, 'ledger'>) => void;

const eventKey = (e: { label: string; samplingRate: number; noiseMultiplier: number; steps: number; sensitivity: number }) =>
  `${e.label}|${e.samplingRate}|${e.noiseMultiplier}|${e.steps}|${e.sensitivity}`;

/** Relay rounds' planned releases, from the manifest embedded in the seq-0 entry (via the workload registry). */
export type PlannedReleases = (
  round: number,
) => { keyId: string; events: { label: string; samplingRate: number; noiseMultiplier: number; steps: number; sensitivity: number }[] }[] | null;

/** The releases a vertical SecureBoost job plans per round, from the manifest the owner signed into seq 0 (null for other jobs). */
export function plannedReleases(manifest: Record<string, unknown> | undefined): PlannedReleases | null {
  const m = manifest as JobManifest | undefined;
  // Scoring with a trained model plans no release: anything charged in it is outside the plan.
  if (m?.workload?.kind === 'vertical-score') return () => [];
  if (m?.workload?.kind !== 'secureboost') return null;
  try {
    const { params, dp } = secureBoostOf(m);
    const label = params.parties[0].keyId;
    return (round) => {
      if (!(round >= 1 && round <= totalRounds(params))) return null;
      const e = releaseOf(dp, stepAt(params, round));
      return e ? [{ keyId: label, events: [e] }] : [];
    };
  } catch {
    return () => null;
  }
}

export function analyzeVertical(list: Typed[], job: JobAnalysis, planned: PlannedReleases | null, epsilonOf: EpsilonOf | null, tol: number, add: Add): void {
  const err = (seq: number, code: string, message: string, severity: Severity = 'error') => add({ seq, code, message, severity });
  const psiJob = ofType(list, 'psi.job')[0];
  const fulls = ofType(list, 'psi.full');
  const inter = ofType(list, 'psi.intersection');
  if ((fulls.length || inter.length) && !psiJob)
    err(fulls[0]?.seq ?? inter[0].seq, 'PSI_JOB_MISSING', 'PSI lists are recorded without the psi.job entry fixing their parameters');
  if (psiJob) {
    const j = psiJob.payload;
    const counts = new Map<string, number>();
    for (const f of fulls) {
      const p = f.payload;
      if (!j.ring.includes(p.origin)) err(f.seq, 'PSI_UNKNOWN_ORIGIN', `a full list of ${p.origin}, who is not in the ring`);
      if (j.padToMax ? p.count !== j.maxSetSize : p.count > j.maxSetSize)
        err(
          f.seq,
          'PSI_LIST_LENGTH',
          `${p.origin}'s list has ${p.count} elements; the job ${j.padToMax ? `pads every list to ${j.maxSetSize}` : `caps lists at ${j.maxSetSize}`}`,
        );
      if (!j.padToMax)
        err(f.seq, 'PSI_SET_SIZE_RELEASED', `${p.origin}'s distinct-id count (${p.count}) was released without noise (padToMax is off)`, 'warning');
      if (counts.has(p.origin)) err(f.seq, 'PSI_DUPLICATE_LIST', `a second full list of ${p.origin}`);
      counts.set(p.origin, p.count);
    }
    for (const x of inter) {
      const p = x.payload;
      if (!p.receiptsAgreed) err(x.seq, 'PSI_RECEIPTS_DISAGREE', 'the parties accepted different intersections: the coordinator gave them different results');
      for (const pp of p.perParty) {
        if (counts.get(pp.party) !== pp.listCount)
          err(x.seq, 'PSI_COUNT_MISMATCH', `the intersection entry gives ${pp.party}'s list ${pp.listCount} elements, its full list ${counts.get(pp.party)}`);
      }
      if (p.intersectionSize > Math.min(...counts.values()))
        err(x.seq, 'PSI_INTERSECTION_TOO_LARGE', `an intersection of ${p.intersectionSize} from lists of ${[...counts.values()].join(', ')}`);
    }
  }
  // Joint prediction's declared disclosure: the direction at each of a feature holder's splits for the
  // rows the label holder asked about, unnoised (docs/VERTICAL.md). Shown, so a reviewer sees how often.
  for (const r of ofType(list, 'relay.round')) {
    if (r.payload.kind !== 'score-resp') continue;
    const from = [...new Set(r.payload.messages.map((x) => job.partners.get(x.from)?.name ?? x.from))];
    err(
      r.seq,
      'SCORE_DIRECTIONS_DISCLOSED',
      `round ${r.payload.round}: ${from.join(', ')} told the label holder, unnoised, which way the requested rows go at each of its splits (joint prediction)`,
      'warning',
    );
  }
  // Labelled releases: planned, composed, within limits.
  const byPartner = new Map<string, { seq: number; p: PayloadOf<'vertical.release'> }[]>();
  for (const r of ofType(list, 'vertical.release')) {
    const p = r.payload;
    const st = job.partners.get(p.partner);
    if (!st) continue;
    const plan = planned?.(p.round)?.find((x) => x.keyId === p.partner);
    if (planned && (!plan || plan.events.length !== p.releases.length || plan.events.some((e, i) => eventKey(e) !== eventKey(p.releases[i])))) {
      err(r.seq, 'RELEASE_NOT_PLANNED', `round ${p.round}: ${st.name} recorded releases the job's plan does not declare`);
    }
    const seen = byPartner.get(p.partner) ?? [];
    if (seen.some((x) => x.p.round === p.round)) err(r.seq, 'DUPLICATE_RELEASE', `round ${p.round}: ${st.name}'s releases recorded twice`);
    seen.push({ seq: r.seq, p });
    byPartner.set(p.partner, seen);
    st.events.push(...p.releases.map((e) => ({ samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps })));
    st.delta = p.delta;
    st.epsilonRecorded = Math.max(st.epsilonRecorded, p.epsilonCumulative);
    if (epsilonOf) {
      const eps = epsilonOf(st.events, p.delta);
      st.epsilonRecomputed = eps;
      if (understated(p.epsilonCumulative, eps, tol))
        err(
          r.seq,
          'EPSILON_UNDERSTATED',
          `round ${p.round}: ${st.name} records cumulative ε=${fmt(p.epsilonCumulative)}, its recorded releases compose to ${fmt(eps)}`,
        );
    }
    const lim = limitOf(st.policy);
    const spent = Math.max(st.epsilonRecorded, st.epsilonRecomputed ?? 0);
    if (lim !== null && spent > lim)
      err(r.seq, 'POLICY_EPSILON_EXCEEDED', `round ${p.round}: ${st.name} reached ε=${fmt(spent)}, above its declared limit ${fmt(lim)}`);
    if (st.status !== 'accepted' && st.status !== 'withdrawn')
      err(r.seq, 'RELEASE_WITHOUT_ACCEPTANCE', `round ${p.round}: ${st.name} released values without having accepted the job`);
  }
}

/** What one party's own ledger must agree on with the job ledger for a vertical job. */
export function crossCheckVertical(
  local: { name: string; entries: LedgerEntry[]; valid: Set<number>; self: string; jobId: string | null },
  coord: { name: string; entries: LedgerEntry[]; valid: Set<number> },
  push: (f: LedgerFinding) => void,
): void {
  const L = (seq: number | undefined, code: string, message: string) => push({ ledger: local.name, seq, code, message, severity: 'error' });
  const C = (seq: number | undefined, code: string, message: string) => push({ ledger: coord.name, seq, code, message, severity: 'error' });
  const mine = typed(local.entries, local.valid).filter((x) => (x.payload as { jobId?: string }).jobId === local.jobId);
  const job = typed(coord.entries, coord.valid);
  const full = ofType(job, 'psi.full');
  const inter = ofType(job, 'psi.intersection')[0];
  for (const x of ofType(mine, 'psi.party.list')) {
    const f = full.find((y) => y.payload.origin === local.self);
    if (f && f.payload.count !== x.payload.releasedCount)
      C(f.seq, 'CROSS_PSI_COUNT_MISMATCH', `${local.name} sent a list of ${x.payload.releasedCount}, the job ledger records ${f.payload.count}`);
  }
  const ring = ofType(job, 'psi.job')[0]?.payload.ring.length;
  for (const x of ofType(mine, 'psi.party.hop')) {
    if (x.payload.keysApplied !== ring) continue;
    // This party blinded the origin's list last: the job ledger's full list must be exactly what it sent.
    const f = full.find((y) => y.payload.origin === x.payload.origin);
    if (!f) L(x.seq, 'CROSS_PSI_LIST_MISSING', `${local.name} sent the full list of ${x.payload.origin}, the job ledger does not record it`);
    else if (f.payload.lastBlindedBy !== local.self || f.payload.listHash !== x.payload.outListHash)
      C(f.seq, 'CROSS_PSI_LIST_MISMATCH', `the full list of ${x.payload.origin} is not the one ${local.name} blinded last`);
  }
  for (const x of ofType(mine, 'psi.party.result')) {
    if (!inter) L(x.seq, 'CROSS_PSI_INTERSECTION_MISSING', `${local.name} accepted an intersection the job ledger does not record`);
    else if (inter.payload.orderDigest !== x.payload.orderDigest || inter.payload.intersectionSize !== x.payload.intersectionSize) {
      C(
        inter.seq,
        'CROSS_PSI_INTERSECTION_MISMATCH',
        `${local.name} accepted ${x.payload.intersectionSize} matches (order ${x.payload.orderDigest.slice(0, 12)}…), the job ledger records ${inter.payload.intersectionSize} (${inter.payload.orderDigest.slice(0, 12)}…)`,
      );
    }
  }
  const jobReleases = ofType(job, 'vertical.release').filter((x) => x.payload.partner === local.self);
  const ownReleases = ofType(mine, 'vertical.release');
  for (const x of ownReleases) {
    const y = jobReleases.find((r) => r.payload.round === x.payload.round);
    if (!y) L(x.seq, 'CROSS_RELEASE_MISSING_IN_COORDINATOR', `round ${x.payload.round}: ${local.name} recorded a release the job ledger does not`);
    else if (JSON.stringify(y.payload) !== JSON.stringify(x.payload))
      C(y.seq, 'CROSS_RELEASE_MISMATCH', `round ${x.payload.round}: the job ledger's record of ${local.name}'s releases differs from its own`);
  }
  for (const y of jobReleases) {
    if (!ownReleases.some((x) => x.payload.round === y.payload.round))
      C(y.seq, 'CROSS_RELEASE_MISSING_IN_PARTNER', `round ${y.payload.round}: a release by ${local.name} that its own ledger does not record`);
  }
  for (const x of ofType(mine, 'vertical.party.job')) {
    const sent = ofType(job, 'relay.round')
      .flatMap((r) => r.payload.messages.filter((m) => m.from === local.self).map((m) => ({ round: r.payload.round, to: m.to, sha256: m.sha256 })))
      .sort((a, b) => a.round - b.round || (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
    if (sentDigestOf(sent) !== x.payload.sentDigest)
      L(x.seq, 'CROSS_MESSAGES_MISMATCH', `the messages ${local.name} says it sent are not the ones the job ledger records as relayed from it`);
  }
}

/** SHA-256 over the hashes of the messages a party sent, ordered by round then recipient. */
export function sentDigestOf(sent: readonly { round: number; to: string; sha256: string }[]): string {
  return sha256Hex(sent.map((s) => s.sha256).join(''));
}
