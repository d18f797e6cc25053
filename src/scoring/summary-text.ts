/** The terminal summary of a scoring run (the JSON summary holds the same figures). */
import type { ScoreRunSummary } from './batch.ts';

const int = (n: number): string => n.toLocaleString('en-US');
const pct = (x: number | null): string => (x === null ? 'n/a' : `${(x * 100).toFixed(1)} %`);

function tableLines(head: string[], rows: string[][], numeric: boolean[]): string[] {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(w[i]) : c.padEnd(w[i])))
      .join('  ')
      .trimEnd();
  return [line(head), w.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line)];
}

export function formatScoreSummary(s: ScoreRunSummary & { runId?: string; purpose?: string }): string {
  const out: string[] = [];
  const r = s.rows;
  out.push(
    `fedmark score${s.runId ? ` — run ${s.runId}` : ''}: ${int(r.scored)} customers scored in ${s.seconds.toFixed(1)} s (${int(Math.round(s.rowsPerSecond))} rows/s)`,
  );
  out.push(
    `  model ${s.model.kind} ${s.model.hash.slice(0, 12)}…${s.model.jobId ? ` (job ${s.model.jobId})` : ''}, purpose ${s.purpose ?? s.model.purpose ?? 'n/a'}`,
  );
  out.push(
    `  rows read ${int(r.read)}: scored ${int(r.scored)}, not scored — no consent ${int(r.excludedNoConsent)}, consent withdrawn ${int(r.excludedWithdrawn)}, bad rows ${int(r.rejected)}`,
  );
  const clipped = Object.entries(r.clipped).filter(([, v]) => v > 0);
  if (clipped.length) out.push(`  clipped to the declared range: ${clipped.map(([k, v]) => `${k} ${int(v)}`).join(', ')}`);
  for (const ex of s.rejectedExamples.slice(0, 5)) out.push(`  ! ${ex}`);
  out.push(
    `  output ${s.output.path} (${int(s.output.rows)} rows, ${s.output.mode === 'top-k' ? 'early-warning list' : 'all scored customers'}), sha256 ${s.output.sha256.slice(0, 16)}…`,
  );
  out.push(
    `  mean probability ${s.meanProbability === null ? 'n/a' : s.meanProbability.toFixed(4)}; decile cut-offs (lowest score in deciles 1–10): ${s.deciles.lowestScore.map((x) => (x === null ? '—' : x.toFixed(3))).join(' ')}`,
  );
  const a = s.model.attribution;
  out.push(
    `  reason codes: ${a.method}${a.exact ? ' (exact)' : ''}, base value ${s.model.baseValue.toFixed(4)} (logit of the baseline); completeness gap max ${a.maxCompletenessGap.toExponential(1)}`,
  );
  if (s.topK) {
    const t = s.topK;
    out.push(
      `  top-${int(t.k)} list ranked by ${t.rankedBy === 'expected-value' ? `expected value at risk (probability × ${t.valueColumn})` : 'probability'}: ${int(t.selected)} customers${t.expectedValueAtRisk !== null ? `, expected value at risk ${t.expectedValueAtRisk.toFixed(2)}` : ''}${t.rowsWithoutValue ? `; ${int(t.rowsWithoutValue)} rows without a value ranked last` : ''}`,
    );
  }
  if (s.fairness) {
    out.push('');
    out.push('Selection into the top-k list by sensitive segment (four-fifths screen):');
    const rows = s.fairness.selection.flatMap((seg) =>
      seg.groups.map((g) => [
        seg.segment,
        g.group,
        int(g.scored),
        int(g.selected),
        pct(g.selectionRate),
        g.disparateImpact === null ? 'n/a' : g.disparateImpact.toFixed(2),
        g.flagged ? 'BELOW 0.8' : g.group === seg.referenceGroup ? 'reference' : 'ok',
      ]),
    );
    out.push(
      ...tableLines(['segment', 'group', 'scored', 'selected', 'rate', 'ratio', 'four-fifths'], rows, [false, false, true, true, true, true, false]).map(
        (l) => `  ${l}`,
      ),
    );
  }
  if (s.loyalty) {
    const l = s.loyalty;
    out.push('');
    out.push(
      `Offers by tenure (${l.offerColumn}; ${l.newCustomers.definition}: ${int(l.newCustomers.n)} customers, ${l.longTenure.definition}: ${int(l.longTenure.n)}):`,
    );
    out.push(`  ${l.flagged ? 'FLAG: ' : ''}${l.verdict}`);
    if (l.stratified.difference !== null) {
      out.push(
        `  risk-stratified difference (long − new) ${l.stratified.difference.toFixed(3)}${l.stratified.standardError !== null ? ` ± ${l.stratified.standardError.toFixed(3)} (SE)` : ''}, z = ${l.stratified.z?.toFixed(2)}, one-sided p = ${l.stratified.pValue?.toExponential(2)}, ${l.stratified.bandsUsed} score bands; unstratified ${l.unstratifiedDifference?.toFixed(3) ?? 'n/a'}`,
      );
    }
  }
  return out.join('\n');
}
