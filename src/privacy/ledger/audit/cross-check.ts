import { canonicalJson } from '../canonical.ts';
import type { LedgerEntry, PayloadOf } from '../entries.ts';
import { entryHash } from '../signing.ts';
import type { KeyRing, LedgerFinding, Severity } from '../verify.ts';
import { fmt, ofType, sameList, typed, understated, type DpEvent, type EpsilonOf, type JobAnalysis } from './types.ts';
import { crossCheckReleases } from './cross-releases.ts';

interface LocalRound {
  seq: number;
  payload: PayloadOf<'partner.round'>;
}

/** Local-ledger ε recomputation plus the cross-check against the coordinator's job ledger. */
export function crossCheck(
  local: { name: string; entries: LedgerEntry[]; ring: KeyRing; valid: Set<number> },
  coord: { name: string; entries: LedgerEntry[]; ring: KeyRing; job: JobAnalysis },
  epsilonOf: EpsilonOf,
  tol: number,
  push: (f: LedgerFinding) => void,
): string | null {
  const L = (seq: number | undefined, code: string, message: string, severity: Severity = 'error'): void =>
    push({ ledger: local.name, seq, code, message, severity });
  const C = (seq: number | undefined, code: string, message: string, severity: Severity = 'error'): void =>
    push({ ledger: coord.name, seq, code, message, severity });
  const self = local.ring.ownerKeyId;
  if (local.ring.kind !== 'local' || !self) {
    L(0, 'NOT_A_PARTNER_LEDGER', "expected a partner's local ledger (starting with ledger.genesis)");
    return null;
  }
  const jobId = coord.job.jobId;
  const st = coord.job.partners.get(self);
  const manifestKey = coord.ring.keys.get(self);
  const localKey = local.ring.keys.get(self);
  if (!st || !manifestKey) {
    L(0, 'PARTNER_NOT_IN_MANIFEST', `partner key ${self} is not a partner of job ${jobId}`);
    return null;
  }
  if (localKey && Buffer.compare(Buffer.from(localKey.publicKey), Buffer.from(manifestKey.publicKey)) !== 0) {
    L(0, 'PARTNER_KEY_MISMATCH', `the local ledger's key differs from the manifest's key for ${st.name}`);
  }
  const list = typed(local.entries, local.valid).filter((x) => (x.payload as { jobId?: string }).jobId === jobId);
  const coordBySeq = new Map(coord.entries.map((e) => [e.seq, e]));

  // Acceptance / refusal agree, and name the manifest entry actually at seq 0.
  const localResp = list.find((x) => x.type === 'partner.acceptance' || x.type === 'partner.refusal');
  const anchor = coord.ring.anchorHash;
  if (localResp) {
    const p = localResp.payload as PayloadOf<'partner.acceptance'>;
    if (anchor && p.manifestHash !== anchor) {
      L(
        localResp.seq,
        'CROSS_MANIFEST_MISMATCH',
        `${st.name} accepted manifest ${p.manifestHash.slice(0, 12)}…, but the coordinator ledger's manifest entry hashes to ${anchor.slice(0, 12)}…`,
      );
    }
    const localStatus = localResp.type === 'partner.acceptance' ? 'accepted' : 'refused';
    const coordStatus = st.status === 'withdrawn' ? (st.policy ? 'accepted' : 'no-response') : st.status;
    if (coordStatus !== localStatus) {
      L(
        localResp.seq,
        'CROSS_ACCEPTANCE_MISMATCH',
        `${st.name}'s ledger records ${localStatus}, the coordinator's records ${coordStatus} (seq ${st.responseSeq ?? '—'})`,
      );
    } else if (canonicalJson(p.policy ?? null) !== canonicalJson(st.policy ?? null)) {
      L(localResp.seq, 'CROSS_ACCEPTANCE_MISMATCH', `${st.name}'s declared policy limits differ from those the coordinator recorded at seq ${st.responseSeq}`);
    }
  } else if (st.status !== 'no-response') {
    C(
      st.responseSeq,
      'CROSS_ACCEPTANCE_MISSING',
      `the coordinator records ${st.name}'s ${st.status === 'refused' ? 'refusal' : 'acceptance'}, its own ledger has none`,
    );
  }

  // Version 3: ε from every attempt the partner charged (its partner.release records).
  const v3 = crossCheckReleases(list, st, epsilonOf, tol, L, C);
  // Rounds: same set, same parameters, same ciphertexts, same ε; witnesses still present.
  const localRounds = new Map<number, LocalRound>();
  const events: DpEvent[] = [];
  let localEps = 0;
  let localRecorded = 0;
  for (const x of ofType(list, 'partner.round')) {
    const r = x.payload;
    if (localRounds.has(r.round)) L(x.seq, 'DUPLICATE_PARTICIPATION', `round ${r.round} recorded twice in ${st.name}'s ledger`);
    localRounds.set(r.round, { seq: x.seq, payload: r });
    const prevEps = Math.max(localEps, localRecorded);
    events.push({ samplingRate: r.samplingRate, noiseMultiplier: r.noiseMultiplier, steps: r.steps });
    localEps = epsilonOf(events, r.delta);
    // A version-3 partner's ε is recomputed from its release records (crossCheckReleases); its
    // round records name one release of the round, so they are not composed a second time.
    if (!v3) {
      if (understated(r.epsilonCumulative, localEps, tol)) {
        L(
          x.seq,
          'EPSILON_UNDERSTATED',
          `round ${r.round}: ${st.name}'s own ledger records cumulative ε=${fmt(r.epsilonCumulative)}, the recorded DP parameters give ${fmt(localEps)}`,
        );
      }
      if (understated(r.epsilonSpent, localEps - prevEps, tol)) {
        L(
          x.seq,
          'EPSILON_SPENT_UNDERSTATED',
          `round ${r.round}: ${st.name}'s own ledger records ε spent ${fmt(r.epsilonSpent)}, recomputed ${fmt(localEps - prevEps)}`,
        );
      }
    }
    localRecorded = Math.max(localRecorded, r.epsilonCumulative);
    if (r.coordinatorHead) {
      const w = coordBySeq.get(r.coordinatorHead.seq);
      if (!w) {
        L(
          x.seq,
          'CROSS_WITNESS_MISSING',
          `round ${r.round}: ${st.name} witnessed coordinator entry seq ${r.coordinatorHead.seq}, which the coordinator ledger no longer has (truncated?)`,
        );
      } else if (entryHash(w) !== r.coordinatorHead.hash) {
        L(
          x.seq,
          'CROSS_WITNESS_MISMATCH',
          `round ${r.round}: coordinator entry seq ${r.coordinatorHead.seq} is not the entry ${st.name} witnessed (history rewritten)`,
        );
      }
    }
    const c = st.rounds.get(r.round);
    if (!c) {
      L(x.seq, 'CROSS_ROUND_MISSING_IN_COORDINATOR', `${st.name} records round ${r.round} (ε spent ${fmt(r.epsilonSpent)}), the coordinator ledger does not`);
      continue;
    }
    const where = `round ${r.round} (coordinator seq ${c.seq}, ${st.name} seq ${x.seq})`;
    const paramsDiffer = (['samplingRate', 'noiseMultiplier', 'clipNorm', 'steps', 'delta'] as const).filter((k) => r[k] !== c.rec[k]);
    if (paramsDiffer.length) {
      C(c.seq, 'CROSS_DP_PARAMS_MISMATCH', `${where}: ${paramsDiffer.map((k) => `${k} ${c.rec[k]} vs partner's ${r[k]}`).join(', ')}`);
    }
    if (!sameList(r.ciphertextHashes, c.rec.ciphertextHashes)) {
      C(c.seq, 'CROSS_CIPHERTEXT_MISMATCH', `${where}: ciphertext hashes differ`);
    }
    if (r.epsilonSpent !== c.rec.epsilonSpent || r.epsilonCumulative !== c.rec.epsilonCumulative) {
      C(
        c.seq,
        'CROSS_EPSILON_MISMATCH',
        `${where}: coordinator records ε spent/cumulative ${fmt(c.rec.epsilonSpent)}/${fmt(c.rec.epsilonCumulative)}, partner ${fmt(r.epsilonSpent)}/${fmt(r.epsilonCumulative)}`,
      );
    }
    if (r.globalModelHash !== undefined) {
      const reported = c.round.modelHashes.find((h) => h.partner === self);
      if (r.globalModelHash !== c.round.globalModelHash || (reported && reported.hash !== r.globalModelHash)) {
        C(
          c.seq,
          'CROSS_MODEL_HASH_MISMATCH',
          `${where}: the partner computed global model ${r.globalModelHash.slice(0, 12)}…, the coordinator records ${c.round.globalModelHash.slice(0, 12)}…`,
        );
      }
    }
  }
  // A partner that left the job (partner.leave) after uploading to a round never applies that round, so
  // it writes no round record for it; its own release entry (written before the bytes left) is then
  // the record of what it spent, and the release cross-check compares it with the coordinator's.
  const leftJob = ofType(list, 'partner.leave').length > 0;
  const releasedRounds = new Set(ofType(list, 'partner.release').map((x) => x.payload.round));
  for (const [round, c] of st.rounds) {
    if (localRounds.has(round)) continue;
    if (leftJob && releasedRounds.has(round)) {
      C(
        c.seq,
        'CROSS_ROUND_LEFT_BEFORE_APPLIED',
        `round ${round}: ${st.name} uploaded (its release is on record) and left the job before applying the round`,
        'warning',
      );
    } else {
      C(c.seq, 'CROSS_ROUND_MISSING_IN_PARTNER', `round ${round}: the coordinator records ${st.name}'s participation, ${st.name}'s own ledger does not`);
    }
  }

  const localConsent = ofType(list, 'consent.usage')[0];
  if (localConsent && st.consent) {
    const a = localConsent.payload;
    const b = st.consent.payload;
    if (a.rowsUsed !== b.rowsUsed || a.rowsExcludedNoConsent !== b.rowsExcludedNoConsent || (a.sidecar && b.sidecar && a.sidecar.sha256 !== b.sidecar.sha256)) {
      C(
        st.consent.seq,
        'CROSS_CONSENT_MISMATCH',
        `${st.name}'s consent counts differ: coordinator ${b.rowsUsed} used / ${b.rowsExcludedNoConsent} excluded, partner (seq ${localConsent.seq}) ${a.rowsUsed} / ${a.rowsExcludedNoConsent}`,
      );
    }
  } else if (localConsent && !st.consent) {
    // fedmark keeps row counts off the coordinator (they would reveal each partner's weight), so
    // the counts come from the partner's own ledger when it is audited alongside.
    st.localConsent = { seq: localConsent.seq, payload: localConsent.payload };
  }

  const localWithdraw = ofType(list, 'partner.withdraw')[0];
  if (localWithdraw && st.withdrawAfterRound === undefined) {
    L(
      localWithdraw.seq,
      'CROSS_WITHDRAW_MISSING',
      `${st.name} withdrew after round ${localWithdraw.payload.afterRound}, the coordinator ledger does not record it`,
    );
  }
  const localFinal = ofType(list, 'model.final')[0];
  if (localFinal && coord.job.final && localFinal.payload.modelHash !== coord.job.final.payload.modelHash) {
    C(coord.job.final.seq, 'CROSS_FINAL_MODEL_MISMATCH', `${st.name} (seq ${localFinal.seq}) recorded a different final model hash`);
  }
  return self;
}
