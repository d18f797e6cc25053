import type { PayloadOf } from '../entries.ts';
import { chargeReleases, checkCiphertexts, checkParticipation, eventsOfRoundRecord, recordOf } from './charges.ts';
import type { JobWalk } from './types.ts';

/**
 * One `round` entry: its place in the sequence, its selected/submitted/dropped sets, each partner's
 * DP record against its acceptance and declared limits, replayed ciphertexts, ε recomputed from the
 * recorded parameters, and model-hash agreement.
 */
export function analyzeRound(w: JobWalk, seq: number, payload: PayloadOf<'round'>): void {
  const r = payload;
  w.out.roundsBySeq.push({ seq, payload: r });
  if (r.round <= w.lastRound) w.err(seq, 'ROUND_OUT_OF_ORDER', `round ${r.round} recorded after round ${w.lastRound}`);
  w.lastRound = Math.max(w.lastRound, r.round);
  if (r.round > w.m.rounds) w.err(seq, 'ROUND_BEYOND_MANIFEST', `round ${r.round} exceeds the manifest's ${w.m.rounds} rounds`);
  if (w.halted) w.err(seq, 'ROUND_AFTER_HALT', `round ${r.round} recorded after the job was halted at seq ${w.halted.seq}`);
  if (w.out.final) w.err(seq, 'ROUND_AFTER_FINAL', `round ${r.round} recorded after the final model (seq ${w.out.final.seq})`);
  const selected = new Set(r.selected);
  const submitted = new Set(r.submitted);
  for (const k of [...r.selected, ...r.submitted, ...r.dropped]) {
    if (!w.out.partners.has(k)) w.err(seq, 'UNKNOWN_PARTNER', `round ${r.round} names ${k}, who is not a partner`);
  }
  for (const k of r.submitted) if (!selected.has(k)) w.err(seq, 'SUBMITTED_NOT_SELECTED', `round ${r.round}: ${k} submitted without being selected`);
  for (const k of r.submitted) w.out.partners.get(k)?.submittedRounds.add(r.round);
  for (const k of r.dropped) {
    if (!selected.has(k)) w.err(seq, 'ROUND_SETS_INCONSISTENT', `round ${r.round}: ${k} dropped without being selected`);
    if (submitted.has(k)) w.err(seq, 'ROUND_SETS_INCONSISTENT', `round ${r.round}: ${k} both submitted and dropped`);
  }
  if (w.m.partnersPerRound !== undefined && r.selected.length > w.m.partnersPerRound) {
    w.err(seq, 'TOO_MANY_SELECTED', `round ${r.round} selected ${r.selected.length} partners, manifest allows ${w.m.partnersPerRound}`, 'warning');
  }
  if (w.m.quorum !== undefined && r.submitted.length < w.m.quorum) {
    w.err(seq, 'QUORUM_NOT_MET', `round ${r.round} closed with ${r.submitted.length} submissions, quorum is ${w.m.quorum}`);
  }
  const recorded = new Set(r.partners.map((x) => x.partner));
  if (w.m.dp)
    for (const k of r.submitted)
      if (!recorded.has(k)) w.err(seq, 'DP_RECORD_MISSING', `round ${r.round}: ${k} submitted but no DP parameters / ε are recorded for it`);
  for (const rec of r.partners) {
    const st = w.out.partners.get(rec.partner);
    if (!st) continue;
    if (!selected.has(rec.partner)) w.err(seq, 'DP_RECORD_NOT_SELECTED', `round ${r.round}: ε recorded for ${st.name}, who was not selected`);
    if (st.rounds.has(r.round)) w.err(seq, 'DUPLICATE_PARTICIPATION', `round ${r.round}: ${st.name} recorded twice`);
    checkParticipation(w, seq, st, r.round);
    if (w.m.dp && rec.delta !== w.m.dp.delta)
      w.err(seq, 'DELTA_MISMATCH', `round ${r.round}: ${st.name} accounted at δ=${rec.delta}, manifest says ${w.m.dp.delta}`);
    // The manifest's C and resolved σ are DP-SGD's (the `update` release). Workloads whose releases each carry their own
    // sensitivity and σ (trees) are checked by the ε recomputation from every recorded release instead.
    const update = rec.releases ? rec.releases.find((x) => x.label === 'update') : { noiseMultiplier: rec.noiseMultiplier, sensitivity: rec.clipNorm };
    const updateSigma = update?.noiseMultiplier;
    if (w.m.dp && update && update.sensitivity !== w.m.dp.clipNorm)
      w.err(seq, 'CLIP_NORM_MISMATCH', `round ${r.round}: ${st.name} clipped at C=${update.sensitivity}, manifest says ${w.m.dp.clipNorm}`, 'warning');
    if (typeof w.m.dp?.noiseMultiplier === 'number' && updateSigma !== undefined && updateSigma !== w.m.dp.noiseMultiplier) {
      w.err(seq, 'NOISE_MULTIPLIER_MISMATCH', `round ${r.round}: ${st.name} used σ=${updateSigma}, manifest says ${w.m.dp.noiseMultiplier}`, 'warning');
    }
    checkCiphertexts(w, seq, st, `round ${r.round}`, rec.ciphertextHashes);
    chargeReleases(w, seq, st, `round ${r.round}`, rec, eventsOfRoundRecord(rec));
    st.rounds.set(r.round, { seq, rec, round: r });
    st.releaseRecords.set(`${r.round}.${rec.attempt ?? r.attempt ?? 0}`, { seq, round: r.round, record: recordOf(rec, r.attempt) });
    const pol = st.policy;
    if (pol?.maxRounds !== undefined && st.rounds.size > pol.maxRounds)
      w.err(seq, 'POLICY_ROUNDS_EXCEEDED', `round ${r.round}: ${st.name} took part in ${st.rounds.size} rounds, above its limit ${pol.maxRounds}`);
  }
  const disagree = r.modelHashes.filter((x) => x.hash !== r.globalModelHash);
  if (r.modelHashesAgreed && disagree.length) {
    w.err(
      seq,
      'MODEL_HASH_AGREEMENT_FALSE',
      `round ${r.round} claims all model hashes agreed, but ${disagree.map((d) => d.partner).join(', ')} reported a different hash`,
    );
  } else if (!r.modelHashesAgreed) {
    w.err(seq, 'MODEL_HASHES_DISAGREE', `round ${r.round}: partners' model hashes did not agree`, 'warning');
  }
}
