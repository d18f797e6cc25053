import { describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../cli/free-port.ts';
import { idRulesSchema, normaliseId } from '../../src/vertical/psi/normalise.ts';

const tsx = createRequire(import.meta.url).resolve('tsx/cli');
const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [tsx, main, ...args], { encoding: 'utf8', timeout: 120_000 });
const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const start = (...args: string[]): ChildProcess & { output: () => string; stdout: () => string } => {
  const child = spawn(process.execPath, ['--import', loader, main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (err = (err + b).slice(-20_000)));
  return Object.assign(child, { output: () => `${out}\n${err}`, stdout: () => out });
};
const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

describe('fedmark psi from the command line: a coordinator, the owner and two parties, each its own process', () => {
  it('aligns two customer lists (duplicates, case and spacing variants) to the plaintext intersection in one common order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-psi-cli-'));
    const children: ReturnType<typeof start>[] = [];
    try {
      // The bank's and the telco's lists overlap in 40 customers; the telco writes e-mails in other forms and has a duplicate.
      const bank = Array.from({ length: 70 }, (_, i) => `customer${i}@example.com`);
      const telco = [...Array.from({ length: 40 }, (_, i) => `  Customer${i + 30}@Example.COM `), 'customer31@example.com', ...Array.from({ length: 25 }, (_, i) => `other${i}@telco.test`)];
      writeFileSync(join(dir, 'bank.csv'), `email,balance\n${bank.map((e, i) => `${e},${i}`).join('\n')}\n`);
      writeFileSync(join(dir, 'telco.csv'), `plan,email\n${telco.map((e, i) => `p${i},"${e}"`).join('\n')}\n`);
      for (const name of ['bank', 'telco', 'owner']) {
        const k = run('keys', 'init', '--out', join(dir, `${name}.key.json`), '--name', name);
        expect(k.status, k.stderr).toBe(0);
        writeFileSync(join(dir, `${name}.pub.json`), k.stdout);
      }
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      children.push(start('coordinator', '--port', String(port), '--data-dir', join(dir, 'coord'), '--log-level', 'warn'));
      const parties = ['bank', 'telco'].map((name) => {
        const c = start('psi', 'party', '--coordinator', url, '--job', 'align-q4', '--identity', join(dir, `${name}.key.json`), '--ids', join(dir, `${name}.csv`), '--id-column', 'email', '--state-dir', join(dir, name), '--poll-ms', '100');
        children.push(c);
        return c;
      });
      // Wait for the coordinator to listen, then the owner registers the job and follows it.
      let owner = run('psi', 'run', '--coordinator', url, '--identity', join(dir, 'owner.key.json'), '--job', 'align-q4', '--party', join(dir, 'bank.pub.json'), join(dir, 'telco.pub.json'), '--id-column', 'email', '--max-set-size', '128', '--poll-ms', '100');
      for (let i = 0; i < 20 && owner.status !== 0 && /ECONNREFUSED|fetch failed/.test(owner.stderr); i++) {
        await new Promise((r) => setTimeout(r, 500));
        owner = run('psi', 'run', '--coordinator', url, '--identity', join(dir, 'owner.key.json'), '--job', 'align-q4', '--party', join(dir, 'bank.pub.json'), join(dir, 'telco.pub.json'), '--id-column', 'email', '--max-set-size', '128', '--poll-ms', '100');
      }
      expect(owner.status, owner.stderr).toBe(0);
      expect(JSON.parse(owner.stdout)).toMatchObject({ jobId: 'align-q4', state: 'completed' });
      const codes = await Promise.all(parties.map(exited));
      expect(codes, parties.map((p) => p.output()).join('\n---\n')).toEqual([0, 0]);
      const results = parties.map((p) => JSON.parse(p.stdout().trim().split('\n').pop()!) as { intersection: number; orderDigest: string; out: string });
      expect(results.map((r) => r.intersection)).toEqual([40, 40]);
      expect(results[0].orderDigest).toBe(results[1].orderDigest);

      // Each party's file: its own rows and ids, in the common order; the same customer at the same position.
      const read = (f: string) => readFileSync(f, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).slice(1).map((l) => l.split(','));
      const [b, t] = results.map((r) => read(r.out));
      const rules = idRulesSchema.parse({ kind: 'email' });
      const norm = (ids: string[]) => ids.map((x) => { const n = normaliseId(x, rules); return n.ok ? n.value : null; });
      const bankIds = norm(bank);
      const telcoIds = norm(telco);
      const want = [...new Set(bankIds)].filter((x) => telcoIds.includes(x)).sort();
      expect(want).toHaveLength(40);
      expect([...new Set(b.map((r) => JSON.parse(r[2]) as string))].sort()).toEqual(want);
      for (const [, row, id] of b) expect(bankIds[Number(row)]).toBe(JSON.parse(id));
      for (const [, row, id] of t) expect(telcoIds[Number(row)]).toBe(JSON.parse(id));
      const at = (rows: string[][]) => new Map(rows.map(([pos, , id]) => [id, pos]));
      const tb = at(t);
      for (const [id, pos] of at(b)) expect(tb.get(id)).toBe(pos);
      // The duplicate (customer31 twice at the telco) keeps both its rows at one position.
      expect(t.filter((r) => JSON.parse(r[2]) === 'customer31@example.com').length).toBe(2);
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
      await Promise.all(children.map(exited));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
