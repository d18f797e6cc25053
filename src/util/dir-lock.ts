import { closeSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FedmarkError } from '../errors.ts';

/** What a lock file holds: enough for an operator to find the process that owns the directory. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  command: string;
}

export const LOCK_FILE = 'fedmark.lock';

/**
 * Exclusive ownership of a data directory by one process (a coordinator's data dir, a partner's
 * state dir): two writers on one ledger or store corrupt it silently. The lock is a file created
 * with O_EXCL holding the owner's pid; a lock whose pid no longer runs on this host (a SIGKILLed
 * node) is stale and taken over, so a crash never needs a manual clean-up. A lock held by a live
 * process — including this one — is refused with the holder's pid.
 */
export class DirLock {
  private released = false;
  private readonly onExit = () => this.release();

  private constructor(
    readonly path: string,
    readonly holder: LockHolder,
  ) {
    // A process that exits without closing (process.exit after a signal) still frees its directory.
    process.once('exit', this.onExit);
  }

  static acquire(dir: string, what: string): DirLock {
    const path = join(dir, LOCK_FILE);
    const me: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), command: what };
    // Two attempts: the second only after removing a stale lock.
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd: number;
      try {
        fd = openSync(path, 'wx', 0o600);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new FedmarkError('DATA_DIR_UNWRITABLE', `cannot create the lock ${path}: ${(err as Error).message}`);
        }
        const held = readHolder(path);
        if (held && isLive(held)) {
          throw new FedmarkError(
            'DATA_DIR_LOCKED',
            `${dir} is in use by another fedmark process (pid ${held.pid} on ${held.host}, ${held.command}, since ${held.startedAt}) — stop that process first, or use another directory; two writers would corrupt its ledgers`,
            { holder: held },
          );
        }
        // Stale (its process is gone) or unreadable (killed while writing it): take it over.
        try {
          unlinkSync(path);
        } catch {
          /* another process removed it first; the next O_EXCL open decides */
        }
        continue;
      }
      try {
        writeSync(fd, JSON.stringify(me) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return new DirLock(path, me);
    }
    throw new FedmarkError('DATA_DIR_LOCKED', `${dir}: another process took the lock ${path} while this one was starting`);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    process.removeListener('exit', this.onExit);
    // Only remove the file if it is still ours (a stale-lock takeover may have replaced it).
    if (readHolder(this.path)?.pid === this.holder.pid) {
      try {
        unlinkSync(this.path);
      } catch {
        /* already gone */
      }
    }
  }
}

export function readHolder(path: string): LockHolder | null {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    return typeof h.pid === 'number'
      ? { pid: h.pid, host: String(h.host ?? ''), startedAt: String(h.startedAt ?? '?'), command: String(h.command ?? '?') }
      : null;
  } catch {
    return null;
  }
}

/** True while the process a lock names may still run (always, for a lock written on another host). */
export function isLive(h: LockHolder): boolean {
  // A lock written on another host (a shared volume) cannot be checked from here: treat it as held.
  if (h.host && h.host !== hostname()) return true;
  if (h.pid === process.pid) return true;
  try {
    process.kill(h.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Refuses when a live process holds the lock of `dir` (an offline tool must not write under a running node). */
export function assertNotLocked(dir: string, what: string): void {
  const held = readHolder(join(dir, LOCK_FILE));
  if (held && held.pid !== process.pid && isLive(held)) {
    throw new FedmarkError('DATA_DIR_LOCKED', `${what}: ${dir} is in use by pid ${held.pid} on ${held.host} (${held.command}) — stop it first`, {
      holder: held,
    });
  }
}
