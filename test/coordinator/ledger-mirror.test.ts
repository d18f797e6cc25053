import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reconcileLedgerFile, type LedgerMirror } from '../../coordinator/ledger-mirror.ts';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { canonicalJson } from '../../src/privacy/ledger/canonical.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { signerFromSecretKey } from '../../src/privacy/ledger/signing.ts';
import { LedgerWriter } from '../../src/privacy/ledger/writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedmark-ledger-mirror-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const signer = signerFromSecretKey(generateIdentity('coordinator').signSecretKey);

/** The database side, in memory: what CoordinatorStore.ledgerLines/putLedgerLines keep. */
function memoryMirror(lines: string[] = []): LedgerMirror & { lines: string[] } {
  return {
    lines,
    ledgerLines: () => [...lines],
    putLedgerLines: (_job, add) => {
      for (const l of add) {
        expect(l.seq).toBe(lines.length);
        lines.push(l.line);
      }
    },
  };
}

/** A ledger of `n` entries in `file`, returned as its lines. */
function ledger(file: string, n: number, reason = 'r'): string[] {
  const w = LedgerWriter.open(file, signer, { sync: false });
  for (let i = 0; i < n; i++) w.append('job.halt', { jobId: 'j', reason: `${reason}${i}`, afterRound: i });
  w.close();
  return readLedger(file).entries.map((e) => canonicalJson(e));
}

describe('a job ledger kept in the database as well as in its file (PostgreSQL stores)', () => {
  it('a missing file (a coordinator on another machine) is rebuilt from the database, entry for entry', () => {
    const lines = ledger(join(dir, 'src-a.jsonl'), 3);
    const file = join(dir, 'a.jsonl');
    reconcileLedgerFile(file, 'j', memoryMirror([...lines]));
    expect(readLedger(file).entries.map((e) => canonicalJson(e))).toEqual(lines);
    // And it can be appended to: the chain continues.
    const w = LedgerWriter.open(file, signer, { sync: false });
    expect(w.lastSeq).toBe(2);
    w.close();
  });

  it('a file ahead of the database (killed between the file append and the insert) is copied to it', () => {
    const file = join(dir, 'b.jsonl');
    const lines = ledger(file, 4);
    const mirror = memoryMirror(lines.slice(0, 2));
    reconcileLedgerFile(file, 'j', mirror);
    expect(mirror.lines).toEqual(lines);
  });

  it('a file that disagrees with the database (left from an older run elsewhere) is kept aside and replaced', () => {
    const file = join(dir, 'c.jsonl');
    ledger(file, 3, 'old');
    const stored = ledger(join(dir, 'src-c.jsonl'), 2, 'new');
    reconcileLedgerFile(file, 'j', memoryMirror([...stored]));
    expect(readLedger(file).entries.map((e) => canonicalJson(e))).toEqual(stored);
    const aside = readdirSync(dir).filter((f) => f.startsWith('c.jsonl.diverged-') && !f.endsWith('.head'));
    expect(aside).toHaveLength(1);
    expect(readLedger(join(dir, aside[0])).entries).toHaveLength(3);
    expect(existsSync(join(dir, `${aside[0]}.head`))).toBe(true);
  });
});
