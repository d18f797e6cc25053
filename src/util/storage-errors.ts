import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { FedmarkError } from '../errors.ts';

/**
 * Storage failures as stable codes. A full disk (ENOSPC), a quota (EDQUOT) or a file-size limit
 * (EFBIG, `ulimit -f`) is STORAGE_FULL: retryable once space returns. A failing or read-only device
 * (EIO, EROFS) is STORAGE_IO_ERROR. SQLite reports the same conditions with its own codes.
 */
export type StorageErrorCode = 'STORAGE_FULL' | 'STORAGE_IO_ERROR';

const FULL_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const IO_ERRNO = new Set(['EIO', 'EROFS']);

/** The storage class of an fs or SQLite error, or null for anything else. */
export function storageErrorCode(err: unknown): StorageErrorCode | null {
  if (err instanceof FedmarkError) return err.code === 'STORAGE_FULL' || err.code === 'STORAGE_IO_ERROR' ? err.code : null;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (FULL_ERRNO.has(code) || code === 'SQLITE_FULL') return 'STORAGE_FULL';
  if (IO_ERRNO.has(code) || code.startsWith('SQLITE_IOERR') || code === 'SQLITE_READONLY' || code === 'SQLITE_CORRUPT') return 'STORAGE_IO_ERROR';
  return null;
}

/** Free bytes for unprivileged writers on the file system holding `path` (null when it cannot be read). */
export function freeBytes(path: string): number | null {
  try {
    const s = statfsSync(path);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

/** A FedmarkError naming what was being written, where, and the free space there. */
export function storageError(err: unknown, file: string, what: string): FedmarkError {
  const code = storageErrorCode(err) ?? 'STORAGE_IO_ERROR';
  const errno = (err as { code?: string }).code ?? 'unknown';
  const free = freeBytes(dirname(file));
  const freeText = free === null ? '' : `, ${formatBytes(free)} free there`;
  const advice =
    code === 'STORAGE_FULL' ? 'free space (or raise the file-size limit) and restart; nothing partial was kept' : 'check the device; nothing partial was kept';
  return new FedmarkError(code, `${what} failed: ${file}: ${errno}${freeText} — ${advice}`, { errno, file, retryAfterSeconds: 30 });
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}
