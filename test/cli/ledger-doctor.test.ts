import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateIdentity, writeIdentityFile } from '../../src/crypto/identity.ts';
import { LedgerWriter, readLedger, signerFromSecretKey, toBase64, verifyLedger } from '../../src/privacy/ledger/index.ts';
import { LOCK_FILE } from '../../src/util/dir-lock.ts';

const tsx = createRequire(import.meta.url).resolve('tsx/cli');
const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const fedmark = (...args: string[]) => spawnSync(process.execPath, [tsx, main, ...args], { encoding: 'utf8', timeout: 60_000 });

const dir = mkdtempSync(join(tmpdir(), 'fedmark-doctor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function makeLedger(name: string) {
  const stateDir = join(dir, name);
  mkdirSync(stateDir);
  const id = generateIdentity(name);
  const idFile = join(dir, `${name}.key.json`);
  writeIdentityFile(idFile, id);
  const signer = signerFromSecretKey(id.signSecretKey);
  const file = join(stateDir, `${name}.ledger.jsonl`);
  const w = LedgerWriter.open(file, signer);
  w.append('ledger.genesis', { ledgerId: name, role: 'partner', owner: { name, keyId: signer.keyId, signPublicKey: toBase64(signer.signPublicKey) } });
  for (let i = 1; i <= 3; i++) w.append('job.halt', { jobId: 'job-1', reason: `brake ${i}`, afterRound: i });
  w.close();
  return { file, idFile, stateDir };
}

describe('fedmark ledger doctor', () => {
  it('reports a clean ledger (exit 0), a torn final line as repairable (exit 1), repairs it only with the writer key, and the ledger then verifies', () => {
    const { file, idFile, stateDir } = makeLedger('doctor-a');
    const clean = fedmark('ledger', 'doctor', file);
    expect(clean.status, clean.stderr).toBe(0);
    expect(clean.stdout).toContain('4 entries (last seq 3), local ledger — lines, chain and signatures OK');

    // The state a write cut short by a crash leaves: part of a line, no newline.
    const torn = '{"author":"abc","payload":{"afterRound":4,"jobId":"job-1","rea';
    appendFileSync(file, torn);
    const found = fedmark('ledger', 'doctor', file);
    expect(found.status).toBe(1);
    expect(found.stdout).toContain('DAMAGED');
    expect(found.stdout).toContain('TRUNCATED_TAIL');
    expect(found.stdout).toContain('repairable: run again with --repair');

    const other = generateIdentity('someone-else');
    writeIdentityFile(join(dir, 'other.key.json'), other);
    const wrongKey = fedmark('ledger', 'doctor', file, '--repair', '--identity', join(dir, 'other.key.json'));
    expect(wrongKey.status).toBe(2);
    expect(wrongKey.stderr).toContain("must be signed by the ledger's writer");

    // Never under a running node (this test process stands in for it: its pid is alive).
    writeFileSync(join(stateDir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 'now', command: 'fedmark partner' }));
    const locked = fedmark('ledger', 'doctor', file, '--repair', '--identity', idFile);
    expect(locked.status).toBe(2);
    expect(locked.stderr).toContain('is in use by pid');
    rmSync(join(stateDir, LOCK_FILE));

    const fixed = fedmark('ledger', 'doctor', file, '--repair', '--identity', idFile);
    expect(fixed.status, fixed.stderr).toBe(0);
    expect(fixed.stdout).toContain(`repaired: moved the torn final line (${torn.length} bytes`);
    expect(fixed.stdout).toContain('recorded ledger.truncation-repaired at seq 4');
    expect(readFileSync(`${file}.torn`, 'utf8')).toBe(torn);
    const read = readLedger(file);
    expect(read.problems).toEqual([]);
    expect(verifyLedger(read).ok).toBe(true);
    expect(read.entries.at(-1)!.type).toBe('ledger.truncation-repaired');
  }, 120_000);

  it('a damaged middle line is reported and never repaired', () => {
    const { file, idFile } = makeLedger('doctor-b');
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[1] = lines[1].replace('brake 1', 'brake 9');
    writeFileSync(file, lines.join('\n'));
    const bytes = readFileSync(file);
    const found = fedmark('ledger', 'doctor', file, '--json');
    expect(found.status).toBe(1);
    const d = (JSON.parse(found.stdout) as { diagnosis: { repairable: boolean; errors: { code: string }[] } }).diagnosis;
    expect(d.repairable).toBe(false);
    expect(d.errors.map((e) => e.code)).toContain('BAD_SIGNATURE');
    const refused = fedmark('ledger', 'doctor', file, '--repair', '--identity', idFile);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('only a torn final line is repaired automatically');
    expect(readFileSync(file).equals(bytes)).toBe(true);
    expect(existsSync(`${file}.torn`)).toBe(false);
  }, 60_000);
});
