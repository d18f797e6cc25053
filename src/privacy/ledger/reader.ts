/**
 * Reading a ledger file never throws on bad content: every defect becomes a `LedgerProblem` with
 * its 1-based line number, and every line that is a well-formed, canonical entry envelope is
 * returned, so the auditor can name as many problems as possible in one pass.
 */
import fs from 'node:fs';
import { canonicalJson } from './canonical.ts';
import { envelopeSchema, type LedgerEntry } from './entries.ts';
import { readHead, type HeadPointer } from './head.ts';

export type LedgerProblemCode =
  'READ_FAILED' | 'TRUNCATED_TAIL' | 'EMPTY_LINE' | 'BAD_UTF8' | 'BAD_JSON' | 'BAD_ENVELOPE' | 'NON_CANONICAL' | 'HEAD_UNREADABLE';

export interface LedgerProblem {
  code: LedgerProblemCode;
  /** 1-based line number (0 for whole-file problems). */
  line: number;
  /** The seq the line should have held, inferred from the entry before it. */
  seq?: number;
  message: string;
}

export interface ReadLedgerResult {
  path: string;
  entries: LedgerEntry[];
  /** lineNumbers[i] is the 1-based line of entries[i]. */
  lineNumbers: number[];
  problems: LedgerProblem[];
  head: HeadPointer | null;
  /** Byte length of the longest prefix made only of good, newline-terminated lines. */
  validPrefixBytes: number;
  /** Bytes after the last newline (a torn write), if any. */
  tornTailBytes: number;
  totalBytes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses ledger text already in memory (`path` is only used in messages). */
export function parseLedgerBytes(bytes: Uint8Array, path = '<memory>'): Omit<ReadLedgerResult, 'head'> {
  const entries: LedgerEntry[] = [];
  const lineNumbers: number[] = [];
  const problems: LedgerProblem[] = [];
  let offset = 0;
  let line = 0;
  let validPrefixBytes = 0;
  let prefixIntact = true;
  let tornTailBytes = 0;
  const nextSeq = (): number => (entries.length ? entries[entries.length - 1].seq + 1 : 0);

  while (offset < bytes.length) {
    line++;
    const nl = bytes.indexOf(0x0a, offset);
    if (nl === -1) {
      // The writer emits each entry and its newline in one write, so bytes without a newline are
      // a write that did not finish (crash, full disk, or a cut file) — even if they parse.
      tornTailBytes = bytes.length - offset;
      problems.push({
        code: 'TRUNCATED_TAIL',
        line,
        seq: nextSeq(),
        message: `${path}:${line}: truncated tail — ${tornTailBytes} byte(s) after the last newline (torn write)`,
      });
      break;
    }
    const lineBytes = bytes.subarray(offset, nl);
    const lineEnd = nl + 1;
    offset = lineEnd;
    const bad = (code: LedgerProblemCode, message: string): void => {
      problems.push({ code, line, seq: nextSeq(), message: `${path}:${line}: ${message}` });
      prefixIntact = false;
    };
    if (lineBytes.length === 0) {
      bad('EMPTY_LINE', 'empty line');
      continue;
    }
    let text: string;
    try {
      text = utf8.decode(lineBytes);
    } catch {
      bad('BAD_UTF8', 'invalid UTF-8');
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      bad('BAD_JSON', `bad JSON (${(err as Error).message})`);
      continue;
    }
    const env = envelopeSchema.safeParse(value);
    if (!env.success) {
      const issue = env.error.issues[0];
      bad('BAD_ENVELOPE', `not a ledger entry: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
      continue;
    }
    let canonical: string | null = null;
    try {
      canonical = canonicalJson(value);
    } catch {
      canonical = null;
    }
    if (canonical !== text) {
      // Signatures cover the canonical form; a non-canonical line means someone rewrote it.
      bad('NON_CANONICAL', 'entry is not in RFC 8785 canonical form');
      continue;
    }
    // Keep the raw parsed object (not zod's output) so hashes and signatures are checked over
    // exactly what is on disk.
    entries.push(value as LedgerEntry);
    lineNumbers.push(line);
    if (prefixIntact) validPrefixBytes = lineEnd;
  }
  return { path, entries, lineNumbers, problems, validPrefixBytes, tornTailBytes, totalBytes: bytes.length };
}

/** Reads a ledger file and its head pointer. Never throws. */
export function readLedger(path: string): ReadLedgerResult {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(path);
  } catch (err) {
    return {
      path,
      entries: [],
      lineNumbers: [],
      problems: [{ code: 'READ_FAILED', line: 0, message: `cannot read ${path}: ${(err as Error).message}` }],
      head: null,
      validPrefixBytes: 0,
      tornTailBytes: 0,
      totalBytes: 0,
    };
  }
  const parsed = parseLedgerBytes(bytes, path);
  const h = readHead(path);
  if (h.problem) parsed.problems.push({ code: 'HEAD_UNREADABLE', line: 0, message: h.problem });
  return { ...parsed, head: h.head };
}
