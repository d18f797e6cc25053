import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity } from '../../../src/crypto/identity.ts';
import { FedmarkError } from '../../../src/errors.ts';
import { CoordinatorClient, CoordinatorError } from '../../../src/federation/protocol/client.ts';
import { DomainError, ERROR_STATUS, hasCode, statusOf } from '../../../src/federation/protocol/errors.ts';
import { pathOf, routes } from '../../../src/federation/protocol/routes.ts';
import { jobStatusSchema } from '../../../src/federation/protocol/schemas.ts';
import { startTestCoordinator, type TestCoordinator } from '../../helpers/coordinator.ts';

const identity = generateIdentity('protocol-test');
const status = {
  jobId: 'job-1',
  state: 'running',
  reason: null,
  round: 1,
  attempt: 0,
  totalRounds: 3,
  roundState: 'open',
  roundKind: 'train',
  stage: 'upload',
  selected: ['a'.repeat(32)],
  deadlineAt: 1,
  baseModelHash: 'b'.repeat(64),
  submitted: [],
  closedRounds: [],
  partners: [{ keyId: 'a'.repeat(32), name: 'bank', status: 'accepted' }],
  keysReady: true,
};

/** A client whose transport answers every request with `body` and `status`, recording what was asked. */
function clientAnswering(body: unknown, statusCode = 200) {
  const asked: { url: string; method: string; headers: Headers }[] = [];
  const fetchImpl = (async (url: string, init: RequestInit = {}) => {
    asked.push({ url, method: init.method ?? 'GET', headers: new Headers(init.headers) });
    return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status: statusCode });
  }) as typeof fetch;
  return { client: new CoordinatorClient('http://127.0.0.1:1', identity, { fetchImpl }), asked };
}

describe('route table', () => {
  it('builds every path from its parameters, URI-encoding each, and refuses a missing one', () => {
    expect(pathOf(routes.status, { jobId: 'churn-q4' })).toBe('/v1/jobs/churn-q4');
    expect(pathOf(routes.submit, { jobId: 'j.1', round: 3 })).toBe('/v1/jobs/j.1/rounds/3/submission');
    expect(pathOf(routes.putSealedKey, { jobId: 'j', keyId: 'k/..' })).toBe('/v1/jobs/j/keys/k%2F..');
    expect(() => pathOf(routes.aggregate, { jobId: 'j' })).toThrow(/parameter "round" is missing/);
    // Every route is unique by method and URL, and every signed route names the job in its path or body.
    const keys = Object.values(routes).map((r) => `${r.method} ${r.url}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const r of Object.values(routes)) if (r.auth === 'job') expect(r.url).toContain(':jobId');
  });
});

describe('error table', () => {
  it('knows the status of every code the request verifier refuses with, as the verifier states it', () => {
    const source = readFileSync(fileURLToPath(new URL('../../../src/crypto/request-signing.ts', import.meta.url)), 'utf8');
    const found = [...source.matchAll(/reject\((\d{3}), '([A-Z_]+)'/g)].map((m) => [m[2], Number(m[1])] as const);
    expect(found.length).toBeGreaterThan(4);
    for (const [code, s] of found) expect(ERROR_STATUS[code as keyof typeof ERROR_STATUS], code).toBe(s);
  });

  it('maps domain codes to their status and any other FedmarkError code to 400', () => {
    expect(statusOf('UNKNOWN_JOB')).toBe(404);
    expect(statusOf('ROUND_CLOSED')).toBe(409);
    expect(statusOf('NOT_SELECTED')).toBe(403);
    expect(statusOf('SOME_LIBRARY_CODE')).toBe(400);
    const e = new DomainError('JOB_CLOSED', 'closed');
    expect(e).toBeInstanceOf(FedmarkError);
    expect(hasCode(e, 'ROUND_CLOSED', 'JOB_CLOSED')).toBe(true);
    expect(hasCode(e, 'ROUND_CLOSED')).toBe(false);
    expect(hasCode(new Error('JOB_CLOSED'), 'JOB_CLOSED')).toBe(false);
  });
});

describe('typed client', () => {
  it('parses the status with its schema and signs the request for the job', async () => {
    const { client, asked } = clientAnswering(status);
    await expect(client.status('job-1')).resolves.toEqual(jobStatusSchema.parse(status));
    expect(asked[0].url).toBe('http://127.0.0.1:1/v1/jobs/job-1');
    expect(asked[0].headers.get('x-fedmark-job')).toBe('job-1');
  });

  it('refuses an answer that does not match the route schema, naming the field', async () => {
    const err = await clientAnswering({ ...status, state: 'trust-me' })
      .client.status('job-1')
      .catch((e: unknown) => e);
    expect(hasCode(err, 'RESPONSE_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/GET \/v1\/jobs\/job-1 with an invalid body: state/);
    expect(
      hasCode(
        await clientAnswering('not json')
          .client.ledgerHead('job-1')
          .catch((e: unknown) => e),
        'RESPONSE_INVALID',
      ),
    ).toBe(true);
  });

  it('turns a refusal into a CoordinatorError carrying the code and status', async () => {
    const err = await clientAnswering({ statusCode: 409, code: 'ROUND_CLOSED', error: 'round 1 attempt 0 is closed' }, 409)
      .client.submit('job-1', 1, new Uint8Array(4))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CoordinatorError);
    expect((err as CoordinatorError).status).toBe(409);
    expect(hasCode(err, 'ROUND_CLOSED')).toBe(true);
    expect((err as Error).message).toMatch(/PUT \/v1\/jobs\/job-1\/rounds\/1\/submission \(409 ROUND_CLOSED\)/);
  });

  it('sends the aggregate part as a query parameter and returns the bytes as they are', async () => {
    const { client, asked } = clientAnswering('\u0001\u0002');
    expect(Array.from(await client.aggregate('job-1', 2, 'evaluation'))).toEqual([1, 2]);
    expect(asked[0].url).toBe('http://127.0.0.1:1/v1/jobs/job-1/rounds/2/aggregate?part=evaluation');
    expect(asked[0].headers.get('x-fedmark-round')).toBe('2');
  });
});

describe('the coordinator serves the route table', () => {
  let coord: TestCoordinator;
  beforeAll(async () => {
    coord = await startTestCoordinator();
  });
  afterAll(async () => {
    await coord?.close();
  });

  it('documents every route of the table in its OpenAPI document', async () => {
    const res = await coord.app.inject({ method: 'GET', url: '/docs/json' });
    const doc = res.json() as { paths: Record<string, Record<string, unknown>> };
    for (const r of Object.values(routes)) {
      const path = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
      expect(doc.paths[path]?.[r.method.toLowerCase()], `${r.method} ${r.url}`).toBeDefined();
    }
  });

  it('answers the unsigned routes through the typed client', async () => {
    const client = new CoordinatorClient(coord.url, identity);
    await expect(client.call(routes.health, {})).resolves.toMatchObject({ ok: true });
    expect((await client.coordinatorIdentity()).name).toBe('coordinator');
  });
});
