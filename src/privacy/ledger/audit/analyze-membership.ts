import type { PayloadOf } from '../entries.ts';
import { limitOf, type JobWalk, type Typed } from './types.ts';

/** Acceptances, refusals, withdrawals, budget refusals and consent counts: who may take part, under which declared limits. */
export function analyzeMembership(w: JobWalk, item: Typed): void {
  const { seq } = item;
  switch (item.type) {
    case 'partner.acceptance':
    case 'partner.refusal': {
      const p = item.payload as PayloadOf<'partner.acceptance'> | PayloadOf<'partner.refusal'>;
      const st = w.out.partners.get(p.partner);
      if (!st) break; // UNKNOWN_PARTNER already reported by verify
      if (st.status !== 'no-response') {
        w.err(seq, 'DUPLICATE_RESPONSE', `partner ${st.name} answered the job twice (first at seq ${st.responseSeq})`, 'warning');
        break;
      }
      if (p.manifestHash !== w.anchor) {
        w.err(
          seq,
          'ACCEPTANCE_MANIFEST_MISMATCH',
          `partner ${st.name}'s ${item.type === 'partner.acceptance' ? 'acceptance' : 'refusal'} names manifest ${p.manifestHash.slice(0, 12)}…, not this ledger's manifest entry ${w.anchor.slice(0, 12)}…`,
        );
      }
      st.status = item.type === 'partner.acceptance' ? 'accepted' : 'refused';
      st.responseSeq = seq;
      st.manifestHash = p.manifestHash;
      st.policy = p.policy;
      if (item.type === 'partner.acceptance' && p.policy) {
        const pol = p.policy;
        if (w.m.dp && w.m.dp.delta > pol.maxDelta)
          w.err(seq, 'POLICY_DELTA_EXCEEDED', `partner ${st.name} accepted δ=${w.m.dp.delta} above its own limit ${pol.maxDelta}`);
        const lim = limitOf(pol)!;
        if (w.m.dp && w.m.dp.targetEpsilon > lim)
          w.err(seq, 'POLICY_EPSILON_EXCEEDED', `partner ${st.name} accepted target ε=${w.m.dp.targetEpsilon} above its limit ${lim}`);
        if (pol.maxRounds !== undefined && w.m.rounds > pol.maxRounds)
          w.err(seq, 'POLICY_ROUNDS_EXCEEDED', `partner ${st.name} accepted ${w.m.rounds} rounds, above its limit ${pol.maxRounds}`, 'warning');
        if (pol.allowedPurposes && !pol.allowedPurposes.includes(w.m.purpose))
          w.err(seq, 'POLICY_PURPOSE', `partner ${st.name} does not allow purpose "${w.m.purpose}"`);
        if (pol.allowedColumns) {
          const bad = w.m.columns.filter((c) => !pol.allowedColumns!.includes(c));
          if (bad.length) w.err(seq, 'POLICY_COLUMNS', `partner ${st.name} does not allow column(s) ${bad.join(', ')}`);
        }
        if (typeof w.m.dp?.noiseMultiplier === 'number' && pol.minNoiseMultiplier !== undefined && w.m.dp.noiseMultiplier < pol.minNoiseMultiplier) {
          w.err(seq, 'POLICY_NOISE_TOO_LOW', `partner ${st.name} accepted σ=${w.m.dp.noiseMultiplier} below its minimum ${pol.minNoiseMultiplier}`);
        }
      }
      break;
    }
    case 'partner.withdraw': {
      const p = item.payload as PayloadOf<'partner.withdraw'>;
      const st = w.out.partners.get(p.partner);
      if (!st) break;
      st.status = 'withdrawn';
      st.withdrawAfterRound = p.afterRound;
      break;
    }
    case 'budget.refusal': {
      const p = item.payload as PayloadOf<'budget.refusal'>;
      const st = w.out.partners.get(p.partner);
      if (st && p.round !== undefined) st.budgetRefusedRounds.add(p.round);
      break;
    }
    case 'consent.usage': {
      const p = item.payload as PayloadOf<'consent.usage'>;
      const st = w.out.partners.get(p.partner);
      if (!st) break;
      if (st.consent) w.err(seq, 'DUPLICATE_CONSENT_RECORD', `partner ${st.name}'s consent counts recorded twice (also seq ${st.consent.seq})`, 'warning');
      st.consent = { seq, payload: p };
      break;
    }
    default:
      break;
  }
}
