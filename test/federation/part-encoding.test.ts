import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPartnerNode } from '../../partner/node.ts';
import { registerJob } from '../../owner/register.ts';
import { runJobOwner } from '../../owner/node.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/index.ts';
import { loadBundled } from '../../src/data/bundled.ts';
import { subsetDataset, type Dataset } from '../../src/data/encode.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import { FedmarkError } from '../../src/errors.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest, signManifest, type JobManifest } from '../../src/federation/manifest.ts';
import { decodePart, encodePart, encodingProblems, partEncoding, wireLength } from '../../src/federation/part-encoding.ts';
import { openSecureSum, type SecureSumScheme } from '../../src/federation/secure-sum.ts';
import { simulate } from '../../src/federation/simulate.ts';
import type { PartSpec } from '../../src/federation/workload.ts';
import { evaluationBound, sgdWorkload, updateBound } from '../../src/federation/workloads/sgd/index.ts';
import { PolicyBudgetGuard } from '../../src/privacy/budget/policy-guard.ts';
import { BudgetStore } from '../../src/privacy/budget/store.ts';
import { parsePolicy } from '../../src/privacy/policy.ts';
import { splitPartnerData, PARTNER_HOLDOUT } from '../../cli/partner-data.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, silentLog, TEST_POLL_MS } from '../helpers/partners.ts';

/**
 * Issue 18 item 1: every summed part is encoded from the sizes the manifest declares, so a partner
 * of any declared size fits; a job whose declared sizes cannot fit is refused at acceptance, before
 * any budget is charged; a value beyond its declared bound is not uploaded.
 */

let schema: DatasetSchema;
let bank: Dataset;
let ckks: SecureSumScheme;

beforeAll(async () => {
  ({ schema, dataset: bank } = await loadBundled('bank-marketing'));
  ckks = await openSecureSum(DEFAULT_HE_PARAMS);
});
afterAll(() => ckks?.dispose());

const manifestOf = (
  jobId: string,
  o: { partners?: number; epsilon?: number | null; limits?: JobManifest['limits']; encryption?: JobManifest['encryption'] } = {},
): JobManifest => {
  const ids = makeIdentities(Array.from({ length: o.partners ?? 2 }, (_, i) => `p${i}`));
  return parseManifest({
    ...jobPreset({ jobId, schema, partners: ids.length, rounds: 1, epsilon: o.epsilon === undefined ? 3 : o.epsilon, encryption: o.encryption, seed: 3 }),
    ...(o.limits ? { limits: o.limits } : {}),
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: new Date().toISOString(),
    owner: publicIdentity(makeIdentities(['owner'])[0]),
    partners: ids.map(publicIdentity),
  });
};

/** The bank rows repeated until there are `n` of them (each copy a distinct customer to the pipeline). */
function replicated(ds: Dataset, n: number): Dataset {
  return subsetDataset(
    ds,
    Array.from({ length: n }, (_, i) => i % ds.n),
  );
}

/** Sums `vectors` of a part under CKKS the way a round does: encode → encrypt → add → decrypt → decode. */
function ckksSum(spec: PartSpec, vectors: Float64Array[]): Float64Array {
  const cipher = ckks.cipher(ckks.generateSecretKey());
  const sum = ckks.sum();
  try {
    for (const v of vectors) sum.add(cipher.encrypt(encodePart(spec, v, ckks.maxAbsInput)));
    return decodePart(spec, cipher.decrypt(sum.toBytes(), wireLength(spec, ckks.maxAbsInput)), ckks.maxAbsInput);
  } finally {
    sum.dispose();
    cipher.dispose();
  }
}

