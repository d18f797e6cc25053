import path from 'node:path';
import type { AuditResult } from './types.ts';

/** ε shown to humans is rounded *up*; budget left is rounded *down*. */
export function ceilTo(x: number, digits: number): string {
  const f = 10 ** digits;
  return (Math.ceil(x * f - 1e-9) / f).toFixed(digits);
}
/** A limit or budget left, rounded *down*. */
export function floorTo(x: number, digits: number): string {
  const f = 10 ** digits;
  return (Math.floor(x * f + 1e-9) / f).toFixed(digits);
}

/** How a job without differential privacy is named wherever ε is shown: never as ε = 0. */
export const NOT_DP = 'not differentially private (ε = ∞)';

/** Plain-text table + findings for the CLI. */
export function formatAuditSummary(result: AuditResult): string {
  const errors = result.findings.filter((f) => f.severity === 'error').length;
  const warnings = result.findings.length - errors;
  const lines: string[] = [];
  lines.push(`fedmark audit — job ${result.jobId ?? '(unknown)'}: ${result.ok ? 'OK' : 'FAILED'} (${errors} error(s), ${warnings} warning(s))`);
  for (const l of result.ledgers) lines.push(`  ledger ${path.basename(l.name)}: ${l.entries} entries, ${l.ok ? 'intact' : 'problems found'}`);
  if (result.partners.some((p) => !p.private)) {
    lines.push(`  privacy: ${NOT_DP}: nothing bounds what its rounds reveal about a partner's customers`);
  }
  lines.push('');
  const header = ['partner', 'key', 'status', 'rounds', 'rows used', 'no consent', 'ε (≤)', 'δ', 'ε limit', 'budget left', 'local ledger'];
  const rows = result.partners.map((p) => [
    p.name,
    p.partner.slice(0, 8),
    p.status,
    String(p.rounds),
    p.rowsUsed === null ? '—' : String(p.rowsUsed),
    p.rowsWithoutConsent === null ? '—' : String(p.rowsWithoutConsent),
    p.private ? ceilTo(p.epsilon, 4) : '∞ (not DP)',
    p.delta === null || !p.private ? '—' : p.delta.toExponential(1),
    p.epsilonLimit === null ? '—' : floorTo(p.epsilonLimit, 4),
    p.budgetLeft === null ? '—' : floorTo(p.budgetLeft, 4),
    p.localLedgerChecked ? 'cross-checked' : '—',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmtRow = (r: string[]): string =>
    r
      .map((c, i) => (i >= 3 && i <= 9 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  lines.push(fmtRow(header));
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) lines.push(fmtRow(r));
  if (result.findings.length) {
    lines.push('');
    lines.push('findings:');
    for (const f of result.findings) {
      lines.push(`  [${f.severity}] ${path.basename(f.ledger)}${f.seq !== undefined ? ` seq ${f.seq}` : ''} ${f.code}: ${f.message}`);
    }
  }
  return lines.join('\n');
}
