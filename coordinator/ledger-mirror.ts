import { existsSync, renameSync } from 'node:fs';
import { canonicalJson } from '../src/privacy/ledger/canonical.ts';
import { headPath } from '../src/privacy/ledger/head.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { writeFileAtomic } from '../src/util/atomic-file.ts';

/**
 * A job ledger's lines kept in the coordinator's database as well as in its file, so that a
 * coordinator on PostgreSQL can move: started on another machine (another data dir) against the
 * same database, it rebuilds each ledger file from the database before appending to it.
 */
export interface LedgerMirror {
  ledgerLines(jobId: string): string[];
  putLedgerLines(jobId: string, lines: { seq: number; line: string }[]): void;
}

/**
 * Makes the file and the database agree before a ledger is opened. Both are prefixes of one chain
 * in normal operation: the file is written first, so after a crash it can be ahead (its extra lines
 * are copied to the database); on a new machine it is missing or behind (it is rewritten from the
 * database). If they disagree (the file is from an older run elsewhere) the database wins and the
 * file is kept beside, renamed, for the operator.
 */
export function reconcileLedgerFile(path: string, jobId: string, mirror: LedgerMirror): void {
  const stored = mirror.ledgerLines(jobId);
  const local = existsSync(path) ? readLedger(path).entries.map((e) => canonicalJson(e)) : [];
  let common = 0;
  while (common < stored.length && common < local.length && stored[common] === local[common]) common++;
  if (common === stored.length) {
    if (local.length > stored.length)
      mirror.putLedgerLines(
        jobId,
        local.slice(common).map((line, i) => ({ seq: common + i, line })),
      );
    return;
  }
  if (common < local.length) {
    const aside = `${path}.diverged-${Date.now()}`;
    renameSync(path, aside);
    if (existsSync(headPath(path))) renameSync(headPath(path), `${aside}.head`);
  }
  // The head pointer (if any) names an entry at or before the file's old end: still valid.
  writeFileAtomic(path, stored.map((l) => l + '\n').join(''), { mode: 0o600 });
}
