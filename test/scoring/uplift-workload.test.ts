import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { loadDataset, subsetDataset } from '../../src/data/encode.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { parseManifest, type JobManifest } from '../../src/federation/manifest.ts';
import { simulate } from '../../src/federation/simulate.ts';
import { planOf } from '../../src/federation/workload.ts';
import { builtinWorkloads } from '../../src/federation/workloads/index.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { BudgetStore } from '../../src/privacy/budget/store.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { campaignCounts } from '../../src/scoring/campaign.ts';
import { cellIndex, UPLIFT_CELLS, upliftFromCounts, type UpliftResult } from '../../src/scoring/uplift.ts';
import { combineUpliftCounts } from '../../src/scoring/uplift-federated.ts';
import { campaignCountsOf, campaignSchema, upliftWorkload, type UpliftState } from '../../src/scoring/uplift-workload.ts';
import { createRng } from '../../src/util/rng.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, signJob, type PartnerData } from '../helpers/partners.ts';
import { runBudgetedJob } from '../helpers/budgeted-job.ts';

/**
 * A campaign run by three partners, measured through the federation: each partner's count table is
 * one charged Gaussian release (label `count`, q = 1, σ = s/Δ, one step), summed encrypted, and the
 * key holders get the uplift figures. Checked against the exact pooled table, the accountant, the
 * budget stores, both ledgers and the audit.
 */

const workloads = builtinWorkloads.with(upliftWorkload);
const schema: DatasetSchema = campaignSchema({ name: 'retention-campaign' });
const CUSTOMERS = [1500, 1200, 900];

let dir: string;
let parts: PartnerData[];
let pooled: Float64Array;
const files: { campaign: string; scores: string; outcomes: string }[] = [];

/** One partner's campaign rows: a random decile and arm, response more likely in the top deciles and when treated. */
function writeCampaign(k: number, n: number) {
  const rng = createRng(100 + k);
  const campaign = ['id,decile,arm,outcome'];
  const scores = ['id,probability,decile'];
  const outcomes = ['id,arm,outcome'];
  for (let i = 0; i < n; i++) {
    const id = `P${k}-${i}`;
    const decile = 1 + rng.int(10);
    const arm = rng.next() < 0.5 ? 'treatment' : 'control';
    const p = 0.05 + 0.02 * (10 - decile) + (arm === 'treatment' ? 0.08 * (decile <= 3 ? 1 : 0.2) : 0);
    const outcome = rng.next() < p ? 1 : 0;
    campaign.push(`${id},${decile},${arm},${outcome}`);
    scores.push(`${id},0.5,${decile}`);
    outcomes.push(`${id},${arm},${outcome}`);
  }
  const f = { campaign: join(dir, `campaign-${k}.csv`), scores: join(dir, `scores-${k}.csv`), outcomes: join(dir, `outcomes-${k}.csv`) };
  writeFileSync(f.campaign, campaign.join('\n') + '\n');
  writeFileSync(f.scores, scores.join('\n') + '\n');
  writeFileSync(f.outcomes, outcomes.join('\n') + '\n');
  return f;
}

