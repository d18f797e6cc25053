/**
 * Append-only, crash-safe ledger writer.
 *
 * Durability protocol per entry: the canonical entry plus '\n' goes to an O_APPEND descriptor in
 * one write call, then fsync; only then is the signed head pointer replaced (head.ts). So a crash
 * leaves either the whole line or a torn tail without a newline, and the head is never ahead of the
 * durable lines.
 *
 * On open the writer re-reads the file and re-checks the chain (sequence numbers and `prev`
 * hashes). An append that fails (ENOSPC, EIO, a file-size limit) truncates the file back to its
 * last complete entry and throws STORAGE_FULL / STORAGE_IO_ERROR; an entry counts as written once
 * it is synced, even if the head update after it fails (the head then lags; the next append
 * rewrites it). It refuses to append after any defect: a torn tail only if the caller passes
 * `repairTruncatedTail`, which moves the torn bytes into `<ledger>.torn[.N]`, cuts the file back
 * to its last complete line and records a `ledger.truncation-repaired` entry naming the torn
 * bytes' size and hash. Anything else (bad line in the middle, broken chain, head pointer ahead of
 * the file) needs a human, so the writer throws.
 *
 * One writer per file: the processes that own ledgers lock their directory (src/util/dir-lock.ts);
 * within a process, the owner must not open a ledger twice.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FedmarkError } from '../../errors.ts';
import { sha256Hex } from '../../util/hash.ts';
import { canonicalJson } from './canonical.ts';
import {
  GENESIS_PREV,
  LEDGER_SCHEMA_VERSION,
  parsePayload,
  type EntryOfType,
  type EntryType,
  type LedgerEntry,
  type PayloadInput,
  type UnsignedEntry,
} from './entries.ts';
import { fsyncDir, headPath, signHead, writeHeadAtomic } from './head.ts';
import { storageError } from '../../util/storage-errors.ts';
import { readLedger } from './reader.ts';
import { withAppendLock } from './append-lock.ts';
import { entryHash, keyIdOf, signEntry, verifyEntrySignature, type LedgerSigner } from './signing.ts';

export interface LedgerWriterOptions {
  /** Move a torn trailing line aside and record the repair instead of refusing to open. */
  repairTruncatedTail?: boolean;
  /** Clock for entry timestamps (tests). */
  now?: () => Date;
  /** Maintain `<ledger>.head` (default true). */
  headPointer?: boolean;
  /**
   * fsync every entry and head update (default true). Only in-process simulations and tests
   * should turn this off: without it a crash can lose acknowledged entries.
   */
  sync?: boolean;
}

export interface AppendOptions {
  /** Sign this entry with another key (e.g. the job owner's manifest in an in-process simulation). */
  signer?: LedgerSigner;
}

export class LedgerWriter {
  readonly path: string;
  private readonly signer: LedgerSigner;
  private readonly now: () => Date;
  private readonly headPointer: boolean;
  private readonly sync: boolean;
  private fd: number | null;
  private nextSeq: number;
  private prevHash: string;
  private lastTs: string | null;
  /** Bytes of the file this writer has accounted for (its own appends and any it caught up with). */
  private knownBytes: number;
  private headBehind: FedmarkError | null = null;

  private constructor(file: string, signer: LedgerSigner, fd: number, last: LedgerEntry | null, opts: LedgerWriterOptions) {
    this.path = file;
    this.signer = signer;
    this.fd = fd;
    this.now = opts.now ?? (() => new Date());
    this.headPointer = opts.headPointer ?? true;
    this.sync = opts.sync ?? true;
    this.nextSeq = last ? last.seq + 1 : 0;
    this.prevHash = last ? entryHash(last) : GENESIS_PREV;
    this.lastTs = last ? last.ts : null;
    this.knownBytes = fs.fstatSync(fd).size;
  }

  /** Opens (creating if absent) a ledger and resumes after its last valid entry. */
  static open(file: string, signer: LedgerSigner, opts: LedgerWriterOptions = {}): LedgerWriter {
    // Under the append lock: another process's half-written line must not look like a torn tail.
    return withAppendLock(file, () => LedgerWriter.openLocked(file, signer, opts));
  }

