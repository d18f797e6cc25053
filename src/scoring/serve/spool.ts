/**
 * How the scoring service records who it scored without one ledger entry per request.
 *
 * Every answered request appends one line to a spool file — the salted ids of the customers it
 * scored, how many it left unscored (no consent, withdrawn, rejected), who asked, and the SHA-256
 * of the response — and the response is sent only after that line is fsynced (group commit: the
 * concurrent requests of one tick share one fsync). Periodically, on shutdown and on the next start
 * after a crash, the open window is *sealed*: its spool file becomes one `model.scoring` ledger
 * entry (mode "serve": counts, requesters, a sidecar of the salted ids, the hash of the response
 * hashes) and is deleted. A data-subject statement reads the sealed entries from the ledger and the
 * not-yet-sealed windows from the spool (`pendingScorings`), so it is truthful at every moment,
 * also after a crash: a response that reached a caller always has its line on disk.
 *
 * Spool file: `<dir>/<windowId>.jsonl`; line 1 describes the window (model, purpose, operator),
 * every further line is one request.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { createHash } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';
import { SidecarBuilder } from '../sidecar-builder.ts';

export interface WindowInfo {
  windowId: string;
  modelHash: string;
  modelKind: string;
  modelJobId: string | null;
  schemaHash: string;
  purpose: string;
  operator: string;
}

export interface SpoolRecord {
  /** ISO time the request was answered. */
  t: string;
  /** Requester: a key id, or "token". */
  by: string;
  /** Salted ids of the customers scored. */
  scored: string[];
  noConsent: number;
  withdrawn: number;
  rejected: number;
  /** SHA-256 of the response body (null for a rejected request). */
  out: string | null;
}

const WINDOW_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

interface Op {
  line?: string;
  rotateTo?: WindowInfo;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * When an appended record counts as recorded:
 * - `fsync` (default): after its line is fsynced (group commit). Survives a crash of the process,
 *   of the OS and a power loss.
 * - `write`: after its line is written to the file (the kernel's page cache); the file is fsynced in
 *   the background every `syncEveryMs`. Survives a crash of the process; an OS crash or power loss
 *   can lose the records of the last `syncEveryMs` — faster, for services whose latency budget an
 *   fsync per request tick does not fit (docs/SCORING.md gives both latencies).
 */
export type SpoolDurability = 'fsync' | 'write';

/** The open window's file, appended to with group commit. */
export class ScoringSpool {
  private fd: number;
  private file: string;
  private queue: Op[] = [];
  private flushing = false;
  private broken: unknown = null;
  private dirty = false;
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    readonly dir: string,
    info: WindowInfo,
    readonly durability: SpoolDurability,
    syncEveryMs: number,
  ) {
    ({ fd: this.fd, file: this.file } = ScoringSpool.create(dir, info));
    if (durability === 'write') {
      this.timer = setInterval(() => {
        if (!this.dirty || this.broken) return;
        this.dirty = false;
        fs.fdatasync(this.fd, () => undefined);
      }, syncEveryMs);
      this.timer.unref();
    }
  }

  static open(dir: string, info: WindowInfo, opts: { durability?: SpoolDurability; syncEveryMs?: number } = {}): ScoringSpool {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new ScoringSpool(dir, info, opts.durability ?? 'fsync', opts.syncEveryMs ?? 20);
  }

  private static create(dir: string, info: WindowInfo): { fd: number; file: string } {
    if (!WINDOW_RE.test(info.windowId)) throw new FedmarkError('SPOOL_BAD_WINDOW', `bad window id ${JSON.stringify(info.windowId)}`);
    const file = path.join(dir, `${info.windowId}.jsonl`);
    const fd = fs.openSync(file, 'wx', 0o600);
    fs.writeSync(fd, JSON.stringify(info) + '\n');
    fs.fsyncSync(fd);
    return { fd, file };
  }

  get currentFile(): string {
    return this.file;
  }

  /** Resolves once the record is recorded (see SpoolDurability). */
  append(record: SpoolRecord): Promise<void> {
    const line = JSON.stringify(record) + '\n';
    if (this.durability === 'write' && !this.flushing && this.queue.length === 0) {
      if (this.broken) return Promise.reject(this.broken);
      try {
        const bytes = Buffer.from(line, 'utf8');
        for (let off = 0; off < bytes.length;) off += fs.writeSync(this.fd, bytes, off, bytes.length - off);
        this.dirty = true;
        return Promise.resolve();
      } catch (err) {
        this.broken = new FedmarkError('SPOOL_WRITE_FAILED', `cannot record scoring requests in ${this.file}: ${(err as Error).message}`);
        return Promise.reject(this.broken);
      }
    }
    return this.enqueue({ line });
  }

  /** Closes the current window (after everything queued before) and opens `next`; resolves with the closed file. */
  async rotate(next: WindowInfo): Promise<string> {
    const closed = this.file;
    await this.enqueue({ rotateTo: next });
    return closed;
  }

  private enqueue(op: Omit<Op, 'resolve' | 'reject'>): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ...op, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length) {
      const ops = this.queue;
      this.queue = [];
      const done: Op[] = [];
      try {
        for (const op of ops) {
          if (op.line !== undefined) {
            const bytes = Buffer.from(op.line, 'utf8');
            for (let off = 0; off < bytes.length;) off += fs.writeSync(this.fd, bytes, off, bytes.length - off);
            done.push(op);
          } else if (op.rotateTo) {
            await new Promise<void>((res, rej) => fs.fdatasync(this.fd, (err) => (err ? rej(err) : res())));
            for (const d of done.splice(0)) d.resolve();
            fs.closeSync(this.fd);
            ({ fd: this.fd, file: this.file } = ScoringSpool.create(this.dir, op.rotateTo));
            op.resolve();
          }
        }
        await new Promise<void>((res, rej) => fs.fdatasync(this.fd, (err) => (err ? rej(err) : res())));
        for (const d of done) d.resolve();
      } catch (err) {
        // A spool that cannot be written must stop the service from answering: fail everything.
        this.broken = new FedmarkError('SPOOL_WRITE_FAILED', `cannot record scoring requests in ${this.file}: ${(err as Error).message}`);
        for (const op of [...ops, ...this.queue]) op.reject(this.broken);
        this.queue = [];
      }
    }
    this.flushing = false;
  }

  /** Waits for queued records, fsyncs, then closes the file (the window stays pending until sealed). */
  async close(): Promise<string> {
    if (this.timer) clearInterval(this.timer);
    await this.enqueue({ line: '' }).catch(() => undefined);
    fs.closeSync(this.fd);
    return this.file;
  }
}