describe('per-part encoding', () => {
  it('scales a count part past the slot bound and keeps integer counts exact', () => {
    const spec: PartSpec = { name: 'evaluation', length: 5, domain: 'count', bound: 1e8, use: 'report' };
    expect(ckks.maxAbsInput).toBe(4096);
    expect(partEncoding(spec, 4096)).toEqual({ scale: 2 ** 15, limbs: 1, resolution: 2 ** -5 });
    const a = Float64Array.from([99_999_999, 4188, 23_305, 0, 1]);
    const b = Float64Array.from([1, 60_000_001, 7, 12_345_678, 2]);
    expect(Array.from(ckksSum(spec, [a, b]))).toEqual([100_000_000, 60_004_189, 23_312, 12_345_678, 3]);
  });

  it('carries a scaled real part as two limbs, so its sum keeps the 2^-20 resolution of an unscaled one', () => {
    const spec: PartSpec = { name: 'update', length: 4, domain: 'real', bound: 1.6e5, use: 'state' };
    expect(partEncoding(spec, 4096)).toMatchObject({ scale: 64, limbs: 2 });
    expect(wireLength(spec, 4096)).toBe(8);
    const a = Float64Array.from([159_999.123456, -0.000123, 3.14159265, 10_000]);
    const b = Float64Array.from([-42.5, 0.5, 2.71828182, -9_999.999]);
    const got = ckksSum(spec, [a, b]);
    for (let i = 0; i < 4; i++) expect(Math.abs(got[i] - (a[i] + b[i]))).toBeLessThanOrEqual(2 ** -20);
  });

  it('refuses to encode a value beyond the part’s declared bound, naming it', () => {
    const spec: PartSpec = { name: 'update', length: 2, domain: 'real', bound: 10, use: 'state' };
    try {
      encodePart(spec, Float64Array.from([1, 10.5]), 4096);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FedmarkError);
      expect((err as FedmarkError).code).toBe('PART_OUT_OF_BOUND');
      expect((err as Error).message).toMatch(/part "update": value 10.5 at index 1 exceeds the bound ±10/);
    }
  });
});

describe('bounds from the manifest', () => {
  it('derives every part’s bound from the declared rows per partner (default 10^8) and fits the default HE parameters', () => {
    const m = manifestOf('fits-default');
    expect(evaluationBound(m)).toBeGreaterThanOrEqual(1e8);
    expect(updateBound(m)).toBeGreaterThanOrEqual((1e8 / 10_000) * 16);
    expect(encodingProblems(sgdWorkload, m)).toEqual([]);
    const small = manifestOf('fits-small', { limits: { maxRowsPerPartner: 1e6 } });
    expect(evaluationBound(small)).toBeLessThan(evaluationBound(m));
  });

  it('names what does not fit: too many rows per partner for integer counts, too many partners for the HE parameters', () => {
    const huge = encodingProblems(sgdWorkload, manifestOf('too-big', { epsilon: null, limits: { maxRowsPerPartner: 1e10 } }));
    expect(huge.join('\n')).toMatch(/part "evaluation".*coarser than integers.*lower limits.maxRowsPerPartner/);
    const crowd = encodingProblems(sgdWorkload, manifestOf('too-many', { partners: 3, encryption: { ...DEFAULT_HE_PARAMS, maxSummands: 2 } }));
    expect(crowd.join('\n')).toMatch(/names 3 partners but its HE parameters sum at most 2 ciphertexts/);
  });
});

describe('a partner with hundreds of thousands of rows', () => {
  it('completes round 1 and the evaluation at the default hold-out (DP, CKKS), with every partner in every round', async () => {
    const big = splitPartnerData(replicated(bank, 300_000), PARTNER_HOLDOUT, 1);
    const small = splitPartnerData(
      subsetDataset(
        bank,
        Array.from({ length: 4_000 }, (_, i) => i),
      ),
      PARTNER_HOLDOUT,
      2,
    );
    const job = jobPreset({ jobId: 'large-partner', schema, partners: 2, rounds: 1, epsilon: 3, seed: 5 });
    const r = await simulate({
      job,
      partners: [
        { name: 'big', ...big },
        { name: 'small', ...small },
      ],
    });
    expect(r.rounds.map((x) => [x.round, x.kind, x.partners.sort()])).toEqual([
      [1, 'train', ['big', 'small']],
      [2, 'evaluate', ['big', 'small']],
    ]);
    // The hold-out of 60,000 + 800 rows is counted (noisy with DP: within 3 %).
    const holdout = big.test.n + small.test.n;
    expect(Math.abs(r.finalMetrics.n - holdout)).toBeLessThan(0.03 * holdout);
    expect(big.test.n).toBeGreaterThan(50_000);
    expect(r.finalMetrics.auc).toBeGreaterThan(0.5);
  }, 240_000);
});

