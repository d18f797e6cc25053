/** The bad-row limit (count or fraction), and the terminal report of the rows a load skipped. */
import { FedmarkError } from '../errors.ts';
import { shorten } from './csv.ts';
import type { BadRowLimit, DatasetStats, RowIssue } from './dataset.ts';

/** `file:line: column "c": message (value "v")`, with `at` from the source's locator. */
export function formatIssueAt(at: string, issue: RowIssue): string {
  return `${at}: column "${issue.column}": ${issue.message} (value "${shorten(issue.value)}")`;
}

export function checkLimit(limit: BadRowLimit): BadRowLimit {
  const ok =
    typeof limit === 'number'
      ? limit === Infinity || (Number.isInteger(limit) && limit >= 0)
      : typeof limit?.fraction === 'number' && limit.fraction >= 0 && limit.fraction <= 1;
  if (!ok) {
    throw new FedmarkError('DATA_BAD_LIMIT', `maxBadRows must be a non-negative integer, Infinity or { fraction } in [0, 1], got ${JSON.stringify(limit)}`);
  }
  return limit;
}

/** The limit's allowance for `rows` data rows. */
export function allowedBadRows(limit: BadRowLimit, rows: number): number {
  return typeof limit === 'number' ? limit : limit.fraction * rows;
}

export function describeLimit(limit: BadRowLimit): string {
  if (typeof limit === 'number') return limit === Infinity ? 'no limit' : `${limit} row${limit === 1 ? '' : 's'}`;
  return `${+(limit.fraction * 100).toPrecision(6)}% of the rows`;
}

/**
 * A command-line limit: `250` (rows), `0.5%` or `0.005` (a fraction: a number with a point, at most
 * 1), or `all` (no limit).
 */
export function parseBadRowLimit(text: string): BadRowLimit {
  const t = text.trim();
  if (t === 'all') return Infinity;
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct) return checkLimit({ fraction: Number(pct[1]) / 100 });
  if (/^\d+$/.test(t)) return checkLimit(Number(t));
  if (/^\d*\.\d+$/.test(t)) return checkLimit({ fraction: Number(t) });
  throw new FedmarkError('DATA_BAD_LIMIT', `--max-bad-rows: expected a row count (250), a share (0.5% or 0.005) or "all", got "${text}"`);
}

/**
 * What a partner should see on the terminal after a load that skipped rows: how many, why, and the
 * first few with their lines. Null when nothing was skipped. Bad-row values can be personal data:
 * this is for the partner's own terminal, never for the coordinator.
 */
export function badRowSummary(name: string, at: (line: number) => string, stats: DatasetStats, shown = 5): string | null {
  const { badRowCount, rowsRead, badRows } = stats;
  if (badRowCount === 0) return null;
  const share = rowsRead > 0 ? ` (${+((100 * badRowCount) / rowsRead).toPrecision(3)}%)` : '';
  const reasons = new Map<string, number>();
  for (const b of badRows) {
    const key = `column "${b.column}": ${b.message}`;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  const lines = [`${name}: skipped ${badRowCount} of ${rowsRead} data rows with bad values${share}`];
  if (badRows.length < badRowCount) lines.push(`  reasons among the first ${badRows.length}:`);
  for (const [reason, count] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 5)) lines.push(`  ${count} × ${reason}`);
  lines.push('  first ones:');
  for (const b of badRows.slice(0, shown)) lines.push(`    ${formatIssueAt(at(b.line), b)}`);
  return lines.join('\n');
}
