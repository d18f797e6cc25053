/** The fedmark CLI as child processes, for tests that run every party as its own process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../cli/free-port.ts';

const tsx = createRequire(import.meta.url).resolve('tsx/cli');
const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** A short command, waited for synchronously (key generation and the like). */
export const runCli = (...args: string[]) => spawnSync(process.execPath, [tsx, main, ...args], { encoding: 'utf8', timeout: 120_000 });

export type CliProcess = ChildProcess & { output: () => string; stdout: () => string };

/** A long-running command; its output is drained (a full pipe would block it) and kept. */
export function startCli(...args: string[]): CliProcess {
  const child = spawn(process.execPath, ['--import', loader, main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (err = (err + b).slice(-20_000)));
  return Object.assign(child, { output: () => `${out}\n${err}`, stdout: () => out });
}

export const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

/** Runs a command to its end without blocking the test's event loop; retries while the coordinator is not listening yet. */
export async function runCliAsync(args: string[], retries = 20): Promise<{ code: number | null; stdout: string; output: string }> {
  for (let i = 0; ; i++) {
    const c = startCli(...args);
    const code = await exited(c);
    const r = { code, stdout: c.stdout(), output: c.output() };
    if (code === 0 || i >= retries || !/ECONNREFUSED|fetch failed/.test(r.output)) return r;
    await new Promise((res) => setTimeout(res, 500));
  }
}

/** The last JSON line a command printed. */
export const lastJson = <T>(stdout: string): T => JSON.parse(stdout.trim().split('\n').pop()!) as T;

/** `fedmark keys init` for each name (<dir>/<name>.key.json, public half in <name>.pub.json), then a coordinator on a free port. */
export async function keysAndCoordinator(dir: string, names: string[], children: CliProcess[]): Promise<string> {
  for (const name of names) {
    const k = runCli('keys', 'init', '--out', join(dir, `${name}.key.json`), '--name', name);
    if (k.status !== 0) throw new Error(`keys init ${name}: ${k.stderr}`);
    writeFileSync(join(dir, `${name}.pub.json`), k.stdout);
  }
  const port = await freePort();
  children.push(startCli('coordinator', '--port', String(port), '--data-dir', join(dir, 'coord'), '--log-level', 'warn'));
  return `http://127.0.0.1:${port}`;
}

/** The key id in `<dir>/<name>.pub.json` (as keysAndCoordinator writes it). */
export const keyIdOf = (dir: string, name: string) => (JSON.parse(readFileSync(join(dir, `${name}.pub.json`), 'utf8')) as { keyId: string }).keyId;

/**
 * One long-running party process per name: `fedmark <command> --coordinator URL --job JOB` with the
 * party's key from keysAndCoordinator, its own `args`, its own state directory in `dir`, a 100 ms poll
 * and the owner pinned by `--owner-key-id`; each is added to `children`.
 */
export function startParties(o: {
  command: [string, string];
  url: string;
  job: string;
  dir: string;
  names: string[];
  ownerKeyId: string;
  args: (name: string, i: number) => string[];
  children: CliProcess[];
}): CliProcess[] {
  return o.names.map((name, i) => {
    const c = startCli(
      ...o.command,
      '--coordinator',
      o.url,
      '--job',
      o.job,
      '--identity',
      join(o.dir, `${name}.key.json`),
      ...o.args(name, i),
      '--state-dir',
      join(o.dir, name),
      '--poll-ms',
      '100',
      '--owner-key-id',
      o.ownerKeyId,
    );
    o.children.push(c);
    return c;
  });
}

/** Stops every child still running, waits for them all, and removes `dir`. */
export async function stopChildren(children: CliProcess[], dir: string): Promise<void> {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.map(exited));
  rmSync(dir, { recursive: true, force: true });
}
