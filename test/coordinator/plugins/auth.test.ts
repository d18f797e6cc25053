/**
 * The order in which the coordinator refuses a request (coordinator/plugins/auth.ts, rate-limit.ts):
 * authentication from the signed headers before the body is read or parsed, one answer for "no such
 * job" / "not the job's key" / "bad signature", per-address then per-key rate limits, a body limit
 * sized from the job's manifest, and the body checked against its signed hash once it arrived.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildCoordinator } from '../../../coordinator/server.ts';
import type { JobEngine } from '../../../coordinator/job-engine.ts';
import { manifestLedgerEntry } from '../../../owner/genesis.ts';
import { generateIdentity, publicIdentity, readIdentityFile, type Identity } from '../../../src/crypto/identity.ts';
import { signRequest } from '../../../src/crypto/request-signing.ts';
import { sgdWorkload } from '../../../src/federation/workloads/sgd/index.ts';
import { makeJob, telcoPartners } from '../../helpers/partners.ts';

const owner = generateIdentity('owner');
const partners = [generateIdentity('bank-a'), generateIdentity('telco-b')];
const stranger = generateIdentity('stranger');
const JOB = 'auth-order-job';

let dir: string;
let app: FastifyInstance;
let engine: JobEngine;

async function coordinator(o: { perMinute?: number; perKeyPerMinute?: number } = {}) {
  const d = mkdtempSync(join(tmpdir(), 'fedmark-auth-order-'));
  const built = await buildCoordinator({
    dataDir: d,
    logger: pino({ level: 'silent' }),
    ledgerSync: false,
    rateLimitPerMinute: o.perMinute,
    rateLimitPerKeyPerMinute: o.perKeyPerMinute,
  });
  return { ...built, dir: d };
}

function signed(identity: Identity, method: string, url: string, body: Uint8Array, round = 0, jobId = JOB) {
  return signRequest({ method, path: url, body, jobId, round, identity });
}

beforeAll(async () => {
  const built = await coordinator();
  ({ app, engine, dir } = built);
  const { schema } = await telcoPartners({ partners: 2, rowsPerPartner: 50 });
  const { manifest, signed: sm } = makeJob({ jobId: JOB, schema, owner, partners, rounds: 2 });
  const coordinatorIdentity = (await app.inject({ method: 'GET', url: '/v1/identity' })).json();
  await engine.createJob(sm, manifestLedgerEntry(manifest, owner, coordinatorIdentity, sgdWorkload.privacy(manifest), null));
}, 60_000);
afterAll(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the coordinator refuses before it reads', () => {
  it('answers a bad signature before parsing the body: a body that is not JSON still gets AUTH_REJECTED, not BAD_JSON', async () => {
    const url = `/v1/jobs/${JOB}/acceptance`;
    const headers = signed(partners[0], 'POST', url, new TextEncoder().encode('{}'));
    headers['x-fedmark-signature'] = signed(partners[0], 'POST', '/elsewhere', new Uint8Array(0))['x-fedmark-signature'];
    const res = await app.inject({ method: 'POST', url, headers: { ...headers, 'content-type': 'application/json' }, payload: '{"accepted":' });
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('AUTH_REJECTED');
  });

  it('gives an unknown job, a stranger on a known job and a bad signature on a known job the same answer (job id aside)', async () => {
    const answer = async (id: Identity, jobId: string, tamper: boolean) => {
      const url = `/v1/jobs/${jobId}`;
      const h = signed(id, 'GET', url, new Uint8Array(0), 0, jobId);
      if (tamper) h['x-fedmark-signature'] = signed(id, 'GET', '/other', new Uint8Array(0), 0, jobId)['x-fedmark-signature'];
      const res = await app.inject({ method: 'GET', url, headers: h });
      return `${res.statusCode} ${res.body.split(jobId).join('<job>')}`;
    };
    const unknown = await answer(partners[0], 'no-such-job', false);
    expect(unknown).toMatch(/^401 .*AUTH_REJECTED/);
    expect(await answer(stranger, JOB, false)).toBe(unknown);
    expect(await answer(partners[0], JOB, true)).toBe(unknown);
    expect(await answer(stranger, 'no-such-job', true)).toBe(unknown);
  });

  it('refuses a body above the limit the round plan allows, from the declared length, once authenticated', async () => {
    const limit = await engine.maxSubmissionBytes(JOB, 1);
    expect(limit).toBeGreaterThan(64 * 1024);
    const url = `/v1/jobs/${JOB}/rounds/1/submission`;
    const big = new Uint8Array(limit + 1);
    const res = await app.inject({
      method: 'PUT',
      url,
      headers: { ...signed(partners[0], 'PUT', url, big, 1), 'content-type': 'application/octet-stream' },
      payload: Buffer.from(big),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().code).toBe('BODY_TOO_LARGE');
    // A small JSON route reads at most 64 KiB.
    const hashUrl = `/v1/jobs/${JOB}/rounds/1/model-hash`;
    const padded = Buffer.alloc(70_000, 0x20);
    const res2 = await app.inject({
      method: 'POST',
      url: hashUrl,
      headers: { ...signed(partners[0], 'POST', hashUrl, padded, 1), 'content-type': 'application/json' },
      payload: padded,
    });
    expect(res2.statusCode).toBe(413);
  });

  it('checks the body against its signed hash once it has arrived', async () => {
    const url = `/v1/jobs/${JOB}/rounds/1/model-hash`;
    const body = new TextEncoder().encode(JSON.stringify({ hash: 'a'.repeat(64) }));
    const other = new TextEncoder().encode(JSON.stringify({ hash: 'b'.repeat(64) }));
    const res = await app.inject({
      method: 'POST',
      url,
      headers: { ...signed(partners[0], 'POST', url, body, 1), 'content-type': 'application/json' },
      payload: Buffer.from(other),
    });
    expect(res.statusCode).toBe(401);
    expect(res.json().code).toBe('AUTH_BAD_SIGNATURE');
  });

  it('registers a job only under the key the manifest names as owner', async () => {
    const { schema } = await telcoPartners({ partners: 2, rowsPerPartner: 50 });
    const { manifest, signed: sm } = makeJob({ jobId: 'auth-order-other', schema, owner, partners, rounds: 1 });
    const coordinatorIdentity = (await app.inject({ method: 'GET', url: '/v1/identity' })).json();
    const body = new TextEncoder().encode(
      JSON.stringify({ ...sm, ledgerGenesis: manifestLedgerEntry(manifest, owner, coordinatorIdentity, sgdWorkload.privacy(manifest), null) }),
    );
    const res = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      headers: { ...signed(stranger, 'POST', '/v1/jobs', body, 0, manifest.jobId), 'content-type': 'application/json' },
      payload: Buffer.from(body),
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe('OWNER_ONLY');
  });
});

describe('rate limits', () => {
  it('count per client address before authentication, whatever x-fedmark-key says', async () => {
    const c = await coordinator({ perMinute: 10 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 15; i++) {
        const res = await c.app.inject({ method: 'GET', url: '/v1/jobs/any', headers: { 'x-fedmark-key': `${i}`.padStart(32, '0') } });
        statuses.push(res.statusCode);
      }
      expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
      expect(statuses.slice(10).every((s) => s === 429)).toBe(true);
    } finally {
      await c.app.close();
      rmSync(c.dir, { recursive: true, force: true });
    }
  });

  it('count per authenticated key after authentication: one busy key does not lock out another', async () => {
    const c = await coordinator({ perKeyPerMinute: 5 });
    try {
      const { schema } = await telcoPartners({ partners: 2, rowsPerPartner: 50 });
      const { manifest, signed: sm } = makeJob({ jobId: JOB, schema, owner, partners, rounds: 1 });
      await c.engine.createJob(
        sm,
        manifestLedgerEntry(manifest, owner, publicIdentity(readIdentityFile(join(c.dir, 'coordinator.key.json'))), sgdWorkload.privacy(manifest), null),
      );
      const get = async (id: Identity) =>
        (await c.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers: signed(id, 'GET', `/v1/jobs/${JOB}`, new Uint8Array(0)) })).statusCode;
      const busy: number[] = [];
      for (let i = 0; i < 8; i++) busy.push(await get(partners[0]));
      expect(busy.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(busy.slice(5)).toEqual([429, 429, 429]);
      expect(await get(partners[1])).toBe(200);
    } finally {
      await c.app.close();
      rmSync(c.dir, { recursive: true, force: true });
    }
  });
});
