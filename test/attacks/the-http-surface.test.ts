/**
 * Issue 11 item 7 — the HTTP surface refuses before it reads. The rate limit must not be keyed by a
 * header the attacker chooses; an unauthenticated upload must be refused before its body is read
 * (measured on a real coordinator process); and a stranger must not learn which job ids exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildCoordinator } from '../../coordinator/server.ts';
import { generateIdentity, type Identity } from '../../src/crypto/identity.ts';
import { signRequest } from '../../src/crypto/request-signing.ts';
import { freePort, NodeProcess } from '../chaos/helpers.ts';
import { CLI_MAIN, defineJob, registerJob, startWorld, type AttackWorld } from './harness.ts';

const MiB = 1024 * 1024;

/** A coordinator built in-process with a small rate limit, listening on loopback. */
async function coordinatorWithLimit(perMinute: number) {
  const dir = mkdtempSync(join(tmpdir(), 'fedmark-attack-rate-'));
  const { app } = await buildCoordinator({ dataDir: dir, logger: pino({ level: 'silent' }), rateLimitPerMinute: perMinute, ledgerSync: false });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: async () => (await app.close(), rmSync(dir, { recursive: true, force: true })) };
}

/** Peak and current resident memory of a process, from /proc (kB → bytes). */
function memoryOf(pid: number): { peak: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { peak: kb('VmHWM'), rss: kb('VmRSS') };
}

/** Streams `bytes` of zeros as an unauthenticated PUT; resolves with the status (or the socket error) and how much was sent first. */
function bigPut(url: string, path: string, bytes: number): Promise<{ status: number | null; error: string | null; sentBeforeAnswer: number }> {
  return new Promise((resolve) => {
    let sent = 0;
    let done = false;
    const finish = (r: { status: number | null; error: string | null }) => {
      if (done) return;
      done = true;
      resolve({ ...r, sentBeforeAnswer: sent });
    };
    const req = request(`${url}${path}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) } }, (res) => {
      finish({ status: res.statusCode ?? null, error: null });
      res.resume();
    });
    req.on('error', (err) => finish({ status: null, error: err.message }));
    const chunk = Buffer.alloc(MiB);
    const pump = () => {
      while (sent < bytes && !done) {
        const n = Math.min(MiB, bytes - sent);
        sent += n;
        if (!req.write(n === MiB ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      if (sent >= bytes) req.end();
    };
    pump();
  });
}

async function signedGet(url: string, identity: Identity, jobId: string, tamper = false): Promise<{ status: number; body: string }> {
  const path = `/v1/jobs/${jobId}`;
  const headers = signRequest({ method: 'GET', path, body: new Uint8Array(0), jobId, round: 0, identity });
  if (tamper) {
    const sig = Buffer.from(headers['x-fedmark-signature'], 'base64');
    sig[0] ^= 0xff;
    headers['x-fedmark-signature'] = sig.toString('base64');
  }
  const res = await fetch(`${url}${path}`, { headers });
  return { status: res.status, body: (await res.text()).split(jobId).join('<job>') };
}

describe('attack: the HTTP surface', () => {
  let world: AttackWorld;
  let coordinatorProc: NodeProcess | null = null;
  let dataDir: string;
  beforeAll(async () => {
    world = await startWorld({ name: 'http' });
    dataDir = join(world.dir, 'coordinator-process');
  });
  afterAll(async () => {
    coordinatorProc?.close();
    await world?.close();
  });

  it('a random x-fedmark-key per request does not bypass the rate limit', async () => {
    const attacked = await coordinatorWithLimit(20);
    const control = await coordinatorWithLimit(20);
    try {
      const burst = async (url: string, header: () => Record<string, string>) => {
        const statuses: number[] = [];
        for (let i = 0; i < 40; i++) {
          const res = await fetch(`${url}/v1/jobs/some-job`, { headers: header() });
          await res.arrayBuffer();
          statuses.push(res.status);
        }
        return statuses;
      };
      const withRandomKeys = await burst(attacked.url, () => ({ 'x-fedmark-key': randomBytes(16).toString('hex') }));
      const plain = await burst(control.url, () => ({}));
      expect(plain.filter((s) => s === 429).length, 'control: 40 requests from one address against a limit of 20/min are limited').toBeGreaterThan(0);
      expect(
        withRandomKeys.filter((s) => s === 429).length,
        `40 requests from one address, each with a fresh x-fedmark-key, against a limit of 20/min: statuses ${[...new Set(withRandomKeys)].join(', ')}, none 429`,
      ).toBeGreaterThan(0);
    } finally {
      await attacked.close();
      await control.close();
    }
  }, 60_000);

  it.skipIf(process.platform !== 'linux')(
    'an unauthenticated 60 MiB PUT is refused before its body is read (coordinator process memory)',
    async () => {
      const port = await freePort();
      coordinatorProc = new NodeProcess(
        'coordinator',
        CLI_MAIN,
        ['coordinator', '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn'],
        join(world.dir, 'logs', 'coordinator.log'),
      );
      const listening = coordinatorProc.waitForLine((l) => l.includes('listening on'), 30_000, 'listening line');
      coordinatorProc.start();
      await listening;
      const url = `http://127.0.0.1:${port}`;
      // Warm up the request path (parsers, routes, error handler) so the baseline includes it.
      for (let i = 0; i < 5; i++) await bigPut(url, '/v1/jobs/warm-up-job/rounds/1/submission', 4096);
      const before = memoryOf(coordinatorProc.pid!);
      const r = await bigPut(url, '/v1/jobs/any-job/rounds/1/submission', 60 * MiB);
      await new Promise((res) => setTimeout(res, 200));
      const after = memoryOf(coordinatorProc.pid!);
      const grew = (after.peak - before.peak) / MiB;
      expect(r.status === null || (r.status >= 400 && r.status < 500), `answer: ${JSON.stringify(r)}`).toBe(true);
      expect(
        grew,
        `an unauthenticated 60 MiB PUT raised the coordinator's peak memory by ${grew.toFixed(1)} MiB (RSS ${(before.rss / MiB).toFixed(0)} → ${(after.rss / MiB).toFixed(0)} MiB); answer ${r.status ?? r.error} after ${(r.sentBeforeAnswer / MiB).toFixed(0)} MiB sent`,
      ).toBeLessThan(16);
      coordinatorProc.close();
    },
    240_000,
  );

  it('an unknown job id and a bad signature on a known job get indistinguishable answers (no job-existence oracle)', async () => {
    const { manifest, signed } = defineJob(world, { jobId: 'http-known-job' });
    await registerJob(world.coordinator.url, signed, world.owner);
    const url = world.coordinator.url;
    const member = world.partners[0].identity;
    const stranger = generateIdentity('stranger');
    const unknownJob = 'http-unknown-job';
    const pairs = {
      'partner key, bad signature': [await signedGet(url, member, unknownJob, true), await signedGet(url, member, manifest.jobId, true)],
      'stranger key, valid signature': [await signedGet(url, stranger, unknownJob), await signedGet(url, stranger, manifest.jobId)],
    };
    for (const [what, [unknown, known]] of Object.entries(pairs)) {
      expect(`${known.status} ${known.body}`, `${what}: unknown job → ${unknown.status} ${unknown.body}; known job → ${known.status} ${known.body}`).toBe(
        `${unknown.status} ${unknown.body}`,
      );
    }
  }, 60_000);
});