  private static openLocked(file: string, signer: LedgerSigner, opts: LedgerWriterOptions): LedgerWriter {
    if (!fs.existsSync(file)) {
      const fd = fs.openSync(file, 'a', 0o600);
      fs.fsyncSync(fd);
      fsyncDir(path.dirname(path.resolve(file)));
      return new LedgerWriter(file, signer, fd, null, opts);
    }
    const read = readLedger(file);
    const hard = read.problems.filter((p) => p.code !== 'TRUNCATED_TAIL');
    if (hard.length) {
      throw new FedmarkError('LEDGER_CORRUPT', `refusing to append to ${file}: ${hard.map((p) => p.message).join('; ')}`, { problems: hard });
    }
    // Re-check the chain so we never extend a history someone edited.
    let prev = GENESIS_PREV;
    for (let i = 0; i < read.entries.length; i++) {
      const e = read.entries[i];
      if (e.seq !== i || e.prev !== prev) {
        throw new FedmarkError('LEDGER_CORRUPT', `refusing to append to ${file}: chain broken at line ${read.lineNumbers[i]} (seq ${e.seq})`);
      }
      prev = entryHash(e);
    }
    const last = read.entries.length ? read.entries[read.entries.length - 1] : null;
    if (read.head && (!last || read.head.seq > last.seq)) {
      throw new FedmarkError(
        'LEDGER_TRUNCATED',
        `refusing to append to ${file}: head pointer names seq ${read.head.seq} but the file ends at ${last ? `seq ${last.seq}` : 'no entry'} — complete lines are missing`,
      );
    }
    if (read.head && last && read.head.seq <= last.seq && read.entries[read.head.seq] && entryHash(read.entries[read.head.seq]) !== read.head.hash) {
      throw new FedmarkError('LEDGER_CORRUPT', `refusing to append to ${file}: head pointer hash does not match entry seq ${read.head.seq}`);
    }
    const torn = read.problems.find((p) => p.code === 'TRUNCATED_TAIL');
    if (torn && !opts.repairTruncatedTail) {
      throw new FedmarkError('LEDGER_TORN_TAIL', `refusing to append to ${file}: ${torn.message}; reopen with { repairTruncatedTail: true } to move it aside`);
    }
    const fd = fs.openSync(file, 'r+');
    const writer = new LedgerWriter(file, signer, fd, last, opts);
    if (torn) {
      fs.closeSync(fd);
      writer.fd = null;
      writer.repairTail(read.validPrefixBytes, last ? last.seq : -1);
    } else {
      fs.closeSync(fd);
      writer.fd = fs.openSync(file, 'a');
    }
    return writer;
  }

  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  get lastHash(): string {
    return this.prevHash;
  }