describe('an update beyond the declared bound', () => {
  it('is not uploaded: the partner withholds the attempt, naming the part and the bound', async () => {
    const data = splitPartnerData(
      subsetDataset(
        bank,
        Array.from({ length: 600 }, (_, i) => i),
      ),
      PARTNER_HOLDOUT,
      1,
    );
    const preset = jobPreset({ jobId: 'beyond-bound', schema, partners: 1, rounds: 1, epsilon: null, seed: 5 });
    // A learning rate that moves parameters by far more than the declared |Δ| ≤ 1 for a partner of 600 rows.
    const job = { ...preset, localTraining: { ...preset.localTraining, learningRate: 1000 }, limits: { maxRowsPerPartner: 600, maxAbsUpdate: 1 } };
    await expect(simulate({ job, partners: [{ name: 'only', ...data }] })).rejects.toThrow(
      /only withheld round 1 attempt 0: round 1 attempt 0: part "update": value \S+ at index \d+ exceeds the bound ±0\.06\d* the job declares per partner; not uploaded/,
    );
  });
});

describe('a job whose declared sizes cannot fit', () => {
  let coord: TestCoordinator;
  let dir: string;
  beforeAll(async () => {
    coord = await startTestCoordinator();
    dir = mkdtempSync(join(tmpdir(), 'fedmark-fit-'));
  });
  afterAll(async () => {
    await coord?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is refused by the partner node at acceptance, naming why, with nothing charged to its budget', async () => {
    const owner = makeIdentities(['owner'])[0];
    const ids = makeIdentities(['p0', 'p1']);
    const manifest = parseManifest({
      ...jobPreset({ jobId: 'does-not-fit', schema, partners: 2, rounds: 1, epsilon: 3, seed: 3 }),
      limits: { maxRowsPerPartner: 1e10 },
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      createdAt: new Date().toISOString(),
      owner: publicIdentity(owner),
      partners: ids.map(publicIdentity),
    });
    const signed = signManifest(manifest, owner);
    await registerJob(new CoordinatorClient(coord.url, owner), signed, owner, sgdWorkload.privacy(manifest), null);
    const data = splitPartnerData(
      subsetDataset(
        bank,
        Array.from({ length: 500 }, (_, i) => i),
      ),
      PARTNER_HOLDOUT,
      1,
    );
    const storePath = join(dir, 'budget.json');
    const policy = parsePolicy({
      partner: 'p0',
      datasetId: 'bank',
      maxEpsilonPerJob: 10,
      lifetimeEpsilon: 100,
      maxDelta: 1e-4,
      allowedColumns: manifest.dataset.columns,
      allowedPurposes: [manifest.purpose],
    });
    const store = BudgetStore.open(storePath);
    {
      const result = await runPartnerNode({
        coordinatorUrl: coord.url,
        identity: ids[0],
        jobId: manifest.jobId,
        train: data.train,
        test: data.test,
        schemaHash: manifest.dataset.schemaHash,
        stateDir: join(dir, 'p0'),
        reviewJob: () => [],
        budget: new PolicyBudgetGuard(policy, store),
        log: silentLog,
        pollMs: TEST_POLL_MS,
        joinTimeoutMs: 10_000,
      });
      expect(result.state).toBe('refused');
      expect(result.reason).toMatch(/part "evaluation".*coarser than integers/);
      expect(store.charges(manifest.jobId)).toEqual([]);
      expect(BudgetStore.open(storePath).charges(manifest.jobId)).toEqual([]);
    }
    // The job owner's node says so before it registers such a job.
    await expect(
      runJobOwner({ coordinatorUrl: coord.url, identity: owner, signed: signManifest({ ...manifest, jobId: 'does-not-fit-2' }, owner), log: silentLog }),
    ).rejects.toThrow(/JOB_DOES_NOT_FIT|cannot be encoded: part "evaluation"/);
  }, 60_000);
});
