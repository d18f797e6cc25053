import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../cli/free-port.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { fixtureSchema, MAIN_TS, makeCustomers, partnerFiles, PURPOSE, saveFixtureModel, SCHEMA_PATH, tempDir, partnerArgs } from './helpers.ts';

const schema = await fixtureSchema();
const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

describe('fedmark serve as a process on loopback', () => {
  it('serves with a token, refuses to listen off loopback without TLS, and seals its window into the ledger on SIGTERM', async () => {
    const dir = tempDir();
    await saveFixtureModel(join(dir, 'model'), schema);
    const p = partnerFiles(dir);
    const common = [
      'serve',
      '--model',
      join(dir, 'model'),
      '--schema',
      SCHEMA_PATH,
      ...partnerArgs(p),
      '--token-file',
      join(dir, 'token'),
      '--log-level',
      'warn',
    ];
    const run = (...extra: string[]) => {
      const child = spawn(process.execPath, ['--import', loader, MAIN_TS, ...common, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b) => (out += b));
      child.stderr.on('data', (b) => (out += b));
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      return { child, exited, output: () => out };
    };
    const off = run('--host', '0.0.0.0', '--port', '0');
    expect(await off.exited).toBe(2);
    expect(off.output()).toMatch(/refusing plain HTTP on 0\.0\.0\.0/);

    const port = await freePort();
    const srv = run('--port', String(port));
    try {
      const deadline = Date.now() + 60_000;
      while (!srv.output().includes('listening on') && Date.now() < deadline && srv.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      expect(srv.output()).toContain(`listening on http://127.0.0.1:${port}`);
      const token = readFileSync(join(dir, 'token'), 'utf8').trim();
      const full: Record<string, string> = { ...makeCustomers(1, 41)[0], consent: 'yes', customer: 'C-NET-1' };
      const { churned: _l, ...c } = full;
      const res = await fetch(`http://127.0.0.1:${port}/v1/score`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ customers: [c] }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { results: { status: string; probability: number }[] };
      expect(body.results[0].status).toBe('scored');
      srv.child.kill('SIGTERM');
      expect(await srv.exited).toBe(0);
    } finally {
      if (srv.child.exitCode === null) srv.child.kill('SIGKILL');
    }
    const entry = readLedger(p.ledger).entries.find((e) => e.type === 'model.scoring');
    expect(entry?.payload).toMatchObject({ mode: 'serve', rowsScored: 1, requests: 1, requesters: ['token'], purpose: PURPOSE });
  });
});
