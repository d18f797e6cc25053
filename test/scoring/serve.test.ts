import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync, readFileSync, readdirSync, mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { PartnerLedger } from '../../partner/ledger.ts';
import { signRequest } from '../../src/crypto/request-signing.ts';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { subjectStatement } from '../../src/privacy/ledger/subject-rights.ts';
import { buildScoringService, type ScoringApp } from '../../src/scoring/serve/app.ts';
import { createServeAuth, loadTokenFile, SERVE_SCOPE } from '../../src/scoring/serve/auth.ts';
import { pendingScorings, ScoringSpool } from '../../src/scoring/serve/spool.ts';
import { loadScoringModel, type LoadedScoringModel } from '../../src/scoring/model.ts';
import { scoreFile } from '../../src/scoring/batch.ts';
import { readCsvRecords } from '../../src/data/csv.ts';
import { deterministicIdentity } from '../helpers/identities.ts';
import { sealPending, spoolDir } from '../../cli/serve-command.ts';
import { fixtureSchema, makeCustomers, partnerFiles, PURPOSE, saveFixtureModel, tempDir, toCsv, type Customer } from './helpers.ts';
import pino from 'pino';

const schema = await fixtureSchema();
const TOKEN = 'a-very-long-local-test-token-0123456789';
const client = deterministicIdentity('crm-app');
const stranger = deterministicIdentity('stranger');

let dir: string;
let model: LoadedScoringModel;
let app: ScoringApp;
let ledger: PartnerLedger;
let spool: ScoringSpool;
let p: ReturnType<typeof partnerFiles>;
const withdrawn = new Set<string>();

beforeAll(async () => {
  dir = tempDir();
  await saveFixtureModel(join(dir, 'model'), schema, { kind: 'mlp', hidden: [8], activation: 'relu' });
  model = await loadScoringModel(join(dir, 'model'), schema);
  p = partnerFiles(dir);
  ledger = PartnerLedger.open(p.ledger, p.identity, p.stateDir);
  spool = ScoringSpool.open(spoolDir(p.stateDir), {
    windowId: 'serve-test-w00001',
    modelHash: model.modelHash,
    modelKind: 'mlp',
    modelJobId: 'churn-2026q1',
    schemaHash: 'c'.repeat(64),
    purpose: PURPOSE,
    operator: 'test',
  });
  app = await buildScoringService({
    model,
    schema,
    purpose: PURPOSE,
    auth: createServeAuth({ token: TOKEN, clients: [publicIdentity(client)] }),
    record: (r) => spool.append(r),
    hashId: (id) => ledger.idHash(id),
    withdrawn: () => withdrawn,
    maxBatch: 20,
  });
});
afterAll(async () => {
  await app?.close();
  ledger?.close();
});

const bearer = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const post = (body: unknown, headers: Record<string, string> = bearer) =>
  app.inject({ method: 'POST', url: '/v1/score', headers, payload: typeof body === 'string' ? body : JSON.stringify(body) });
const customer = (c: Customer): Record<string, string> => {
  const { churned: _label, ...rest } = c;
  return rest;
};

