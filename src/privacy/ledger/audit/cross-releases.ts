/**
 * The cross-check of a partner's own release records (`partner.release`, ledger version 3) against
 * the coordinator's: ε recomputed from every attempt the partner charged, and each attempt's
 * releases and ciphertexts the same in both ledgers.
 */
import type { AttemptReleases } from '../entries.ts';
import type { Severity } from '../verify.ts';
import { fmt, ofType, sameList, understated, type EpsilonOf, type PartnerState, type Typed } from './types.ts';

type Report = (seq: number | undefined, code: string, message: string, severity?: Severity) => void;

const releaseKey = (r: AttemptReleases['releases'][number]) => `${r.label}:${r.samplingRate}:${r.noiseMultiplier}:${r.steps}:${r.sensitivity}`;

/**
 * Returns false when the local ledger holds no `partner.release` (a version-2 partner: its
 * `partner.round` entries are then the record). Otherwise recomputes the local ε from the releases
 * in seq order, checks each record against the coordinator's for the same (round, attempt), and
 * reports coordinator records the partner never wrote.
 */
export function crossCheckReleases(list: Typed[], st: PartnerState, epsilonOf: EpsilonOf, tol: number, L: Report, C: Report): boolean {
  const mine = ofType(list, 'partner.release');
  if (mine.length === 0) return false;
  const events: { samplingRate: number; noiseMultiplier: number; steps: number }[] = [];
  let eps = 0;
  let recorded = 0;
  const seen = new Set<string>();
  for (const x of mine) {
    const r = x.payload;
    const key = `${r.round}.${r.attempt}`;
    const where = `round ${r.round} attempt ${r.attempt}`;
    if (seen.has(key)) L(x.seq, 'DUPLICATE_PARTICIPATION', `${where}: ${st.name}'s releases recorded twice in its own ledger`);
    seen.add(key);
    const prev = Math.max(eps, recorded);
    events.push(...r.releases.map((e) => ({ samplingRate: e.samplingRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps })));
    eps = epsilonOf(events, r.delta);
    if (understated(r.epsilonCumulative, eps, tol))
      L(
        x.seq,
        'EPSILON_UNDERSTATED',
        `${where}: ${st.name}'s own ledger records cumulative ε=${fmt(r.epsilonCumulative)}, its recorded releases give ${fmt(eps)}`,
      );
    if (understated(r.epsilonSpent, eps - prev, tol))
      L(x.seq, 'EPSILON_SPENT_UNDERSTATED', `${where}: ${st.name}'s own ledger records ε spent ${fmt(r.epsilonSpent)}, recomputed ${fmt(eps - prev)}`);
    recorded = Math.max(recorded, r.epsilonCumulative);
    const c = st.releaseRecords.get(key);
    if (!c) {
      // The partner records a release before its upload leaves; an upload that never arrived (or
      // arrived after the attempt closed) has no coordinator record. Its ε still counts (below).
      L(
        x.seq,
        'CROSS_RELEASE_NOT_RECORDED',
        `${where}: ${st.name} released ${r.releases.map((e) => e.label).join(', ')} (ε spent ${fmt(r.epsilonSpent)}), the coordinator ledger records no upload of it`,
        'warning',
      );
      continue;
    }
    const at = `${where} (coordinator seq ${c.seq}, ${st.name} seq ${x.seq})`;
    if (!sameList(r.releases.map(releaseKey).sort(), c.record.releases.map(releaseKey).sort()) || r.delta !== c.record.delta) {
      C(
        c.seq,
        'CROSS_DP_PARAMS_MISMATCH',
        `${at}: the releases differ (coordinator ${c.record.releases.map(releaseKey).join(', ')}; partner ${r.releases.map(releaseKey).join(', ')})`,
      );
    }
    if (!sameList(r.ciphertextHashes, c.record.ciphertextHashes)) C(c.seq, 'CROSS_CIPHERTEXT_MISMATCH', `${at}: ciphertext hashes differ`);
    if (r.epsilonSpent !== c.record.epsilonSpent || r.epsilonCumulative !== c.record.epsilonCumulative) {
      C(
        c.seq,
        'CROSS_EPSILON_MISMATCH',
        `${at}: coordinator records ε spent/cumulative ${fmt(c.record.epsilonSpent)}/${fmt(c.record.epsilonCumulative)}, partner ${fmt(r.epsilonSpent)}/${fmt(r.epsilonCumulative)}`,
      );
    }
  }
  for (const [key, c] of st.releaseRecords) {
    if (!seen.has(key))
      C(
        c.seq,
        'CROSS_RELEASE_MISSING_IN_PARTNER',
        `round ${c.round} attempt ${c.record.attempt}: the coordinator records ${st.name}'s releases, ${st.name}'s own ledger does not`,
      );
  }
  st.epsilonLocal = Math.max(eps, recorded);
  return true;
}
