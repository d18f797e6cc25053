import { beforeAll, describe, expect, it } from 'vitest';
import { concatDatasets, type Dataset } from '../../../../src/data/encode.ts';
import type { DatasetSchema } from '../../../../src/data/schema.ts';
import { parseManifest, MANIFEST_SCHEMA_VERSION } from '../../../../src/federation/manifest.ts';
import { featureStatsPreset, numericFeatureColumns, standardizedTrainingPreset, withStandardization } from '../../../../src/federation/presets/standardized.ts';
import { REAL_QUANTUM } from '../../../../src/federation/release-grid.ts';
import { simulate } from '../../../../src/federation/simulate.ts';
import { planOf } from '../../../../src/federation/workload.ts';
import { featureStatsWorkload, ROW_UNIT, type FeatureStats } from '../../../../src/federation/workloads/feature-stats/index.ts';
import { foldStandardization, standardizedRows } from '../../../../src/federation/workloads/sgd/standardize.ts';
import { sgdModel } from '../../../../src/federation/workloads/sgd/index.ts';
import { identityFromSeed, publicIdentity } from '../../../../src/crypto/identity.ts';
import { predictProba } from '../../../../src/model/params.ts';
import { composedEpsilon } from '../../../../src/privacy/accountant.ts';
import { telcoPartners, type PartnerData } from '../../../helpers/partners.ts';

let schema: DatasetSchema;
let parts: PartnerData[];
let columns: string[];

function pooledStats(ds: Dataset, cols: string[]): { mean: number[]; std: number[] } {
  const mean: number[] = [];
  const std: number[] = [];
  for (const c of cols) {
    const j = ds.featureNames.indexOf(c);
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < ds.n; i++) {
      const x = ds.X[i * ds.d + j];
      s += x;
      s2 += x * x;
    }
    const mu = s / ds.n;
    mean.push(mu);
    std.push(Math.sqrt(s2 / ds.n - mu * mu));
  }
  return { mean, std };
}

beforeAll(async () => {
  ({ schema, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 500 }));
  columns = numericFeatureColumns(schema);
});

const partners = () => parts.map((p) => ({ name: p.name, train: p.train, test: p.test }));

function manifestOf(job: ReturnType<typeof featureStatsPreset>) {
  const owner = publicIdentity(identityFromSeed('owner', Buffer.alloc(32, 1)));
  const ps = parts.map((p, i) => publicIdentity(identityFromSeed(p.name, Buffer.alloc(32, i + 2))));
  return parseManifest({ ...job, schemaVersion: MANIFEST_SCHEMA_VERSION, createdAt: '2026-01-01T00:00:00.000Z', owner, partners: ps });
}

describe('private feature statistics (feature-stats workload)', () => {
  it('the numeric feature columns of telco are its three numeric columns', () => {
    expect(columns).toEqual(['tenure', 'MonthlyCharges', 'TotalCharges']);
  });

  it('without DP: the pooled mean and standard deviation of every numeric column, on the release grid', async () => {
    const job = featureStatsPreset({ jobId: 'stats-plain', schema, partners: 3, epsilon: null, encryption: { scheme: 'plain-insecure' }, seed: 3 });
    const r = await simulate<FeatureStats, FeatureStats>({ job, partners: partners() });
    const want = pooledStats(concatDatasets(parts.map((p) => p.train)), columns);
    expect(r.state.columns).toEqual(columns);
    expect(r.state.n).toBe(parts.reduce((s, p) => s + p.train.n, 0));
    // Sums are carried in units of ROW_UNIT rows on the release grid: the mean is exact to ROW_UNIT·2⁻²⁰/n.
    r.state.mean.forEach((m, j) => expect(Math.abs(m - want.mean[j])).toBeLessThan((ROW_UNIT * REAL_QUANTUM) / 1000));
    for (const m of r.state.mean) expect(Number.isInteger(m / REAL_QUANTUM)).toBe(true);
    r.state.std.forEach((s, j) => expect(Math.abs(s - want.std[j])).toBeLessThan(1e-5));
  });

  it('with CKKS and DP: one `moments` release per partner, its ε the plan’s, the estimates close to the pooled ones', async () => {
    const job = featureStatsPreset({ jobId: 'stats-dp', schema, partners: 3, epsilon: 3, seed: 3 });
    expect(job.dp!.targetEpsilon).toBeCloseTo(0.3, 12);
    const r = await simulate<FeatureStats, FeatureStats>({ job, partners: partners() });
    const m = manifestOf(job);
    const [release] = planOf(featureStatsWorkload, m, 1).releases;
    expect(release).toMatchObject({ label: 'moments', samplingRate: 1, steps: 1, sensitivity: 1 / ROW_UNIT });
    const expected = composedEpsilon([release], m.dp!.delta);
    expect(expected).toBeLessThanOrEqual(0.3 + 1e-9);
    for (const eps of Object.values(r.epsilon)) expect(eps).toBeCloseTo(expected, 9);
    const want = pooledStats(concatDatasets(parts.map((p) => p.train)), columns);
    // Σx carries noise of std σ·C·√3 (three partners) in units of C/√7 per row: the mean's std is σ·√21/n.
    const n = concatDatasets(parts.map((p) => p.train)).n;
    const meanSd = (release.noiseMultiplier * Math.sqrt(21)) / n;
    expect(meanSd).toBeGreaterThan(0.01);
    r.state.mean.forEach((x, j) => expect(Math.abs(x - want.mean[j])).toBeLessThan(5 * meanSd));
    for (const x of r.state.std) expect(x).toBeGreaterThan(0);
  });

  it('refuses columns the dataset does not have, and standardisation without estimates', () => {
    const job = featureStatsPreset({ jobId: 'stats-bad', schema, partners: 3, epsilon: null, seed: 3 });
    const m = manifestOf({ ...job, workload: { kind: 'feature-stats', params: { columns: ['nope'] } } });
    expect(() => featureStatsWorkload.validate(m)).toThrow(/"nope" not a feature/);
    expect(() => featureStatsWorkload.validate(manifestOf({ ...job, workload: { kind: 'feature-stats', params: { columns: ['tenure', 'tenure'] } } }))).toThrow(
      /duplicates/,
    );
    expect(() => withStandardization(job, { n: 0, columns, mean: [], std: [] })).toThrow(/no estimates/);
  });
});

