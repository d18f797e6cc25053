/**
 * Builds an id sidecar (sorted, de-duplicated salted id hashes, the format of
 * src/privacy/ledger/subject-rights.ts) for a scoring run of any size in bounded memory.
 *
 * The hashes are HMAC outputs, uniformly distributed, so their first hex digit pair splits them
 * into 256 buckets of about equal size: hashes are buffered per bucket and spilled to one temp file
 * per bucket when the buffer holds too many; at the end each bucket is sorted on its own and the
 * buckets are concatenated in order, which is a sorted file. Memory stays at the spill threshold
 * plus one bucket (n/256 hashes), instead of all n.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { FedmarkError } from '../errors.ts';
import { fsyncDir } from '../util/atomic-file.ts';
import { SIDECAR_SCHEME, sidecarFileName, type SidecarInfo } from '../privacy/ledger/subject-rights.ts';

const BUCKETS = 256;
const HASH_RE = /^[0-9a-f]{32}$/;

export class SidecarBuilder {
  private readonly buffers: string[][] = Array.from({ length: BUCKETS }, () => []);
  private buffered = 0;
  private readonly spillDir: string;
  private spilled = false;
  private closed = false;

  constructor(
    private readonly sidecarDir: string,
    private readonly name: string,
    private readonly spillAt = 200_000,
  ) {
    sidecarFileName(name); // validates the name
    fs.mkdirSync(sidecarDir, { recursive: true, mode: 0o700 });
    this.spillDir = path.join(sidecarDir, `.${name}.spill-${randomBytes(4).toString('hex')}`);
  }

  add(idHash: string): void {
    if (this.closed) throw new FedmarkError('SIDECAR_CLOSED', 'sidecar already written');
    if (!HASH_RE.test(idHash)) throw new FedmarkError('SIDECAR_BAD_HASH', `not a salted id hash: ${JSON.stringify(idHash)}`);
    this.buffers[parseInt(idHash.slice(0, 2), 16)].push(idHash);
    if (++this.buffered >= this.spillAt) this.spill();
  }

  private bucketFile(b: number): string {
    return path.join(this.spillDir, `${b.toString(16).padStart(2, '0')}`);
  }

  private spill(): void {
    if (!this.spilled) {
      fs.mkdirSync(this.spillDir, { mode: 0o700 });
      this.spilled = true;
    }
    for (let b = 0; b < BUCKETS; b++) {
      const buf = this.buffers[b];
      if (!buf.length) continue;
      fs.appendFileSync(this.bucketFile(b), buf.join('\n') + '\n', { mode: 0o600 });
      this.buffers[b] = [];
    }
    this.buffered = 0;
  }

  /** Writes `<dir>/<name>.ids` atomically and returns what the ledger entry records. */
  finish(): SidecarInfo {
    if (this.closed) throw new FedmarkError('SIDECAR_CLOSED', 'sidecar already written');
    this.closed = true;
    const file = sidecarFileName(this.name);
    const target = path.join(this.sidecarDir, file);
    const tmp = path.join(this.sidecarDir, `.${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    const fd = fs.openSync(tmp, 'wx', 0o600);
    const sha = createHash('sha256');
    let count = 0;
    try {
      for (let b = 0; b < BUCKETS; b++) {
        let list = this.buffers[b];
        if (this.spilled && fs.existsSync(this.bucketFile(b))) {
          const text = fs.readFileSync(this.bucketFile(b), 'ascii');
          list = list.concat(text.split('\n').filter(Boolean));
        }
        this.buffers[b] = [];
        if (!list.length) continue;
        list.sort();
        let out = '';
        let prev = '';
        for (const h of list) {
          if (h === prev) continue;
          prev = h;
          out += h + '\n';
          count++;
        }
        const bytes = Buffer.from(out, 'ascii');
        sha.update(bytes);
        for (let off = 0; off < bytes.length;) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
      if (this.spilled) fs.rmSync(this.spillDir, { recursive: true, force: true });
    }
    fs.renameSync(tmp, target);
    fsyncDir(this.sidecarDir);
    return { file, sha256: sha.digest('hex'), count, scheme: SIDECAR_SCHEME };
  }

  /** Drops everything (a failed run leaves no sidecar behind). */
  abort(): void {
    this.closed = true;
    if (this.spilled) fs.rmSync(this.spillDir, { recursive: true, force: true });
  }
}
