/**
 * The coordinator's HTTP surface under an unauthenticated caller, measured on a real `fedmark
 * coordinator` process: peak resident memory (VmHWM) before and after one unauthenticated 60 MiB
 * PUT of an upload, and what 40 requests from one address get against a limit of 20/min, each with
 * a fresh `x-fedmark-key` and without one. `--root DIR` measures another checkout (e.g. the main
 * branch) with the same script. Writes JSON; Linux only (reads /proc).
 *
 *   npx tsx benchmarks/http/surface.ts [--root .] [--out benchmarks/results/http-surface.json]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: '.' },
    out: { type: 'string', default: 'benchmarks/results/http-surface.json' },
    repeat: { type: 'string', default: '3' },
  },
});
const root = resolve(values.root!);
const MiB = 1024 * 1024;

const freePort = () =>
  new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });

function memoryOf(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { peak: kb('VmHWM'), rss: kb('VmRSS') };
}

function put(url: string, bytes: number): Promise<{ status: number | null; error: string | null; sentMiB: number }> {
  return new Promise((done) => {
    let sent = 0;
    let finished = false;
    const finish = (r: { status: number | null; error: string | null }) => {
      if (finished) return;
      finished = true;
      done({ ...r, sentMiB: sent / MiB });
    };
    const req = request(url, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) } }, (res) => {
      finish({ status: res.statusCode ?? null, error: null });
      res.resume();
    });
    req.on('error', (e) => finish({ status: null, error: e.message }));
    const chunk = Buffer.alloc(MiB);
    const pump = () => {
      while (sent < bytes && !finished) {
        const n = Math.min(MiB, bytes - sent);
        sent += n;
        if (!req.write(n === MiB ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      if (sent >= bytes) req.end();
    };
    pump();
  });
}

async function memoryRun() {
  const dir = mkdtempSync(join(tmpdir(), 'fedmark-bench-http-'));
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, 'bin', 'fedmark.js'), 'coordinator', '--data-dir', dir, '--port', String(port), '--log-level', 'warn'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    await new Promise<void>((res, rej) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('listening on') && res());
      child.once('exit', (c) => rej(new Error(`coordinator exited ${c}`)));
    });
    const url = `http://127.0.0.1:${port}/v1/jobs/any-job/rounds/1/submission`;
    for (let i = 0; i < 5; i++) await put(url, 4096);
    const before = memoryOf(child.pid!);
    const answer = await put(url, 60 * MiB);
    await new Promise((r) => setTimeout(r, 200));
    const after = memoryOf(child.pid!);
    return { peakGrowthMiB: (after.peak - before.peak) / MiB, rssBeforeMiB: before.rss / MiB, rssAfterMiB: after.rss / MiB, answer };
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function rateLimitRun() {
  const { buildCoordinator } = (await import(pathToFileURL(join(root, 'coordinator', 'server.ts')).href)) as typeof import('../../coordinator/server.ts');
  const pino = (await import('pino')).default;
  const burst = async (header: () => Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-bench-rate-'));
    const { app } = await buildCoordinator({ dataDir: dir, logger: pino({ level: 'silent' }), rateLimitPerMinute: 20, ledgerSync: false });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const statuses: Record<string, number> = {};
    try {
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${url}/v1/jobs/some-job`, { headers: header() });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      }
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
    return statuses;
  };
  return {
    limitPerMinute: 20,
    requests: 40,
    freshKeyEachRequest: await burst(() => ({ 'x-fedmark-key': randomBytes(16).toString('hex') })),
    noKeyHeader: await burst(() => ({})),
  };
}

const runs = [];
for (let i = 0; i < Number(values.repeat); i++) runs.push(await memoryRun());
const rate = await rateLimitRun();
const out = {
  benchmark: 'http-surface',
  root: values.root,
  node: process.version,
  unauthenticated60MiBPut: runs,
  medianPeakGrowthMiB: runs.map((r) => r.peakGrowthMiB).sort((a, b) => a - b)[Math.floor(runs.length / 2)],
  rateLimit: rate,
};
mkdirSync(dirname(resolve(values.out!)), { recursive: true });
writeFileSync(values.out!, `${JSON.stringify(out, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
process.exit(0);
