import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildCoordinator, REDACT_PATHS } from '../../coordinator/server.ts';
import type { JobEngine } from '../../coordinator/job-engine.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { publicIdentity, type Identity } from '../../src/crypto/identity.ts';
import { signRequest } from '../../src/crypto/request-signing.ts';
import { makeIdentities, makeJob, runFederation, telcoPartners } from '../helpers/partners.ts';

/**
 * Secrets never reach the coordinator's log. A real job (owner + 3 partners, CKKS) and a handful of
 * hostile requests run against a coordinator logging at `trace` into memory; then the log is searched
 * for every request signature the server received, the sealed job keys, the CKKS secret key and every
 * identity's secret keys — whole, and as any 16-byte fragment in base64, hex or a JSON byte array.
 */

const FRAGMENT = 16;

let dir: string;
let app: FastifyInstance;
let engine: JobEngine;
let url: string;
const logLines: string[] = [];
const signatures = new Set<string>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedmark-redaction-'));
  const logger = pino({ level: 'trace', redact: REDACT_PATHS }, { write: (line: string) => void logLines.push(line) });
  const built = await buildCoordinator({ dataDir: join(dir, 'coordinator'), logger, tickMs: 50, requestLogging: 'full' });
  app = built.app;
  engine = built.engine;
  // What the server actually received, not what we think the clients sent.
  app.addHook('onRequest', async (req) => {
    const sig = req.headers['x-fedmark-signature'];
    if (typeof sig === 'string' && sig.length > 0) signatures.add(sig);
  });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Every 16-byte window of every secret, as hex: the needles a decoded log fragment is checked against. */
function windows(secrets: Uint8Array[]): Set<string> {
  const out = new Set<string>();
  for (const s of secrets) for (let i = 0; i + FRAGMENT <= s.length; i++) out.add(Buffer.from(s.subarray(i, i + FRAGMENT)).toString('hex'));
  return out;
}

/**
 * Byte strings the log could be carrying in any common encoding: runs of base64 (standard or URL
 * alphabet, decoded at all four alignments), runs of hex, and JSON arrays of bytes (how a Buffer
 * serialises).
 */
function encodedFragments(text: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(/[A-Za-z0-9+/_-]{22,}={0,2}/g)) {
    const run = m[0].replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
    for (let shift = 0; shift < 4; shift++) {
      const part = run.slice(shift);
      out.push(new Uint8Array(Buffer.from(part.slice(0, part.length - (part.length % 4)), 'base64')));
    }
  }
  for (const m of text.matchAll(/[0-9a-fA-F]{32,}/g)) {
    for (const shift of [0, 1]) out.push(new Uint8Array(Buffer.from(m[0].slice(shift, m[0].length - ((m[0].length - shift) % 2)), 'hex')));
  }
  for (const m of text.matchAll(/\[(\d{1,3}(?:,\d{1,3}){15,})\]/g)) out.push(Uint8Array.from(m[1].split(',').map(Number)));
  return out;
}

function leakedFragments(text: string, secrets: Uint8Array[]): string[] {
  const needles = windows(secrets);
  const hits: string[] = [];
  for (const frag of encodedFragments(text)) {
    for (let i = 0; i + FRAGMENT <= frag.length; i++) {
      const hex = Buffer.from(frag.subarray(i, i + FRAGMENT)).toString('hex');
      if (needles.has(hex)) hits.push(hex);
    }
  }
  return hits;
}

