/**
 * The head pointer: a small signed side file `<ledger>.head` naming the last entry the writer
 * fsynced ({ seq, hash }). The chain alone cannot reveal that whole lines were cut off the end of
 * the file (every remaining prefix of a hash chain is a valid chain); the head pointer can, as long
 * as it survives. It is replaced atomically (write temp, fsync, rename) *after* the entry line is
 * durable, so after a crash it may lag behind the file (a warning), but is never ahead of it.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { canonicalBytes, canonicalJson } from './canonical.ts';
import { fsyncDir, writeFileAtomic } from '../../util/atomic-file.ts';
import { keyIdSchema, LEDGER_SCHEMA_VERSION } from './entries.ts';
import { toBase64, verifySignature, type LedgerSigner } from './signing.ts';

export const headSchema = z.strictObject({
  schemaVersion: z.union([z.literal(1), z.literal(2), z.literal(LEDGER_SCHEMA_VERSION)]),
  seq: z.number().int().nonnegative(),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  ts: z.iso.datetime({ offset: true }),
  author: keyIdSchema,
  sig: z.string(),
});
export type HeadPointer = z.infer<typeof headSchema>;

export function headPath(ledgerPath: string): string {
  return `${ledgerPath}.head`;
}

export function signHead(body: Omit<HeadPointer, 'sig'>, signer: LedgerSigner): HeadPointer {
  return { ...body, sig: toBase64(signer.sign(canonicalBytes(body))) };
}

export function verifyHeadSignature(head: HeadPointer, publicKey: Uint8Array): boolean {
  const { sig, ...body } = head;
  return verifySignature(canonicalBytes(body), sig, publicKey);
}

export type ReadHeadResult = { head: HeadPointer | null; problem?: string };

/** Never throws: a missing head is `{ head: null }`, an unreadable one adds `problem`. */
export function readHead(ledgerPath: string): ReadHeadResult {
  const p = headPath(ledgerPath);
  let text: string;
  try {
    text = fs.readFileSync(p, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { head: null };
    return { head: null, problem: `cannot read ${p}: ${(err as Error).message}` };
  }
  try {
    const parsed = headSchema.safeParse(JSON.parse(text));
    if (!parsed.success) return { head: null, problem: `${p}: not a valid head pointer (${parsed.error.issues[0]?.message})` };
    return { head: parsed.data };
  } catch (err) {
    return { head: null, problem: `${p}: bad JSON (${(err as Error).message})` };
  }
}

/**
 * Replaces the head pointer atomically. The temp file is fsynced before the rename so the name
 * never points at unwritten bytes; the directory is *not* fsynced: if a power failure loses the
 * rename, the old head survives, which is merely behind (allowed), never ahead.
 */
export function writeHeadAtomic(ledgerPath: string, head: HeadPointer, sync = true): void {
  writeFileAtomic(headPath(ledgerPath), canonicalJson(head) + '\n', { sync, syncDir: false });
}

export { fsyncDir };