describe('standardised SGD training', () => {
  const stats: FeatureStats = { n: 1, columns: ['tenure', 'TotalCharges'], mean: [0.4, 0.6], std: [0.25, 0.2] };

  it('standardises the named columns of train and hold-out rows, leaves the others, and a job without it untouched', () => {
    const job = standardizedTrainingPreset({ jobId: 'std-train', schema, partners: 3, epsilon: null, seed: 3 }, stats);
    const m = manifestOf(job);
    const rows = standardizedRows(m, parts[0]);
    const d = parts[0].train.d;
    const j = m.dataset.featureNames.indexOf('TotalCharges');
    const k = m.dataset.featureNames.indexOf('MonthlyCharges');
    expect(rows.train.X[d + j]).toBeCloseTo((parts[0].train.X[d + j] - 0.6) / 0.2, 5);
    expect(rows.test.X[k]).toBe(parts[0].test.X[k]);
    const plain = manifestOf({ ...job, workload: { kind: 'sgd', params: {} } });
    expect(standardizedRows(plain, parts[0])).toBe(parts[0]);
  });

  it('the folded model scores the encoded rows exactly as the trained model scores the standardised ones (logistic and MLP)', async () => {
    for (const model of [{ kind: 'logistic' as const }, { kind: 'mlp' as const, hidden: [4], activation: 'relu' as const }]) {
      const job = standardizedTrainingPreset(
        { jobId: 'std-fold', schema, partners: 3, rounds: 2, epsilon: null, encryption: { scheme: 'plain-insecure' }, seed: 3, model },
        stats,
      );
      const r = await simulate({ job, partners: partners() });
      const m = r.manifest;
      const d = m.dataset.featureNames.length;
      const test = parts[0].test;
      const onStandardised = predictProba(sgdModel(m), d, r.params, standardizedRows(m, parts[0]).test.X, test.n);
      const folded = predictProba(sgdModel(m), d, foldStandardization(m, r.params), test.X, test.n);
      for (let i = 0; i < test.n; i++) expect(folded[i]).toBeCloseTo(onStandardised[i], 5);
    }
  });

  it('refuses a standardisation that does not fit the dataset, naming the field', () => {
    const job = standardizedTrainingPreset({ jobId: 'std-bad', schema, partners: 3, epsilon: null, seed: 3 }, stats);
    const bad = (standardize: unknown) => () => {
      const m = manifestOf({ ...job, workload: { kind: 'sgd', params: { standardize } } });
      standardizedRows(m, parts[0]);
    };
    expect(bad({ columns: ['tenure'], mean: [0, 1], std: [1] })).toThrow(/1 columns but 2 means/);
    expect(bad({ columns: ['nope'], mean: [0], std: [1] })).toThrow(/"nope" not a feature/);
    expect(bad({ columns: ['tenure'], mean: [0], std: [0] })).toThrow(/standardize\.std/);
  });
});