describe('the coordinator log carries no secrets', () => {
  let owner: Identity;
  let ids: Identity[];
  let ckksSecretKey: Uint8Array | null = null;
  const jobId = 'redaction-job';

  it('runs a real job and a few hostile requests while logging at trace level', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 300 });
    [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b', 'retail-c']);
    const { signed } = makeJob({ jobId, schema, owner, partners: ids, rounds: 1 });
    const result = await runFederation({ url, owner, identities: ids, signed, parts, schemaHash, stateDir: join(dir, 'nodes'), timeoutMs: 40_000 });
    expect(result.owner.state).toBe('completed');
    ckksSecretKey = result.owner.secretKey;
    expect(ckksSecretKey?.length).toBeGreaterThan(1000);

    // Error paths log the error (4xx at info level): feed them signed requests that fail late.
    const partner = new CoordinatorClient(url, ids[0]);
    const path = `/v1/jobs/${jobId}/acceptance`;
    const body = new TextEncoder().encode(JSON.stringify({ accepted: true }));
    const headers = { ...signRequest({ method: 'POST', path, body, jobId, round: 0, identity: ids[0] }), 'content-type': 'application/json' };
    const first = await fetch(url + path, { method: 'POST', headers, body });
    expect(first.status).toBe(409); // the job is over
    const replay = await fetch(url + path, { method: 'POST', headers, body });
    expect(replay.status).toBe(409);
    expect(((await replay.json()) as { code: string }).code).toBe('AUTH_REPLAY');
    const forged = await fetch(url + path, {
      method: 'POST',
      headers: {
        ...headers,
        'x-fedmark-signature': signRequest({ method: 'POST', path: '/elsewhere', body, jobId, round: 0, identity: ids[0] })['x-fedmark-signature'],
      },
      body,
    });
    expect(forged.status).toBe(401);
    const badBody = new TextEncoder().encode('{"accepted":');
    const badJson = await fetch(url + path, {
      method: 'POST',
      headers: { ...signRequest({ method: 'POST', path, body: badBody, jobId, round: 0, identity: ids[0] }), 'content-type': 'application/json' },
      body: badBody,
    });
    expect(badJson.status).toBe(400);
    const wrongType = await partner.request('PUT', `/v1/jobs/${jobId}/rounds/1/submission`, jobId, 1, { not: 'bytes' });
    expect(wrongType.status).toBeGreaterThanOrEqual(400);
    expect(wrongType.status).toBeLessThan(500);
    expect(signatures.size).toBeGreaterThan(30);
  }, 60_000);

  it('logged the flow (so the search below means something)', () => {
    const text = logLines.join('');
    expect(logLines.length).toBeGreaterThan(50);
    expect(text).toContain('"msg":"incoming request"');
    expect(text).toContain('"msg":"submission accepted"');
    // Rejections are logged (as their status), so the hostile requests above went through the logger too.
    for (const status of [401, 409, 400, 415]) expect(text).toContain(`"statusCode":${status}`);
  });

  it('holds no request signature the server received', () => {
    const text = logLines.join('');
    const found = [...signatures].filter((s) => text.includes(s) || text.includes(s.slice(0, 40)));
    expect(found, `signatures in the log: ${found.slice(0, 3).join(', ')}`).toEqual([]);
    expect(
      leakedFragments(
        text,
        [...signatures].map((s) => new Uint8Array(Buffer.from(s, 'base64'))),
      ),
    ).toEqual([]);
  });

  it('holds no sealed key, CKKS secret key or identity secret key, whole or as a 16-byte fragment', () => {
    const text = logLines.join('');
    const sealed = ids.map((id) => engine.sealedKey(jobId, publicIdentity(id).keyId));
    for (const s of sealed) expect(s.length).toBeGreaterThan(1000);
    const identitySecrets = [owner, ...ids].flatMap((id) => [id.signSecretKey, id.boxSecretKey]);
    const secrets = [...sealed, ckksSecretKey!, ...identitySecrets];
    for (const s of [...sealed, ...identitySecrets]) expect(text.includes(Buffer.from(s).toString('base64'))).toBe(false);
    expect(leakedFragments(text, secrets)).toEqual([]);
  });

  it('the fragment search finds a planted leak (control)', () => {
    const planted = Buffer.from(engine.sealedKey(jobId, publicIdentity(ids[1]).keyId).subarray(500, 540));
    for (const encoded of [
      planted.toString('base64'),
      planted.toString('hex'),
      JSON.stringify({ type: 'Buffer', data: [...planted] }),
      planted.toString('base64url').slice(3),
    ]) {
      expect(
        leakedFragments(`{"msg":"oops","blob":${JSON.stringify(encoded)}}`, [engine.sealedKey(jobId, publicIdentity(ids[1]).keyId)]).length,
        encoded.slice(0, 20),
      ).toBeGreaterThan(0);
    }
  });
});

describe('REDACT_PATHS', () => {
  function logged(obj: Record<string, unknown>): string {
    const lines: string[] = [];
    pino({ redact: REDACT_PATHS }, { write: (l: string) => void lines.push(l) }).info(obj, 'probe');
    return lines.join('');
  }

  it('redacts signature and authorization headers of a logged request', () => {
    const text = logged({ req: { method: 'PUT', headers: { 'x-fedmark-signature': 'SIGNATURE-VALUE', authorization: 'Bearer TOKEN-VALUE' } } });
    expect(text).not.toContain('SIGNATURE-VALUE');
    expect(text).not.toContain('TOKEN-VALUE');
    expect(text).toContain('[Redacted]');
  });

  it('redacts secret key fields one level down (identity.signSecretKey, state.secretKey)', () => {
    for (const obj of [{ identity: { signSecretKey: 'SECRET-1', boxSecretKey: 'SECRET-2' } }, { state: { secretKey: 'SECRET-3' } }]) {
      const text = logged(obj);
      expect(text).not.toMatch(/SECRET-\d/);
      expect(text).toContain('[Redacted]');
    }
  });

  // Fails with the REDACT_PATHS of this writing: '*.secretKey' matches exactly one level down, so a
  // log call that puts the field at the top level or two levels down prints it (reported to the lead).
  it('redacts secret key fields at the top level and two levels down', () => {
    for (const obj of [
      { secretKey: 'SECRET-4' },
      { signSecretKey: 'SECRET-5', boxSecretKey: 'SECRET-6' },
      { node: { identity: { signSecretKey: 'SECRET-7' } } },
    ]) {
      expect(logged(obj)).not.toMatch(/SECRET-\d/);
    }
  });
});