describe('fedmark serve', () => {
  it('scores one customer exactly like the batch command (probability and reasons)', async () => {
    const customers = makeCustomers(30, 31).map((c) => ({ ...c, consent: 'yes' }));
    writeFileSync(join(dir, 'batch.csv'), toCsv(customers));
    await scoreFile({ dataPath: join(dir, 'batch.csv'), outPath: join(dir, 'batch-out.csv'), schema, model, reasons: 3 });
    const batch: Record<string, string>[] = [];
    let head: string[] | null = null;
    for await (const r of readCsvRecords(join(dir, 'batch-out.csv'))) {
      if (!head) head = r.fields;
      else batch.push(Object.fromEntries(head.map((h, i) => [h, r.fields[i]])));
    }
    const res = await post({ customers: customers.slice(0, 10).map(customer) });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.modelHash).toBe(model.modelHash);
    body.results.forEach((r: { status: string; probability: number; reasons: { text: string; contribution: number }[] }, i: number) => {
      expect(r.status).toBe('scored');
      expect(Math.abs(r.probability - Number(batch[i].probability))).toBeLessThanOrEqual(5e-7);
      expect(r.reasons.map((x) => x.text)).toEqual([batch[i].reason_1, batch[i].reason_2, batch[i].reason_3].filter(Boolean));
    });
  });

  it('does not score customers without consent or on the withdrawn list', async () => {
    const [a, b, c]: Customer[] = makeCustomers(3, 32).map((x) => ({ ...x, consent: 'yes' }));
    withdrawn.add(b.customer);
    const res = await post({ customers: [customer(a), customer(b), customer({ ...c, consent: 'no' })] });
    withdrawn.clear();
    expect(res.statusCode).toBe(200);
    expect(res.json().results.map((r: { status: string; reason?: string }) => r.reason ?? r.status)).toEqual(['scored', 'withdrawn', 'no-consent']);
  });

  it('accepts a request signed by a registered client, and refuses replays, strangers and other scopes', async () => {
    const body = JSON.stringify({ customers: [customer({ ...makeCustomers(1, 33)[0], consent: 'yes' })] });
    const sign = (id = client, jobId = SERVE_SCOPE) => ({
      'content-type': 'application/json',
      ...signRequest({ method: 'POST', path: '/v1/score', body: Buffer.from(body), jobId, round: 0, identity: id }),
    });
    const h = sign();
    expect((await post(body, h)).statusCode).toBe(200);
    const replay = await post(body, h);
    expect(replay.statusCode).toBe(409);
    expect(replay.json().code).toBe('AUTH_REPLAY');
    expect((await post(body, sign(stranger))).json().code).toBe('AUTH_UNKNOWN_KEY');
    expect((await post(body, sign(client, 'some-job'))).json().code).toBe('AUTH_SCOPE');
    const tampered = { ...sign() };
    expect((await post(body.replace('"yes"', '"no" '), tampered)).json().code).toBe('AUTH_BAD_SIGNATURE');
  });

  it('answers hostile and malformed requests with a clear 4xx, never a 5xx', async () => {
    const good = customer({ ...makeCustomers(1, 34)[0], consent: 'yes' });
    const cases: [string, unknown, Record<string, string> | undefined, number, string | RegExp][] = [
      ['no credentials', { customers: [good] }, { 'content-type': 'application/json' }, 401, 'AUTH_MISSING'],
      ['wrong token', { customers: [good] }, { ...bearer, authorization: 'Bearer nope' }, 401, 'AUTH_BAD_TOKEN'],
      ['not JSON', '{"customers": [', undefined, 400, 'BAD_JSON'],
      ['no customers', { customers: [] }, undefined, 400, 'INVALID_REQUEST'],
      ['too many customers', { customers: Array(21).fill(good) }, undefined, 400, 'INVALID_REQUEST'],
      ['extra top-level field', { customers: [good], admin: true }, undefined, 400, 'INVALID_REQUEST'],
      ['unknown column', { customers: [{ ...good, shoe_size: '44' }] }, undefined, 400, /unknown column\(s\) "shoe_size"/],
      ['prototype key', { customers: [JSON.parse(`{"__proto__": {"x": 1}, "customer": "Z"}`)] }, undefined, 400, /INVALID_REQUEST|SCORING_/],
      ['missing model input', { customers: [{ ...good, tenure: undefined }] }, undefined, 400, /missing column\(s\) "tenure"/],
      ['missing consent column', { customers: [{ ...good, consent: null }] }, undefined, 400, /missing column\(s\) "consent"/],
      ['unknown category', { customers: [{ ...good, contract: 'weekly' }] }, undefined, 422, /column "contract": unknown category/],
      ['strict vocabulary', { customers: [{ ...good, plan: 'gold' }] }, undefined, 422, /column "plan": unknown category/],
      ['out of range', { customers: [{ ...good, tenure: 1e9 }] }, undefined, 422, /column "tenure": outside the declared range/],
      ['not a number', { customers: [{ ...good, monthly: '12abc' }] }, undefined, 422, /column "monthly": not a number/],
      ['blank id', { customers: [{ ...good, customer: '' }] }, undefined, 422, /blank id/],
      ['object as a cell', { customers: [{ ...good, tenure: { $gt: 1 } }] }, undefined, 400, 'INVALID_REQUEST'],
    ];
    for (const [what, body, headers, status, code] of cases) {
      const res = await post(body, headers);
      expect(res.statusCode, `${what}: ${res.body}`).toBe(status);
      const j = res.json();
      if (typeof code === 'string') expect(j.code, what).toBe(code);
      else expect(`${j.code} ${j.error}`, what).toMatch(code);
    }
    const big = await post({ customers: [{ ...good, customer: 'x'.repeat(2 * 1024 * 1024) }] });
    expect(big.statusCode).toBe(413);
    expect((await app.inject({ method: 'GET', url: '/v1/model' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'DELETE', url: '/v1/score', headers: bearer })).statusCode).toBe(404);
  });

  it('never answers 5xx to random request bodies (property test)', async () => {
    const cellArb = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom('yes', 'no', 'monthly', 'basic', '1e309', '-0', ' 12 '),
    );
    const columns = [...schema.columns.map((c) => c.name), 'bogus', '__proto__', 'constructor'];
    const recordArb = fc.dictionary(fc.constantFrom(...columns), cellArb, { maxKeys: 16 });
    await fc.assert(
      fc.asyncProperty(fc.array(recordArb, { minLength: 0, maxLength: 4 }), fc.option(fc.integer({ min: -3, max: 30 })), async (customers, reasons) => {
        const res = await post(reasons === null ? { customers } : { customers, reasons });
        expect(res.statusCode).toBeLessThan(500);
      }),
      { numRuns: 150, seed: 7 },
    );
  });

  it('documents itself: OpenAPI at /docs', async () => {
    const res = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/score', '/v1/model']));
    expect(doc.paths['/v1/score'].post.requestBody.content['application/json'].schema.properties.customers).toBeDefined();
    const info = await app.inject({ method: 'GET', url: '/v1/model', headers: bearer });
    expect(info.json()).toMatchObject({
      kind: 'mlp',
      modelHash: model.modelHash,
      purpose: PURPOSE,
      attribution: { method: 'integrated-gradients-exact', exact: true },
    });
  });

  it('records who it scored: pending in the spool, then one sealed ledger entry; the subject statement is truthful throughout', async () => {
    const c = { ...makeCustomers(1, 35)[0], customer: 'C-SERVE-1', consent: 'yes' };
    expect((await post({ customers: [customer(c)] })).statusCode).toBe(200);
    const hash = ledger.idHash('C-SERVE-1');
    // Before sealing: the ledger does not know yet, the spool does (the response was sent after its fsync).
    expect(subjectStatement(p.ledger, ledger.sidecarDirectory, 'C-SERVE-1', readFileSync(join(p.stateDir, 'subject-salt'))).scorings).toEqual([]);
    expect((await pendingScorings(spoolDir(p.stateDir), hash)).map((x) => x.windowId)).toEqual(['serve-test-w00001']);
    // Seal the window (what the service does every --seal-seconds and on shutdown).
    await spool.rotate({
      windowId: 'serve-test-w00002',
      modelHash: model.modelHash,
      modelKind: 'mlp',
      modelJobId: null,
      schemaHash: 'c'.repeat(64),
      purpose: PURPOSE,
      operator: 'test',
    });
    await sealPending(spoolDir(p.stateDir), ledger, spool.currentFile, pino({ level: 'silent' }));
    expect(await pendingScorings(spoolDir(p.stateDir), hash)).toEqual([]);
    const st = subjectStatement(p.ledger, ledger.sidecarDirectory, 'C-SERVE-1', readFileSync(join(p.stateDir, 'subject-salt')));
    expect(st.problems).toEqual([]);
    expect(st.scorings).toHaveLength(1);
    expect(st.scorings[0]).toMatchObject({ mode: 'serve', runId: 'serve-test-w00001', modelHash: model.modelHash, purpose: PURPOSE, sidecarVerified: true });
    const entry = readLedger(p.ledger).entries.find((e) => e.type === 'model.scoring')!;
    const pl = entry.payload as unknown as Record<string, number | string[]>;
    // Every request so far in this file: the counts add up (rejected requests included).
    expect(pl.rowsRead).toBe(
      (pl.rowsScored as number) + (pl.rowsExcludedNoConsent as number) + (pl.rowsExcludedWithdrawn as number) + (pl.rowsRejected as number),
    );
    expect(pl.rowsExcludedWithdrawn).toBe(1);
    expect(pl.requesters).toEqual(expect.arrayContaining(['token', publicIdentity(client).keyId]));
    expect(pl.rowsRejected as number).toBeGreaterThan(0);
  });

  it('a token file others can read is refused; a missing one is created 0600', () => {
    const f = join(tempDir(), 'token');
    const t = loadTokenFile(f, { create: true });
    expect(t.length).toBeGreaterThanOrEqual(40);
    chmodSync(f, 0o644);
    expect(() => loadTokenFile(f)).toThrow(/readable by group or others/);
    expect(() => createServeAuth({})).toThrow(/never answers unauthenticated/);
  });
});