const job = (jobId: string, epsilon: number | null, workloadParams: Record<string, unknown> = {}, s: DatasetSchema = schema) => ({
  ...jobPreset({ jobId, schema: s, partners: 3, rounds: 1, epsilon, seed: 11, purpose: 'campaign-measurement' }),
  workload: { kind: 'uplift', params: workloadParams },
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedmark-uplift-wl-'));
  parts = [];
  pooled = new Float64Array(UPLIFT_CELLS);
  for (let k = 0; k < CUSTOMERS.length; k++) {
    const f = writeCampaign(k, CUSTOMERS[k]);
    files.push(f);
    const all = await loadDataset(f.campaign, schema);
    const cut = Math.floor(all.n * 0.75);
    const idx = Array.from({ length: all.n }, (_, i) => i);
    parts.push({ name: `partner-${k}`, all, train: subsetDataset(all, idx.slice(0, cut)), test: subsetDataset(all, idx.slice(cut)) });
  }
  for (const p of parts) {
    const c = campaignCountsOf(manifestOf('counts'), [p.all]);
    for (let i = 0; i < UPLIFT_CELLS; i++) pooled[i] += c[i];
  }
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function manifestOf(jobId: string, epsilon: number | null = 1): JobManifest {
  return signJob(job(jobId, epsilon), makeIdentities(['owner'])[0], makeIdentities(['a', 'b', 'c'])).manifest;
}

describe('the uplift workload: what a partner counts and what a round releases', () => {
  it("a partner's table equals the one fedmark uplift builds from its scores and outcomes files", async () => {
    for (let k = 0; k < parts.length; k++) {
      const fromFiles = await campaignCounts(files[k].scores, files[k].outcomes, {
        armColumn: 'arm',
        outcomeColumn: 'outcome',
        treatment: ['treatment'],
        control: ['control'],
        positive: ['1'],
        negative: ['0'],
      });
      // Train and hold-out together: every campaign customer once.
      expect(campaignCountsOf(manifestOf('counts'), [parts[k].train, parts[k].test])).toEqual(fromFiles.counts);
      expect(fromFiles.counts.reduce((a, b) => a + b, 0)).toBe(CUSTOMERS[k]);
    }
  });

  it('one round, every partner, one labelled Gaussian release calibrated to the target ε; replace-one adjacency doubles the variance', () => {
    const m = manifestOf('plan', 1);
    upliftWorkload.validate(m);
    const plan = planOf(upliftWorkload, m, 1);
    expect(upliftWorkload.totalRounds(m)).toBe(1);
    expect(plan).toMatchObject({
      kind: 'uplift',
      selection: 'all',
      updatesState: true,
      parts: [{ name: 'uplift-counts', length: UPLIFT_CELLS + 1, use: 'state' }],
    });
    expect(plan.releases).toHaveLength(1);
    const [r] = plan.releases;
    expect(r).toMatchObject({ label: 'count', samplingRate: 1, steps: 1, sensitivity: 1 });
    const eps = composedEpsilon([{ samplingRate: 1, noiseMultiplier: r.noiseMultiplier, steps: 1 }], 1e-5);
    expect(eps).toBeLessThanOrEqual(1);
    expect(eps).toBeGreaterThan(0.99);
    const m2 = parseManifest({ ...m, workload: { kind: 'uplift', params: { adjacency: 'replace-one' } } });
    const [r2] = planOf(upliftWorkload, m2, 1).releases;
    expect(r2.sensitivity).toBeCloseTo(Math.SQRT2, 14);
    expect(r2.noiseMultiplier).toBeCloseTo(r.noiseMultiplier, 12);
  });

  it('refuses a job without DP (counts would leave exact), a dataset that is not a campaign table, and equal arms', async () => {
    expect(() => upliftWorkload.validate(manifestOf('no-dp', null))).toThrow(/MANIFEST_INVALID|must declare dp/);
    const { loadBundled } = await import('../../src/data/bundled.ts');
    const telco = (await loadBundled('telco-churn')).schema;
    await expect(simulate({ job: job('telco', 1, {}, telco), partners: parts, workloads })).rejects.toThrow(/lacks feature\(s\) decile=1, .*arm=control/);
    await expect(simulate({ job: job('same-arms', 1, { treatment: 'x', control: 'x' }), partners: parts, workloads })).rejects.toThrow(
      /treatment and control are both "x"/,
    );
    await expect(simulate({ job: job('bad-param', 1, { adjacency: 'swap' }), partners: parts, workloads })).rejects.toThrow(/workload\.params\.adjacency/);
  });
});

describe('a three-partner campaign through simulate() (CKKS, DP)', () => {
  it('sums the noisy tables: figures within the noise of the pooled ones, each partner charged exactly the release', async () => {
    const r = await simulate<UpliftState, UpliftResult>({ job: job('uplift-sim', 1), partners: parts, workloads });
    const sigma = r.noiseMultiplier!;
    expect(r.rounds.map((x) => [x.round, x.kind, x.partners.length])).toEqual([[1, 'uplift', 3]]);
    expect(r.state.partners).toBe(3);
    // Each summed cell carries noise of std σ·√3 (Δ = 1): 6 standard deviations bound all 40 cells.
    for (let i = 0; i < UPLIFT_CELLS; i++) expect(Math.abs(r.state.counts[i] - pooled[i])).toBeLessThan(6 * sigma * Math.sqrt(3));
    // The noise is there: the sum is not the exact table.
    expect(r.state.counts.some((c, i) => Math.abs(c - pooled[i]) > 0.5)).toBe(true);
    expect(r.finalMetrics).toEqual(combineUpliftCounts(r.state.counts, { partners: 3, noiseStd: sigma }));
    const exact = upliftFromCounts(pooled);
    const width = (u: UpliftResult) => u.overall.interval!.upper - u.overall.interval!.lower;
    // Same rows, so the difference is the count noise alone, whose spread is below the noisy interval's
    // standard error (which adds the sampling variance): a whole interval width is beyond 3.9 of them.
    expect(Math.abs(r.finalMetrics.overall.uplift! - exact.overall.uplift!)).toBeLessThan(width(r.finalMetrics));
    // The noisy interval is at least as wide as the exact one.
    expect(width(r.finalMetrics)).toBeGreaterThanOrEqual(width(exact) * 0.99);
    const want = composedEpsilon([{ samplingRate: 1, noiseMultiplier: sigma, steps: 1 }], 1e-5);
    for (const p of parts) {
      expect(r.epsilon[p.name]).toBeCloseTo(want, 10);
      expect(r.epsilon[p.name]).toBeLessThanOrEqual(1);
    }
  });
});

let coord: TestCoordinator;

describe('a three-partner campaign through the real coordinator, partner nodes and owner node', () => {
  beforeAll(async () => {
    coord = await startTestCoordinator({ workloads });
  });
  afterAll(async () => {
    await coord?.close();
  });

  it('every count table is charged before it leaves, recorded in both ledgers, and recomputed by the audit; a partner without budget sends nothing', async () => {
    // The last partner's policy allows less ε per job than the release costs.
    const { manifest, ids, result, nodeResults, stores, ledgers } = await runBudgetedJob<UpliftState, UpliftResult>({
      url: coord.url,
      dir,
      parts,
      preset: job('uplift-http', 1),
      policy: (i) => ({ datasetId: `${parts[i].name}-campaign`, maxEpsilonPerJob: i === 2 ? 0.5 : 2, lifetimeEpsilon: 5 }),
      timeoutMs: 90_000,
      workloads,
    });
    expect(result.state, result.reason ?? '').toBe('completed');
    // The third node sat the round out (its guard refused the release) and follows the job to its end.
    expect(nodeResults.map((r) => r.state)).toEqual(['completed', 'completed', 'completed']);
    expect(new Set([result.modelHash, ...nodeResults.map((r) => r.modelHash)]).size).toBe(1);
    // Two tables were summed: the refusing partner's counts are not in the sum.
    const state = result.finalState;
    expect(state.partners).toBe(2);
    const sigma = planOf(upliftWorkload, manifest, 1).releases[0].noiseMultiplier;
    const twoPooled = campaignCountsOf(manifest, [parts[0].all, parts[1].all]);
    for (let i = 0; i < UPLIFT_CELLS; i++) expect(Math.abs(state.counts[i] - twoPooled[i])).toBeLessThan(6 * sigma * Math.SQRT2);
    expect(result.finalMetrics).toEqual(combineUpliftCounts(state.counts, { partners: 2, noiseStd: sigma }));
    const decile1 = twoPooled[cellIndex(1, 'treatment', true)] + twoPooled[cellIndex(1, 'treatment', false)];
    expect(Math.abs(result.finalMetrics!.byDecile[0].treatment.n - decile1)).toBeLessThan(12 * sigma);

    // The two contributing partners charged one `count` release each; the refusing one charged nothing.
    const charges = stores.map((s) =>
      BudgetStore.open(s.path)
        .charges(manifest.jobId)
        .map((c) => [c.round, c.attempt, c.label, c.samplingRate, c.noiseMultiplier, c.steps]),
    );
    expect(charges).toEqual([[[1, 0, 'count', 1, sigma, 1]], [[1, 0, 'count', 1, sigma, 1]], []]);
    // Each contributing partner's own ledger records the release, and the job ledger's round lists it.
    for (const l of ledgers.slice(0, 2)) {
      const rel = readLedger(l).entries.filter((e) => e.type === 'partner.release');
      expect(rel.map((e) => JSON.stringify(e.payload))).toEqual([expect.stringContaining('"label":"count"')]);
    }
    const coordLedger = coord.engine.ledgerPath(manifest.jobId);
    const rounds = readLedger(coordLedger).entries.filter((e) => e.type === 'round');
    expect(rounds).toHaveLength(1);
    expect(JSON.stringify(rounds[0].payload)).toContain('"label":"count"');
    const audit = auditLedgers({ coordinator: coordLedger, partners: ledgers, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    const want = composedEpsilon([{ samplingRate: 1, noiseMultiplier: sigma, steps: 1 }], 1e-5);
    for (const id of ids.slice(0, 2)) {
      const p = audit.partners.find((x) => x.partner === publicIdentity(id).keyId || x.name === id.name);
      expect(p, JSON.stringify(audit.partners)).toBeDefined();
      expect(p!.localLedgerChecked).toBe(true);
      expect(p!.epsilonRecomputed).toBeCloseTo(want, 10);
    }
  }, 120_000);
});