export interface WindowSummary {
  info: WindowInfo;
  requests: number;
  requesters: string[];
  startedAt: string | null;
  finishedAt: string | null;
  rowsScored: number;
  noConsent: number;
  withdrawn: number;
  rejected: number;
  outputSha256: string;
  /** Lines that could not be parsed (a torn last line after a crash: its response was never sent). */
  unreadable: number;
}

/** Streams a window file (a window can be long), feeding scored ids to `onScored`. */
export async function readWindow(file: string, onScored: (idHash: string) => void = () => undefined): Promise<WindowSummary> {
  const rl = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let s: WindowSummary | null = null;
  const by = new Set<string>();
  const outs = createHash('sha256');
  for await (const line of rl) {
    if (!s) {
      let info: WindowInfo;
      try {
        info = JSON.parse(line) as WindowInfo;
        if (!WINDOW_RE.test(info.windowId)) throw new Error('bad window id');
      } catch (err) {
        rl.close();
        throw new FedmarkError('SPOOL_CORRUPT', `${file}: first line is not a window description (${(err as Error).message})`);
      }
      s = {
        info,
        requests: 0,
        requesters: [],
        startedAt: null,
        finishedAt: null,
        rowsScored: 0,
        noConsent: 0,
        withdrawn: 0,
        rejected: 0,
        outputSha256: '',
        unreadable: 0,
      };
      continue;
    }
    if (!line) continue;
    let r: SpoolRecord;
    try {
      r = JSON.parse(line) as SpoolRecord;
    } catch {
      s.unreadable++;
      continue;
    }
    s.requests++;
    by.add(r.by);
    s.startedAt ??= r.t;
    s.finishedAt = r.t;
    s.rowsScored += r.scored.length;
    s.noConsent += r.noConsent;
    s.withdrawn += r.withdrawn;
    s.rejected += r.rejected;
    if (r.out) outs.update(r.out + '\n');
    for (const h of r.scored) onScored(h);
  }
  if (!s) throw new FedmarkError('SPOOL_CORRUPT', `${file}: empty window file`);
  s.requesters = [...by].sort();
  s.outputSha256 = outs.digest('hex');
  return s;
}

/** Closed window files waiting to be sealed (all but `except`, the open one), oldest first. */
export function pendingWindows(dir: string, except?: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => path.join(dir, f))
    .filter((f) => f !== except)
    .sort((a, b) => fs.statSync(a).mtimeMs - fs.statSync(b).mtimeMs);
}

/** What sealing records; `record` appends the ledger entry. */
export interface SealTarget {
  sidecarDir: string;
  record(summary: WindowSummary, sidecar: ReturnType<SidecarBuilder['finish']> | null): void;
}

/**
 * Seals one closed window: sidecar + ledger entry, then deletes the spool file. An empty window is
 * just deleted. If recording fails the file stays, to be sealed later.
 */
export async function sealWindow(file: string, target: SealTarget): Promise<WindowSummary> {
  const builder = new SidecarBuilder(target.sidecarDir, path.basename(file, '.jsonl'));
  let summary: WindowSummary;
  try {
    summary = await readWindow(file, (h) => builder.add(h));
  } catch (err) {
    builder.abort();
    throw err;
  }
  if (summary.requests === 0) {
    builder.abort();
    fs.rmSync(file, { force: true });
    return summary;
  }
  const info = summary.rowsScored > 0 ? builder.finish() : (builder.abort(), null);
  target.record(summary, info);
  fs.rmSync(file, { force: true });
  return summary;
}

export interface PendingScoring {
  windowId: string;
  modelHash: string;
  purpose: string;
  firstAt: string | null;
  lastAt: string | null;
}

/** Windows not yet sealed into the ledger that scored the customer with this salted id. */
export async function pendingScorings(dir: string, idHash: string): Promise<PendingScoring[]> {
  const out: PendingScoring[] = [];
  for (const file of pendingWindows(dir)) {
    let found = false;
    let s: WindowSummary;
    try {
      s = await readWindow(file, (h) => {
        if (h === idHash) found = true;
      });
    } catch {
      continue;
    }
    if (found) out.push({ windowId: s.info.windowId, modelHash: s.info.modelHash, purpose: s.info.purpose, firstAt: s.startedAt, lastAt: s.finishedAt });
  }
  return out;
}
