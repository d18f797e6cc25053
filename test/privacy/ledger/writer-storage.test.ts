import { afterEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { FedmarkError } from '../../../src/errors.ts';
import { LedgerWriter, readLedger, verifyLedger, signerFromSecretKey, toBase64, readHead } from '../../../src/privacy/ledger/index.ts';

// A disk that fills (a file-size limit in a child process: the kernel writes part of the line, then
// refuses the rest), an fsync that fails with EIO, a head pointer that cannot be replaced (ENOSPC).
const REPO = path.resolve(new URL('../../..', import.meta.url).pathname);
const LEDGER_INDEX = path.join(REPO, 'src/privacy/ledger/index.ts');
const secret = nacl.sign.keyPair.fromSeed(createHash('sha256').update('storage').digest()).secretKey;
const signer = signerFromSecretKey(secret);
const genesis = { ledgerId: 'disk', role: 'partner' as const, owner: { name: 'disk', keyId: signer.keyId, signPublicKey: toBase64(signer.signPublicKey) } };
const halt = (i: number) => ({ jobId: 'job-1', reason: `brake ${i}`, afterRound: i });
const tmp = (): string => path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-disk-')), 'local.jsonl');
const errnoError = (code: string) => Object.assign(new Error(`${code}: injected`), { code });

afterEach(() => {
  vi.restoreAllMocks();
  syncBuiltinESMExports();
});

describe('the ledger on a disk that fills or fails', () => {
  const child = `
import { LedgerWriter, signerFromSecretKey, toBase64 } from ${JSON.stringify(LEDGER_INDEX)};
const [file, secretHex] = process.argv.slice(2);
const s = signerFromSecretKey(new Uint8Array(Buffer.from(secretHex, 'hex')));
const w = LedgerWriter.open(file, s);
w.append('ledger.genesis', { ledgerId: 'disk', role: 'partner', owner: { name: 'disk', keyId: s.keyId, signPublicKey: toBase64(s.signPublicKey) } });
const metrics = {};
for (let i = 0; i < 1500; i++) metrics['bin_' + i] = i / 7;
for (let round = 0; round < 1000; round++) {
  try {
    w.append('evaluation', { jobId: 'disk-job', round, metrics });
    process.stdout.write(JSON.stringify({ written: w.lastSeq }) + '\\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ failed: err.code, message: err.message, lastSeq: w.lastSeq }) + '\\n');
    process.exit(3);
  }
}
`;

  it('a write cut short by a file-size limit (ulimit -f, a real short write then EFBIG) is cut back: no partial line, the error names the file, and the ledger reopens and extends cleanly', async () => {
    const file = tmp();
    const script = path.join(path.dirname(file), 'append-until-full.ts');
    fs.writeFileSync(script, child);
    // 160 KiB: the genesis and a few ~35 KB entries fit, then one is cut mid-line.
    const proc = spawn(
      'bash',
      ['-c', `ulimit -f 160 && exec "${process.execPath}" --import tsx "${script}" "${file}" ${Buffer.from(secret).toString('hex')}`],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => proc.on('exit', r));
    expect(code, `stdout:\n${out}\nstderr:\n${err}`).toBe(3);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { written?: number; failed?: string; message?: string; lastSeq?: number });
    const failure = lines.at(-1)!;
    expect(failure.failed).toBe('STORAGE_FULL');
    expect(failure.message).toContain(file);
    expect(failure.message).toContain('EFBIG');
    const written = lines.filter((l) => l.written !== undefined).length;
    expect(written).toBeGreaterThanOrEqual(2);
    // The limit was hit inside a line: the file was longer than the kept part at some point.
    const read = readLedger(file);
    expect(read.problems).toEqual([]);
    expect(read.entries.length).toBe(written + 1);
    expect(read.entries.at(-1)!.seq).toBe(failure.lastSeq);
    expect(verifyLedger(read).ok).toBe(true);

    // Space is back (no limit in this process): the same ledger opens without repair and goes on.
    const w = LedgerWriter.open(file, signer);
    w.append('job.halt', halt(1));
    w.close();
    const after = readLedger(file);
    expect(after.problems).toEqual([]);
    expect(verifyLedger(after).ok).toBe(true);
    expect(readHead(file).head?.seq).toBe(after.entries.at(-1)!.seq);
  }, 60_000);

  it('an fsync that fails with EIO: the unsynced line is cut off, the entry is not counted, the next append takes its seq', () => {
    const file = tmp();
    const w = LedgerWriter.open(file, signer);
    w.append('ledger.genesis', genesis);
    w.append('job.halt', halt(1));
    const size = fs.statSync(file).size;
    const real = fs.fsyncSync;
    vi.spyOn(fs, 'fsyncSync')
      .mockImplementationOnce(() => {
        throw errnoError('EIO');
      })
      .mockImplementation(real);
    let thrown: unknown;
    try {
      w.append('job.halt', halt(2));
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(FedmarkError);
    expect((thrown as FedmarkError).code).toBe('STORAGE_IO_ERROR');
    expect(fs.statSync(file).size).toBe(size);
    expect(w.lastSeq).toBe(1);
    const again = w.append('job.halt', halt(2));
    expect(again.seq).toBe(2);
    w.close();
    const read = readLedger(file);
    expect(read.problems).toEqual([]);
    expect(read.entries.map((e) => e.seq)).toEqual([0, 1, 2]);
  });

  it('the head pointer cannot be replaced (ENOSPC on rename): the synced entry still counts, no error reaches the caller, and the next append brings the head up to date', () => {
    const file = tmp();
    const w = LedgerWriter.open(file, signer);
    w.append('ledger.genesis', genesis);
    const real = fs.renameSync;
    vi.spyOn(fs, 'renameSync')
      .mockImplementationOnce(() => {
        throw errnoError('ENOSPC');
      })
      .mockImplementation(real);
    syncBuiltinESMExports();
    const e = w.append('job.halt', halt(1));
    expect(e.seq).toBe(1);
    expect(w.headPointerBehind?.code).toBe('STORAGE_FULL');
    // The head lags one entry: a state open() accepts (it never runs ahead of the file).
    expect(readHead(file).head?.seq).toBe(0);
    const reopened = LedgerWriter.open(file, signer);
    reopened.close();
    w.append('job.halt', halt(2));
    expect(w.headPointerBehind).toBeNull();
    expect(readHead(file).head?.seq).toBe(2);
    w.close();
    expect(readLedger(file).problems).toEqual([]);
    // No temp file of the failed head write is left behind.
    expect(fs.readdirSync(path.dirname(file)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
