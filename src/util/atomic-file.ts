import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { storageError, storageErrorCode } from './storage-errors.ts';

/**
 * Replaces a file atomically: a unique temp file in the same directory, written and fsynced, then
 * renamed over the target (and the directory fsynced, unless `syncDir` is off). A crash at any point
 * leaves either the old content or the new one, never a mix. `sync: false` skips both fsyncs (tests).
 * A full or failing disk throws STORAGE_FULL / STORAGE_IO_ERROR naming the file; the old content stays.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number; sync?: boolean; syncDir?: boolean } = {}): void {
  const sync = opts.sync ?? true;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', opts.mode ?? 0o600);
  try {
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
      if (sync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed or never created: nothing to clean up
    }
    // A full or failing disk is a clear, coded error (the old content is intact), not an errno trace.
    if (storageErrorCode(err)) throw storageError(err, path, `writing ${basename(path)}`);
    throw err;
  }
  if (sync && (opts.syncDir ?? true)) fsyncDir(dir);
}

/** Makes a create or rename durable; best effort (some platforms refuse to fsync a directory). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* best effort: only the durability of the name is weakened, not of fsynced contents */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
