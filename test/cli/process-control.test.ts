import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { freePort } from '../../cli/free-port.ts';
import { LOCK_FILE } from '../../src/util/dir-lock.ts';

// Real processes: two coordinators on one data directory, a busy port, signals, a SIGKILL's stale lock.
const tsx = createRequire(import.meta.url).resolve('tsx/cli');
const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const run = (...args: string[]) => spawnSync(process.execPath, [tsx, main, ...args], { encoding: 'utf8', timeout: 60_000 });

type Proc = ChildProcess & { output: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> };
const children: Proc[] = [];
const start = (...args: string[]): Proc => {
  const child = spawn(process.execPath, ['--import', loader, main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const p = Object.assign(child, { output: () => out, exit });
  children.push(p);
  return p;
};
async function until(p: Proc, text: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!p.output().includes(text)) {
    if (p.exitCode !== null || Date.now() > end) throw new Error(`waited for "${text}"; output:\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const coordinator = (port: number, dataDir: string) => start('coordinator', '--port', String(port), '--data-dir', dataDir, '--log-level', 'warn');

const dir = mkdtempSync(join(tmpdir(), 'fedmark-procs-'));
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('one process per data directory, a busy port, and signals', () => {
  it('a second coordinator on the same data dir refuses naming the holder; a busy port is one clear line; SIGTERM stops cleanly and frees the dir; a SIGKILLed holder leaves a stale lock that the next start takes over', async () => {
    const dataDir = join(dir, 'coord');
    const [p1, p2] = [await freePort(), await freePort()];
    const first = coordinator(p1, dataDir);
    await until(first, 'listening on');
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(true);

    const second = coordinator(p2, dataDir);
    const s = await second.exit;
    expect(s.code).toBe(2);
    expect(second.output()).toContain(`is in use by another fedmark process (pid ${first.pid}`);
    expect(second.output()).not.toMatch(/\n\s+at /);

    const busy = coordinator(p1, join(dir, 'other'));
    const b = await busy.exit;
    expect(b.code).toBe(2);
    expect(busy.output()).toContain(`port ${p1} on 127.0.0.1 is already in use by another process`);
    expect(busy.output()).not.toMatch(/\n\s+at /);
    // The refused start freed its own directory's lock on the way out.
    expect(existsSync(join(dir, 'other', LOCK_FILE))).toBe(false);

    first.kill('SIGTERM');
    expect(await first.exit).toEqual({ code: 0, signal: null });
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(false);

    const killed = coordinator(p1, dataDir);
    await until(killed, 'listening on');
    killed.kill('SIGKILL');
    expect((await killed.exit).signal).toBe('SIGKILL');
    expect(JSON.parse(readFileSync(join(dataDir, LOCK_FILE), 'utf8')).pid).toBe(killed.pid);

    const again = coordinator(p1, dataDir);
    await until(again, 'listening on');
    again.kill('SIGINT');
    expect((await again.exit).code).toBe(0);
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(false);
  }, 120_000);

  it('a second partner node on the same state dir refuses naming the holder; SIGTERM ends the waiting node with 143 and frees the dir', async () => {
    const port = await freePort();
    const coord = coordinator(port, join(dir, 'coord-p'));
    await until(coord, 'listening on');
    const k = run('keys', 'init', '--out', join(dir, 'p.key.json'), '--name', 'p');
    expect(k.status, k.stderr).toBe(0);
    const ownerKeyId = 'ab'.repeat(16);
    writeFileSync(
      join(dir, 'policy.json'),
      JSON.stringify({ partner: 'p', datasetId: 'd', maxEpsilonPerJob: 1, lifetimeEpsilon: 2, maxDelta: 1e-5, allowedColumns: [], allowedPurposes: ['x'] }),
    );
    const stateDir = join(dir, 'p-state');
    const partner = () =>
      start(
        'partner',
        '--coordinator',
        `http://127.0.0.1:${port}`,
        '--job',
        'nobody-registered-this',
        '--data',
        BUNDLED_DATASETS['telco-churn'].csv,
        '--schema',
        BUNDLED_DATASETS['telco-churn'].schema,
        '--identity',
        join(dir, 'p.key.json'),
        '--policy',
        join(dir, 'policy.json'),
        '--state-dir',
        stateDir,
        '--owner-key-id',
        ownerKeyId,
        '--poll-ms',
        '100',
      );
    const waiting = partner();
    await until(waiting, 'waiting for', 60_000);
    const twin = partner();
    expect((await twin.exit).code).toBe(2);
    expect(twin.output()).toContain(`is in use by another fedmark process (pid ${waiting.pid}`);
    waiting.kill('SIGTERM');
    expect((await waiting.exit).code).toBe(143);
    expect(existsSync(join(stateDir, LOCK_FILE))).toBe(false);
    coord.kill('SIGTERM');
    expect((await coord.exit).code).toBe(0);
  }, 120_000);
});