  private repairTail(validBytes: number, lastValidSeq: number): void {
    const all = fs.readFileSync(this.path);
    const tail = all.subarray(validBytes);
    let tornFile = `${this.path}.torn`;
    for (let n = 1; fs.existsSync(tornFile); n++) tornFile = `${this.path}.torn.${n}`;
    // Keep the torn bytes durable before cutting them off, so a crash mid-repair loses nothing.
    const tfd = fs.openSync(tornFile, 'wx', 0o600);
    try {
      fs.writeSync(tfd, tail);
      fs.fsyncSync(tfd);
    } finally {
      fs.closeSync(tfd);
    }
    fsyncDir(path.dirname(path.resolve(tornFile)));
    const fd = fs.openSync(this.path, 'r+');
    try {
      fs.ftruncateSync(fd, validBytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.fd = fs.openSync(this.path, 'a');
    this.knownBytes = validBytes;
    this.appendUnlocked('ledger.truncation-repaired', {
      tornFile: path.basename(tornFile),
      tornBytes: tail.length,
      tornSha256: sha256Hex(tail),
      lastValidSeq,
    });
  }

  /**
   * Entries another process appended since this writer's last write (see append-lock.ts): re-read
   * and chain-checked, so the next entry extends the true last one. Throws if the file no longer
   * extends what this writer wrote.
   */
  private catchUp(): void {
    if (this.fd === null) throw new FedmarkError('LEDGER_CLOSED', `ledger ${this.path} is closed`);
    const size = fs.fstatSync(this.fd).size;
    if (size === this.knownBytes) return;
    const read = readLedger(this.path);
    const fresh = read.entries.filter((e) => e.seq >= this.nextSeq);
    let prev = this.prevHash;
    let seq = this.nextSeq;
    for (const e of fresh) {
      if (e.seq !== seq || e.prev !== prev) break;
      prev = entryHash(e);
      seq++;
    }
    if (
      size < this.knownBytes ||
      read.problems.some((p) => p.code !== 'HEAD_UNREADABLE') ||
      seq !== (read.entries.length ? read.entries[read.entries.length - 1].seq + 1 : 0) ||
      read.validPrefixBytes !== size
    ) {
      throw new FedmarkError(
        'LEDGER_CORRUPT',
        `refusing to append to ${this.path}: it changed under this writer and no longer extends entry seq ${this.nextSeq - 1}`,
      );
    }
    const last = fresh[fresh.length - 1];
    this.nextSeq = seq;
    this.prevHash = prev;
    if (last) this.lastTs = last.ts;
    this.knownBytes = size;
  }

  /** Validates, signs, writes and fsyncs one entry; returns it. */
  append<T extends EntryType>(type: T, payload: PayloadInput<T>, opts: AppendOptions = {}): EntryOfType<T> {
    return withAppendLock(this.path, () => {
      this.catchUp();
      return this.appendUnlocked(type, payload, opts);
    });
  }

  private appendUnlocked<T extends EntryType>(type: T, payload: PayloadInput<T>, opts: AppendOptions = {}): EntryOfType<T> {
    const parsed = parsePayload(type, payload);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new FedmarkError('LEDGER_BAD_PAYLOAD', `${type} payload invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, {
        issues: parsed.error.issues,
      });
    }
    const signer = opts.signer ?? this.signer;
    let ts = this.now().toISOString();
    // Timestamps never go backwards within a ledger even if the wall clock does.
    if (this.lastTs && ts < this.lastTs) ts = this.lastTs;
    const unsigned = {
      schemaVersion: LEDGER_SCHEMA_VERSION,
      seq: this.nextSeq,
      ts,
      type,
      author: signer.keyId,
      prev: this.prevHash,
      payload: parsed.data,
    } as UnsignedEntry;
    const entry = signEntry(unsigned, signer);
    this.writeEntry(entry, signer);
    return entry as EntryOfType<T>;
  }

  /**
   * Appends an entry another party built and signed (e.g. the job owner's manifest as seq 0).
   * It must extend this ledger exactly and carry a valid signature under `signPublicKey`.
   */
  appendSigned(entry: LedgerEntry, signPublicKey: Uint8Array): LedgerEntry {
    return withAppendLock(this.path, () => {
      this.catchUp();
      return this.appendSignedUnlocked(entry, signPublicKey);
    });
  }

  private appendSignedUnlocked(entry: LedgerEntry, signPublicKey: Uint8Array): LedgerEntry {
    if (entry.seq !== this.nextSeq || entry.prev !== this.prevHash) {
      throw new FedmarkError('LEDGER_NOT_NEXT', `entry seq ${entry.seq} does not extend ${this.path} (expected seq ${this.nextSeq})`);
    }
    if (keyIdOf(signPublicKey) !== entry.author || !verifyEntrySignature(entry, signPublicKey)) {
      throw new FedmarkError('LEDGER_BAD_SIGNATURE', `entry seq ${entry.seq} is not validly signed by its author ${entry.author}`);
    }
    if (entry.schemaVersion !== LEDGER_SCHEMA_VERSION) {
      throw new FedmarkError(
        'LEDGER_SCHEMA_VERSION',
        `entry seq ${entry.seq} is written under ledger schema ${entry.schemaVersion}; this writer appends version ${LEDGER_SCHEMA_VERSION} only`,
      );
    }
    const parsed = parsePayload(entry.type, entry.payload);
    if (!parsed.success) {
      throw new FedmarkError('LEDGER_BAD_PAYLOAD', `${entry.type} payload invalid: ${parsed.error.issues[0]?.message}`);
    }
    this.writeEntry(entry, null);
    return entry;
  }

  /** Builds and signs the entry that would come next, without writing it (for remote signers). */
  static buildNext<T extends EntryType>(
    seq: number,
    prev: string,
    type: T,
    payload: PayloadInput<T>,
    signer: LedgerSigner,
    ts: string = new Date().toISOString(),
  ): EntryOfType<T> {
    const parsed = parsePayload(type, payload);
    if (!parsed.success) {
      throw new FedmarkError('LEDGER_BAD_PAYLOAD', `${type} payload invalid: ${parsed.error.issues[0]?.message}`);
    }
    const unsigned = { schemaVersion: LEDGER_SCHEMA_VERSION, seq, ts, type, author: signer.keyId, prev, payload: parsed.data } as UnsignedEntry;
    return signEntry(unsigned, signer) as EntryOfType<T>;
  }

  private writeEntry(entry: LedgerEntry, headSigner: LedgerSigner | null): void {
    if (this.fd === null) throw new FedmarkError('LEDGER_CLOSED', `ledger ${this.path} is closed`);
    const buf = Buffer.from(canonicalJson(entry) + '\n', 'utf8');
    const fd = this.fd;
    const before = fs.fstatSync(fd).size;
    try {
      // One write call per line; the loop matters when the kernel returns a short write (a file-size
      // limit or a nearly full disk writes part of the line, then fails the rest).
      let off = 0;
      while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
      if (this.sync) fs.fsyncSync(fd);
    } catch (err) {
      this.rollBack(before, entry.seq, err);
    }
    this.knownBytes += buf.length;
    // Synced: the entry is written, whatever happens to the head pointer below.
    this.nextSeq = entry.seq + 1;
    this.prevHash = entryHash(entry);
    this.lastTs = entry.ts;
    if (this.headPointer) {
      const s = headSigner ?? this.signer;
      try {
        writeHeadAtomic(
          this.path,
          signHead({ schemaVersion: LEDGER_SCHEMA_VERSION, seq: entry.seq, hash: this.prevHash, ts: entry.ts, author: s.keyId }, s),
          this.sync,
        );
        this.headBehind = null;
      } catch (err) {
        // A head behind the file is a state the reader and open() accept (the head only ever lags);
        // failing here would make the caller append the same entry again. The next append rewrites it.
        this.headBehind = storageError(err, headPath(this.path), `updating the head pointer after seq ${entry.seq}`);
      }
    }
  }

  /**
   * A failed append cuts the file back to its last complete entry, so nothing partial stays behind
   * for the next entry to be glued onto. If even that fails the writer closes: the next open moves
   * the torn tail aside (repairTruncatedTail) or refuses, never appending after it.
   */
  private rollBack(size: number, seq: number, cause: unknown): never {
    const fd = this.fd!;
    try {
      fs.ftruncateSync(fd, size);
      if (this.sync) fs.fsyncSync(fd);
    } catch (again) {
      fs.closeSync(fd);
      this.fd = null;
      const err = storageError(cause, this.path, `appending seq ${seq}`);
      throw new FedmarkError(
        err.code,
        `${err.message}; cutting the partial line off failed too (${(again as NodeJS.ErrnoException).code ?? (again as Error).message}) — the ledger is closed; \`fedmark ledger doctor ${this.path}\` reports the torn tail`,
        err.details,
      );
    }
    throw storageError(cause, this.path, `appending seq ${seq}`);
  }

  /** Set when the last head-pointer update failed (its entry is durable; the head lags by one or more). */
  get headPointerBehind(): FedmarkError | null {
    return this.headBehind;
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}
