import { spawn, type ChildProcess } from 'node:child_process';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { createWriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { FedmarkError } from '../../src/errors.ts';
import { freePort } from '../free-port.ts';
import { PARTNER_HOLDOUT } from '../partner-data.ts';
import type { DemoSetup } from './setup.ts';

const here = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(here, 'main.ts');
// Nodes run as `node --import tsx main.ts …`: one process each, so killing it kills the node (tsx's
// launcher would leave its child running after a SIGKILL).
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

async function waitForHealth(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new FedmarkError('DEMO_COORDINATOR', `the coordinator exited with code ${child.exitCode}; see its log`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new FedmarkError('DEMO_COORDINATOR', `the coordinator did not answer on ${url} within ${timeoutMs} ms`);
}

export function spawnNode(args: string[], logFile: string): ChildProcess {
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, ['--import', TSX_LOADER, MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FEDMARK_LOG_LEVEL: 'info' },
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return child;
}

export function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((res) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      res(null);
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      res(code);
    });
  });
}

export interface DemoProcesses {
  url: string;
  partners: ChildProcess[];
  /** Kills every process still running (also registered for process exit). */
  cleanup: () => void;
}

/** Stage 2: the coordinator and one partner node per partner, as separate processes on 127.0.0.1. */
export async function startProcesses(s: DemoSetup, out: string, seed: number): Promise<DemoProcesses> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const cleanup = () => {
    children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
    process.removeListener('exit', cleanup);
  };
  const coordinator = spawnNode(['coordinator', '--port', String(port), '--data-dir', join(out, 'coordinator')], join(out, 'logs', 'coordinator.log'));
  children.push(coordinator);
  process.once('exit', cleanup);
  // Partners boot while the coordinator does: a node waits for its job to appear.
  const partners = s.names.map((name) =>
    spawnNode(
      [
        'partner',
        ...[
          '--coordinator',
          url,
          '--job',
          s.manifest.jobId,
          '--data',
          join(out, 'partners', name, 'data.csv'),
          '--schema',
          BUNDLED_DATASETS[s.datasetName].schema,
        ],
        ...[
          '--identity',
          join(out, 'keys', `${name}.json`),
          '--policy',
          join(out, 'partners', name, 'policy.json'),
          '--state-dir',
          join(out, 'partners', name, 'state'),
        ],
        ...['--holdout', String(PARTNER_HOLDOUT), '--split-seed', String(seed), '--poll-ms', '100'],
        ...['--owner-key-id', publicIdentity(s.owner).keyId, '--coordinator-key-id', s.coordinatorKeyId],
      ],
      join(out, 'logs', `${name}.log`),
    ),
  );
  children.push(...partners);
  try {
    await waitForHealth(url, coordinator, 60_000);
  } catch (err) {
    cleanup();
    throw err;
  }
  return { url, partners, cleanup };
}

/** A coordinator process on a free loopback port, answering its health check. */
export async function startCoordinator(dataDir: string, logFile: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawnNode(['coordinator', '--port', String(port), '--data-dir', dataDir], logFile);
  try {
    await waitForHealth(url, child, 60_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { url, child };
}
