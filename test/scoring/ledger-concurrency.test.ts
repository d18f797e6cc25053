import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LedgerWriter } from '../../src/privacy/ledger/writer.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { verifyLedger } from '../../src/privacy/ledger/verify.ts';
import { signerFromSecretKey, toBase64 } from '../../src/privacy/ledger/signing.ts';
import { lockPath, withAppendLock } from '../../src/privacy/ledger/append-lock.ts';
import { deterministicIdentity } from '../helpers/identities.ts';
import { tempDir } from './helpers.ts';

const node = deterministicIdentity('telco-west');
const signer = signerFromSecretKey(node.signSecretKey);
const genesis = {
  ledgerId: 'telco-west',
  role: 'partner' as const,
  owner: { name: 'telco-west', keyId: signer.keyId, signPublicKey: toBase64(node.signPublicKey) },
};
const budget = (i: number) => ({ jobId: 'job-1', partner: signer.keyId, round: i, requestedEpsilon: 1, remainingEpsilon: 0, reason: `r${i}` });

describe('one partner ledger, several writers (the node, fedmark score, fedmark serve)', () => {
  it('a long-lived writer catches up with entries another writer appended, so the chain stays valid', () => {
    const file = join(tempDir(), 'p.ledger.jsonl');
    const nodeWriter = LedgerWriter.open(file, signer, { sync: false });
    nodeWriter.append('ledger.genesis', genesis);
    nodeWriter.append('budget.refusal', budget(1));
    // A scoring run opens the same ledger while the node's writer stays open…
    const scoring = LedgerWriter.open(file, signer, { sync: false });
    scoring.append('budget.refusal', budget(2));
    scoring.close();
    // …and the node's next entry extends the scoring entry, not its own stale view.
    const e = nodeWriter.append('budget.refusal', budget(3));
    expect(e.seq).toBe(3);
    const other = LedgerWriter.open(file, signer, { sync: false });
    for (let i = 4; i < 10; i++) (i % 2 ? nodeWriter : other).append('budget.refusal', budget(i));
    nodeWriter.close();
    other.close();
    const v = verifyLedger(readLedger(file));
    expect(v.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(v.entries.map((x) => x.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(existsSync(lockPath(file))).toBe(false);
  });

  it("appends from another process interleave safely with this process's open writer", async () => {
    const dir = tempDir();
    const file = join(dir, 'p.ledger.jsonl');
    const w = LedgerWriter.open(file, signer, { sync: false });
    w.append('ledger.genesis', genesis);
    const script = join(dir, 'child.ts');
    const here = (p: string) => JSON.stringify(pathToFileURL(join(import.meta.dirname, p)).href);
    writeFileSync(
      script,
      `import { LedgerWriter } from ${here('../../src/privacy/ledger/writer.ts')};
import { signerFromSecretKey } from ${here('../../src/privacy/ledger/signing.ts')};
import { deterministicIdentity } from ${here('../helpers/identities.ts')};
const s = signerFromSecretKey(deterministicIdentity('telco-west').signSecretKey);
const w = LedgerWriter.open(process.argv[2], s, { sync: false });
for (let i = 0; i < 40; i++) w.append('budget.refusal', { jobId: 'job-1', partner: s.keyId, round: 1000 + i, requestedEpsilon: 1, remainingEpsilon: 0, reason: 'child' });
w.close();
`,
    );
    const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const child = spawn(process.execPath, ['--import', loader, script, file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const done = new Promise<number | null>((r) => child.once('exit', r));
    // Keep appending from this process while the child does.
    let mine = 0;
    const tick = async () => {
      for (let i = 0; i < 200 && child.exitCode === null; i++) {
        w.append('budget.refusal', budget(i));
        mine++;
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await Promise.all([tick(), done]);
    expect(await done, stderr).toBe(0);
    w.append('budget.refusal', budget(9999));
    w.close();
    const v = verifyLedger(readLedger(file));
    expect(v.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(v.entries.length).toBe(1 + 40 + mine + 1);
  });

  it('a stale lock left by a crashed process is broken; a live one makes the writer wait, then refuse', () => {
    const file = join(tempDir(), 'p.ledger.jsonl');
    writeFileSync(lockPath(file), '999999999'); // no such process
    expect(withAppendLock(file, () => 42)).toBe(42);
    writeFileSync(lockPath(file), String(process.pid)); // held by a live process (us, pretending)
    const t0 = Date.now();
    expect(() => withAppendLock(file, () => 1, { timeoutMs: 100 })).toThrow(/locked by process/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  });
});
