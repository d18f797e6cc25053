import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildCoordinator } from '../../coordinator/server.ts';
import { runPartnerNode } from '../../partner/node.ts';
import { runJobOwner } from '../../owner/node.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { signRequest } from '../../src/crypto/request-signing.ts';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { loadBundled } from '../../src/data/bundled.ts';
import { concatDatasets, subsetDataset, type Dataset } from '../../src/data/encode.ts';
import { auc } from '../../src/metrics/classification.ts';
import { predictProba } from '../../src/model/params.ts';
import { sgdModel } from '../../src/federation/workloads/sgd/index.ts';
import { partitionIid } from '../../src/data/partition.ts';
import { jobPreset, schemaHash } from '../../src/federation/job-presets.ts';
import { parseManifest, signManifest, MANIFEST_SCHEMA_VERSION } from '../../src/federation/manifest.ts';
import { MemoryBudgetGuard } from '../../src/privacy/budget/memory-guard.ts';
import { splitPartnerData } from '../../cli/partner-data.ts';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import type { FastifyInstance } from 'fastify';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';

const silent = pino({ level: 'silent' });

describe('a coordinator and 3 partner nodes over HTTP (telco sample)', () => {
  let dir: string;
  let app: FastifyInstance;
  let url: string;
  let parts: { train: Dataset; test: Dataset; all: Dataset }[];
  let schemaH: string;
  let schema: Awaited<ReturnType<typeof loadBundled>>['schema'];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fedmark-e2e-'));
    const built = await buildCoordinator({
      dataDir: join(dir, 'coordinator'),
      logger: pino({ level: 'info' }, pino.destination({ dest: join(dir, 'coordinator.log'), sync: true })),
      tickMs: 50,
    });
    app = built.app;
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const loaded = await loadBundled('telco-churn');
    schema = loaded.schema;
    schemaH = schemaHash(schema);
    const sample = subsetDataset(
      loaded.dataset,
      Array.from({ length: 2400 }, (_, i) => i),
    );
    parts = partitionIid(sample.n, 3, 5).map((idx) => {
      const all = subsetDataset(sample, idx);
      return { all, ...splitPartnerData(all, 0.25, 3) };
    });
  });

  afterAll(async () => {
    await app?.close();
    if (!process.env.FEDMARK_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
  });

  it('trains to completion, partners agree on the model, and no request body carries a raw row', async () => {
    const owner = generateIdentity('owner');
    const ids = ['bank-a', 'telco-b', 'retail-c'].map((n) => generateIdentity(n));
    const manifest = parseManifest({
      ...jobPreset({ jobId: 'e2e-telco', schema, partners: 3, rounds: 3, epsilon: 3, seed: 11 }),
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      createdAt: new Date().toISOString(),
      owner: publicIdentity(owner),
      partners: ids.map(publicIdentity),
    });
    const nodes = ids.map((identity, i) =>
      runPartnerNode({
        coordinatorUrl: url,
        identity,
        jobId: manifest.jobId,
        train: parts[i].train,
        test: parts[i].test,
        schemaHash: schemaH,
        stateDir: join(dir, identity.name),
        reviewJob: () => [],
        budget: new MemoryBudgetGuard(3),
        log: silent,
        pollMs: 50,
        recordBodies: true,
      }),
    );
    const ownerRun = runJobOwner({ coordinatorUrl: url, identity: owner, signed: signManifest(manifest, owner), log: silent, pollMs: 50 });
    const [ownerResult, ...results] = await Promise.all([ownerRun, ...nodes]);
    expect(ownerResult.state).toBe('completed');
    for (const r of results) {
      expect(r.state).toBe('completed');
      expect(r.rounds).toBe(3);
      expect(r.modelHash).toBe(ownerResult.modelHash);
    }
    // The model is good on the pooled hold-out; the owner's own metrics come from noisy (DP) histograms.
    const pooled = concatDatasets(parts.map((p) => p.test));
    const d = manifest.dataset.featureNames.length;
    expect(auc(predictProba(sgdModel(manifest), d, ownerResult.finalState.params, pooled.X, pooled.n), pooled.y)).toBeGreaterThan(0.7);
    expect(ownerResult.finalMetrics!.auc).toBeGreaterThanOrEqual(0);
    expect(ownerResult.roundMetrics).toHaveLength(4);
    // With DP only the final evaluation round releases histograms (per-round evaluation is off by default).
    expect(ownerResult.roundMetrics.map((r) => r.metrics === null)).toEqual([true, true, true, false]);

    // The job ledger and every partner's own ledger verify and agree; ε recomputes from the recorded parameters.
    const audit = auditLedgers({
      coordinator: join(dir, 'coordinator', 'ledgers', `${manifest.jobId}.ledger.jsonl`),
      partners: ids.map((id) => join(dir, id.name, 'partner.ledger.jsonl')),
      epsilonOf: composedEpsilon,
    });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(audit.ok).toBe(true);
    expect(audit.partners).toHaveLength(3);
    for (const p of audit.partners) {
      expect(p.rounds).toBe(3);
      expect(p.localLedgerChecked).toBe(true);
      expect(p.epsilon).toBeGreaterThan(0);
      expect(p.epsilon).toBeLessThanOrEqual(3);
      expect(p.rowsUsed).toBe(800);
    }

    // Raw rows never leave a partner: search every body each node sent for its customers' ids and raw cells.
    const raw = readFileSync(BUNDLED_DATASETS['telco-churn'].csv, 'utf8').split('\r\n').slice(1, 2401);
    const needles = raw.flatMap((line) => {
      const cells = line.split(',');
      return [cells[0], `${cells[18]},${cells[19]}`];
    });
    for (const r of results) {
      const text = Buffer.concat(r.sentBodies!.map((b) => Buffer.from(b))).toString('latin1');
      expect(r.sentBodies!.length).toBeGreaterThan(5);
      for (const needle of needles) expect(text.includes(needle), `body contains ${needle}`).toBe(false);
    }
  }, 120_000);

  it('answers bad requests with a clear 4xx JSON error', async () => {
    const stranger = generateIdentity('stranger');
    const client = new CoordinatorClient(url, stranger);
    // An unknown job and a job that does not name the key get one answer (no job-existence oracle).
    const unknown = await client.request('GET', '/v1/jobs/no-such-job', 'no-such-job', 0);
    expect(unknown.status).toBe(401);
    expect((await unknown.json()) as { code: string; error: string }).toMatchObject({
      code: 'AUTH_REJECTED',
      error: expect.stringMatching(/not authenticated for job "no-such-job"/),
    });

    // Unsigned: refused before the body is read; signed: the body is parsed and named.
    const unsigned = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"manifest": ' });
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { code: string }).code).toBe('AUTH_MISSING');
    const badJson = new TextEncoder().encode('{"manifest": ');
    const malformed = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers: {
        ...signRequest({ method: 'POST', path: '/v1/jobs', body: badJson, jobId: 'x-job', round: 0, identity: stranger }),
        'content-type': 'application/json',
      },
      body: badJson,
    });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: string }).error).toMatch(/not valid JSON/);

    const wrongField = await client.request('POST', '/v1/jobs', 'x-job', 0, { manifest: { jobId: 'x-job' }, signature: 's' });
    expect(wrongField.status).toBe(400);
    const body = (await wrongField.json()) as { error: string };
    expect(body.error).toMatch(/manifest/);

    const notPartner = await client.request('GET', '/v1/jobs/e2e-telco', 'e2e-telco', 0);
    expect(notPartner.status).toBe(401);
  });
});