describe('spool crash recovery', () => {
  it('a window left behind by a crash is sealed at the next start; a torn last line is not counted', async () => {
    const d2 = tempDir();
    const p2 = partnerFiles(d2, 'telco-crash');
    const l2 = PartnerLedger.open(p2.ledger, p2.identity, p2.stateDir);
    const sd = spoolDir(p2.stateDir);
    const s2 = ScoringSpool.open(sd, {
      windowId: 'serve-crash-w00001',
      modelHash: 'd'.repeat(64),
      modelKind: 'logistic',
      modelJobId: null,
      schemaHash: 'e'.repeat(64),
      purpose: PURPOSE,
      operator: 'test',
    });
    await s2.append({
      t: new Date().toISOString(),
      by: 'token',
      scored: [l2.idHash('A'), l2.idHash('B')],
      noConsent: 1,
      withdrawn: 0,
      rejected: 0,
      out: 'f'.repeat(64),
    });
    await s2.close();
    writeFileSync(join(sd, 'serve-crash-w00001.jsonl'), '{"t":"2026', { flag: 'a' }); // torn write of an unanswered request
    mkdirSync(sd, { recursive: true });
    expect(await sealPending(sd, l2, undefined, pino({ level: 'silent' }))).toBe(1);
    expect(readdirSync(sd)).toEqual([]);
    const e = readLedger(p2.ledger).entries.find((x) => x.type === 'model.scoring')!;
    expect(e.payload).toMatchObject({ runId: 'serve-crash-w00001', rowsScored: 2, rowsExcludedNoConsent: 1, rowsRead: 3, requests: 1 });
    l2.close();
  });
});
