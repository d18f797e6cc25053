/**
 * A short-lived, cross-process lock around one ledger append (`<ledger>.lock`).
 *
 * Several programs of one partner append to the same local ledger: the partner node (for a whole
 * job), `fedmark withdraw`, `fedmark score`, `fedmark serve`. Each holds its writer open for a
 * different time, so the lock is taken per append, not per writer: under it the writer re-reads any
 * entries another process appended since its last write (writer.ts `catchUp`) and only then builds
 * its own entry on top of the true last one. Held for one write + fsync (about a millisecond).
 *
 * The lock file is created with O_EXCL and holds the owner's pid. A lock whose process no longer
 * exists (a crash between create and unlink), or older than `staleMs`, is broken. Breaking has a
 * microsecond race (two waiters judging the same stale file) that only matters right after a
 * crash; the chain checks in catchUp still refuse to extend an inconsistent file.
 */
import fs from 'node:fs';
import { FedmarkError } from '../../errors.ts';

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockPath(ledgerPath: string): string {
  return `${ledgerPath}.lock`;
}

/** Runs `fn` holding the append lock of `ledgerPath`. */
export function withAppendLock<T>(ledgerPath: string, fn: () => T, opts: { timeoutMs?: number; staleMs?: number } = {}): T {
  const file = lockPath(ledgerPath);
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const staleMs = opts.staleMs ?? 30_000;
  for (;;) {
    let fd: number | null = null;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST')
        throw new FedmarkError(
          'LEDGER_UNWRITABLE',
          `cannot lock ledger ${ledgerPath} (${code ?? (err as Error).message}): does its directory exist and is it writable?`,
        );
    }
    if (fd !== null) {
      try {
        fs.writeSync(fd, String(process.pid));
      } finally {
        fs.closeSync(fd);
      }
      try {
        return fn();
      } finally {
        fs.rmSync(file, { force: true });
      }
    }
    let holder = NaN;
    let age = 0;
    try {
      holder = Number(fs.readFileSync(file, 'utf8'));
      age = Date.now() - fs.statSync(file).mtimeMs;
    } catch {
      continue; // released between our open and our read
    }
    // An empty file is a holder that has created but not yet written its pid: wait for it.
    const empty = Number.isNaN(holder) || holder === 0;
    if ((!empty && !alive(holder)) || age > staleMs) {
      fs.rmSync(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new FedmarkError(
        'LEDGER_BUSY',
        `ledger ${ledgerPath} is locked by process ${empty ? '(starting)' : holder}; try again (or remove ${file} if that process is gone)`,
      );
    }
    sleepMs(2);
  }
}
