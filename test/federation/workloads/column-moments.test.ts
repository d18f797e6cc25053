import { mkdtempSync, rmSync } from 'node:fs';
import { REAL_QUANTUM } from '../../../src/federation/release-grid.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runJobOwner } from '../../../owner/node.ts';
import { concatDatasets, type Dataset } from '../../../src/data/encode.ts';
import type { DatasetSchema } from '../../../src/data/schema.ts';
import { jobPreset } from '../../../src/federation/job-presets.ts';
import { simulate } from '../../../src/federation/simulate.ts';
import { builtinWorkloads } from '../../../src/federation/workloads/index.ts';
import { composedEpsilon } from '../../../src/privacy/accountant.ts';
import { BudgetStore } from '../../../src/privacy/budget/store.ts';
import { auditLedgers } from '../../../src/privacy/ledger/audit.ts';
import { readLedger } from '../../../src/privacy/ledger/reader.ts';
import { startTestCoordinator, type TestCoordinator } from '../../helpers/coordinator.ts';
import { makeIdentities, runFederation, signJob, silentLog, telcoPartners, type PartnerData } from '../../helpers/partners.ts';
import { runBudgetedJob } from '../../helpers/budgeted-job.ts';
import { columnMomentsWorkload, type Moments } from './column-moments.ts';

/**
 * The proof that the workload seam is real: a workload the engine, store, codec, round machine and
 * SGD strategy know nothing about runs through simulate() and through the real coordinator, partner
 * nodes and owner node over HTTP, with its Gaussian release charged to each partner's budget and
 * recorded in both ledgers, and the audit recomputing ε from the ledgers.
 */

const workloads = builtinWorkloads.with(columnMomentsWorkload);
const COLUMN = 'tenure';
const params = { column: COLUMN, lo: 0, hi: 1 };

let schema: DatasetSchema;
let parts: PartnerData[];
let pooled: { n: number; mean: number; variance: number };

function exactMoments(ds: Dataset): { n: number; mean: number; variance: number } {
  const j = ds.featureNames.indexOf(COLUMN);
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < ds.n; i++) {
    const v = ds.X[i * ds.d + j];
    s += v;
    s2 += v * v;
  }
  const mean = s / ds.n;
  return { n: ds.n, mean, variance: s2 / ds.n - mean * mean };
}

const job = (jobId: string, o: { epsilon: number | null; encryption?: { scheme: 'plain-insecure' } }) => ({
  ...jobPreset({ jobId, schema, partners: 3, rounds: 1, epsilon: o.epsilon, encryption: o.encryption, seed: 7 }),
  workload: { kind: 'column-moments', params },
});

beforeAll(async () => {
  ({ schema, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 400 }));
  pooled = exactMoments(concatDatasets(parts.map((p) => p.train)));
});

describe('a second workload through simulate(): federated mean and variance of a column', () => {
  it('without DP and with plaintext sums, gives the pooled moments (to the release grid of the decrypted sums)', async () => {
    const r = await simulate<Moments, Moments>({
      job: job('moments-plain', { epsilon: null, encryption: { scheme: 'plain-insecure' } }),
      partners: parts,
      workloads,
    });
    expect(r.rounds.map((x) => [x.round, x.kind, x.partners.length])).toEqual([[1, 'moments', 3]]);
    expect(r.state.n).toBe(pooled.n);
    // Σu and Σu² are rounded to 2⁻²⁰ when opened (the range is [0, 1]): the moments are off by at most a few quanta / n.
    const grid = (4 * REAL_QUANTUM) / pooled.n;
    expect(Math.abs(r.state.mean! - pooled.mean)).toBeLessThanOrEqual(grid);
    expect(Math.abs(r.state.variance! - pooled.variance)).toBeLessThanOrEqual(2 * grid);
    expect(r.finalMetrics).toEqual(r.state);
    expect(r.epsilon).toEqual({});
  });

  it('with CKKS and DP, charges each partner one Gaussian release and lands near the pooled moments', async () => {
    const r = await simulate<Moments, Moments>({ job: job('moments-dp', { epsilon: 1 }), partners: parts, workloads });
    const sigma = r.noiseMultiplier!;
    expect(sigma).toBeGreaterThan(1);
    // One event (q = 1, σ, 1 step) per partner: its ε by the same accountant, and at most the target.
    const want = composedEpsilon([{ samplingRate: 1, noiseMultiplier: sigma, steps: 1 }], 1e-5);
    for (const p of parts) {
      expect(r.epsilon[p.name]).toBeCloseTo(want, 10);
      expect(r.epsilon[p.name]).toBeLessThanOrEqual(1);
    }
    // Noise of std σ·C on each summed coordinate, C = 1: the mean of ~900 values in [0, 1] moves by a few hundredths at most.
    expect(Math.abs(r.state.mean! - pooled.mean)).toBeLessThan(0.05);
    expect(Math.abs(r.state.n - pooled.n)).toBeLessThan(30);
  });

  it('refuses a manifest naming a column the dataset does not have', async () => {
    const bad = { ...job('moments-bad', { epsilon: null }), workload: { kind: 'column-moments', params: { column: 'shoe-size', lo: 0, hi: 1 } } };
    await expect(simulate({ job: bad, partners: parts, workloads })).rejects.toThrow(/"shoe-size" is not a feature/);
  });
});

let coord: TestCoordinator;
let dir: string;

describe('a second workload through the real coordinator, partner nodes and owner node over HTTP', () => {
  beforeAll(async () => {
    coord = await startTestCoordinator({ workloads });
    dir = mkdtempSync(join(tmpdir(), 'fedmark-moments-'));
  });
  afterAll(async () => {
    await coord?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs with DP: the owner gets the moments, every partner charged its release before upload, and the audit agrees', async () => {
    const { manifest, result, nodeResults, stores, ledgers } = await runBudgetedJob<Moments, Moments>({
      url: coord.url,
      dir,
      parts,
      preset: job('moments-http', { epsilon: 2 }),
      policy: () => ({ maxEpsilonPerJob: 2, lifetimeEpsilon: 5 }),
      timeoutMs: 60_000,
      workloads,
    });
    expect(result.state, result.reason ?? '').toBe('completed');
    expect(nodeResults.map((r) => r.state)).toEqual(['completed', 'completed', 'completed']);
    expect(new Set([result.modelHash, ...nodeResults.map((r) => r.modelHash)]).size).toBe(1);
    const m = result.finalState;
    expect(result.finalMetrics).toEqual(m);
    expect(Math.abs(m.mean! - pooled.mean)).toBeLessThan(0.05);
    expect(Math.abs(m.n - pooled.n)).toBeLessThan(30);

    // Each partner charged exactly one release, labelled by the workload, before its upload left.
    for (const s of stores) {
      const charges = BudgetStore.open(s.path).charges(manifest.jobId);
      expect(charges.map((c) => [c.round, c.attempt, c.label, c.samplingRate, c.steps])).toEqual([[1, 0, 'moments', 1, 1]]);
    }
    // Both ledgers record it, and the audit recomputes ε from the recorded parameters.
    const coordLedger = coord.engine.ledgerPath(manifest.jobId);
    const rounds = readLedger(coordLedger).entries.filter((e) => e.type === 'round');
    expect(rounds).toHaveLength(1);
    const audit = auditLedgers({ coordinator: coordLedger, partners: ledgers, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(audit.ok).toBe(true);
    for (const p of audit.partners) {
      expect(p.localLedgerChecked).toBe(true);
      const sigma = (rounds[0].payload as { partners: { noiseMultiplier: number }[] }).partners[0].noiseMultiplier;
      expect(p.epsilonRecomputed).toBeCloseTo(composedEpsilon([{ samplingRate: 1, noiseMultiplier: sigma, steps: 1 }], 1e-5), 10);
      expect(p.epsilon).toBeLessThanOrEqual(2);
    }
  }, 90_000);

  it('a partner node that does not run the workload refuses the job (attested, in both ledgers); the others go on', async () => {
    const owner = makeIdentities(['owner'])[0];
    const ids = makeIdentities(parts.map((p) => p.name));
    const { manifest, signed } = signJob(job('moments-refusal', { epsilon: null }), owner, ids);
    // The first partner's build runs only the built-in workloads.
    const { owner: result, nodes: nodeResults } = await runFederation<Moments, Moments>({
      url: coord.url,
      owner,
      identities: ids,
      signed,
      parts,
      schemaHash: manifest.dataset.schemaHash,
      stateDir: dir,
      timeoutMs: 60_000,
      workloads,
      node: (i) => (i === 0 ? { workloads: builtinWorkloads } : {}),
    });
    expect(nodeResults[0]).toMatchObject({ state: 'refused', reason: 'this node does not run workload "column-moments"' });
    expect(nodeResults.slice(1).map((r) => r.state)).toEqual(['completed', 'completed']);
    expect(result.state).toBe('completed');
    expect(result.finalState.n).toBe(parts[1].train.n + parts[2].train.n);
    const refusals = readLedger(coord.engine.ledgerPath(manifest.jobId)).entries.filter((e) => e.type === 'partner.refusal');
    expect(refusals.map((e) => (e.payload as { reason: string }).reason)).toEqual(['this node does not run workload "column-moments"']);
  }, 90_000);

  it('is refused by a coordinator that does not run the workload, naming it', async () => {
    const plain = await startTestCoordinator();
    try {
      const owner = makeIdentities(['owner'])[0];
      const { signed } = signJob(job('moments-unknown', { epsilon: null }), owner, makeIdentities(['a', 'b', 'c']));
      await expect(runJobOwner({ coordinatorUrl: plain.url, identity: owner, signed, log: silentLog, workloads })).rejects.toThrow(
        /\(400 UNKNOWN_WORKLOAD\).*"column-moments"/,
      );
    } finally {
      await plain.close();
    }
  });
});
