import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { REAL_QUANTUM, toGrid } from '../../src/federation/release-grid.ts';
import { WEIGHT_UNIT } from '../../src/federation/workloads/sgd/strategy.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/ckks/index.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import type { EncryptionSpec } from '../../src/federation/manifest.ts';
import { simulate, type SimulationJob, type SimulationResult } from '../../src/federation/simulate.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, runFederation, telcoPartners, type PartnerData } from '../helpers/partners.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';

/**
 * Acceptance: an encrypted (CKKS) and a plaintext run of the same seeded, non-DP job give global
 * models equal to within what one quantum of each round's released sum can change (ckksTolerance,
 * about 1.5e-5 per round here; a run that hits no rounding boundary is equal bit for bit) and the
 * same AUC to 4 decimals. That each opened CKKS sum is within one quantum of the exact sum is
 * asserted directly in secure-sum.test.ts. DP jobs are left out on
 * purpose: their noise comes from the CSPRNG and is not reproducible by design.
 */

// simulate() draws fresh identities on every call, and a partner's training seed is derived from its
// key id. To measure what CKKS itself changes, one test pins the identities simulate() creates; the
// switch is off for every other test so they see the library exactly as users do.
const identityMode = vi.hoisted(() => ({ fixed: false }));
vi.mock('../../src/crypto/identity.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/crypto/identity.ts')>();
  const { deterministicIdentity } = await import('../helpers/identities.ts');
  return { ...original, generateIdentity: (name: string) => (identityMode.fixed ? deterministicIdentity(name) : original.generateIdentity(name)) };
});

const PLAIN: EncryptionSpec = { scheme: 'plain-insecure' };

/**
 * Local training for these tests: plain SGD with lr 0.1, batch 64 (the non-DP preset before it moved
 * to lr 0.5, batch 32). Why not the preset: CKKS's error (≈1e-9) is far below the release quantum, yet
 * a decrypted sum that falls within that error of a rounding boundary rounds one quantum the other way,
 * so a round's sum may differ from the plaintext one by one quantum in a slot. The preset's local step
 * (lr·L > 2 on this data) is expansive: that one-quantum difference grows through the later rounds'
 * training and the comparison below would bound the preset's chaos, not CKKS. With this step the map
 * from a round's model to the next is non-expansive, so each round adds at most what its own sum adds.
 */
const NON_EXPANSIVE_TRAINING = { epochs: 1, batchSize: 64, learningRate: 0.1, optimizer: 'sgd', l2: 0 } as const satisfies JobManifest['localTraining'];

/**
 * What CKKS may change in the final model: per round at most one quantum in each slot of the summed
 * update, which the server step divides by the summed weight Σ w (w = rows / WEIGHT_UNIT on the grid;
 * here ≈ 0.07, so one quantum of the sum is ≈ 14 quanta of the model — the 1.4e-5 a CI run once saw),
 * plus one quantum where the new model is rounded back onto the grid. A CKKS sum off by two quanta or
 * more in a round exceeds this.
 */
function ckksTolerance(rounds: number, trainRows: number[]): number {
  const totalWeight = trainRows.reduce((s, n) => s + toGrid(n / WEIGHT_UNIT), 0);
  return rounds * (REAL_QUANTUM / totalWeight + REAL_QUANTUM);
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe('CKKS and plaintext aggregation of the same seeded job (telco sample, non-DP)', () => {
  let schema: DatasetSchema;
  let schemaH: string;
  let parts: PartnerData[];
  const measured: string[] = [];

  beforeAll(async () => {
    ({ schema, schemaHash: schemaH, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 300 }));
  });

  afterAll(() => {
    // One line per measurement, for the record of what "equal" meant in this run.
    for (const line of measured) console.info(`[encrypted-vs-plain] ${line}`);
  });

  const ROUNDS = 3;
  const job = (): SimulationJob => ({
    ...jobPreset({ jobId: 'he-equivalence', schema, partners: 3, rounds: ROUNDS, epsilon: null, seed: 7 }),
    localTraining: NON_EXPANSIVE_TRAINING,
  });
  const run = (encryption: EncryptionSpec): Promise<SimulationResult> =>
    simulate({ job: { ...job(), encryption }, partners: parts.map((p) => ({ name: p.name, train: p.train, test: p.test })) });

  function expectEquivalent(ckks: { params: Float64Array; auc: number }, plain: { params: Float64Array; auc: number }, label: string, rounds: number): void {
    const tolerance = ckksTolerance(
      rounds,
      parts.map((p) => p.train.n),
    );
    const diff = maxAbsDiff(ckks.params, plain.params);
    measured.push(
      `${label}: max |Δparam| = ${diff.toExponential(3)} (bound ${tolerance.toExponential(3)}) over ${ckks.params.length} parameters; AUC ckks ${ckks.auc.toFixed(6)} vs plain ${plain.auc.toFixed(6)}`,
    );
    // The models must have moved away from the shared initial point, or equality would prove nothing.
    expect(plain.auc, `${label}: plaintext AUC`).toBeGreaterThan(0.7);
    expect(diff, `${label}: largest parameter difference between the CKKS and the plaintext model`).toBeLessThanOrEqual(tolerance);
    expect(ckks.auc, `${label}: AUC of the CKKS model vs the plaintext model`).toBeCloseTo(plain.auc, 4);
  }

  it('simulate(): the same job, encrypted and in plaintext, gives the same model and AUC', async () => {
    const ckks = await run(DEFAULT_HE_PARAMS);
    const plain = await run(PLAIN);
    expect(ckks.manifest.encryption.scheme).toBe('ckks');
    expect(plain.manifest.encryption.scheme).toBe('plain-insecure');
    // If this fails with a difference around 1e-3 while the pinned-identity test below passes, the
    // cause is simulate() drawing random partner identities (and so training seeds) on every call.
    expectEquivalent({ params: ckks.params, auc: ckks.finalMetrics.auc }, { params: plain.params, auc: plain.finalMetrics.auc }, 'simulate()', ROUNDS);
  });

  it('simulate() with pinned partner identities: CKKS changes each parameter by at most one released quantum per round', async () => {
    identityMode.fixed = true;
    try {
      const plain = await run(PLAIN);
      const plainAgain = await run(PLAIN);
      const ckks = await run(DEFAULT_HE_PARAMS);
      // With identities pinned the job is reproducible bit for bit, so any difference below is CKKS's.
      expect(plainAgain.modelHash).toBe(plain.modelHash);
      expect(ckks.manifest.partners.map((p) => p.keyId)).toEqual(plain.manifest.partners.map((p) => p.keyId));
      expectEquivalent(
        { params: ckks.params, auc: ckks.finalMetrics.auc },
        { params: plain.params, auc: plain.finalMetrics.auc },
        'simulate(), pinned identities',
        ROUNDS,
      );
      // The encrypted path was taken: ciphertexts, not 8-byte floats, went over the wire.
      expect(ckks.wireBytes.perParameter).toBeGreaterThan(plain.wireBytes.perParameter);
      for (const [i, r] of ckks.rounds.entries()) expect(r.metrics.auc, `round ${r.round} AUC`).toBeCloseTo(plain.rounds[i].metrics.auc, 4);
    } finally {
      identityMode.fixed = false;
    }
  });

  describe('through the real coordinator over HTTP', () => {
    let coord: TestCoordinator;

    beforeAll(async () => {
      coord = await startTestCoordinator();
    });
    afterAll(async () => {
      await coord?.close();
    });

    it('the same identities and seed give the same model whether the coordinator adds ciphertexts or plaintexts', async () => {
      const owner = makeIdentities(['owner'])[0];
      const identities = makeIdentities(['bank-a', 'telco-b', 'retail-c']);
      const runJob = async (jobId: string, encryption: EncryptionSpec) => {
        // Two rounds keep the run short; the simulate() tests above cover three.
        const { signed } = makeJob({ jobId, schema, owner, partners: identities, rounds: 2, encryption, seed: 7, localTraining: NON_EXPANSIVE_TRAINING });
        const res = await runFederation({ url: coord.url, owner, identities, signed, parts, schemaHash: schemaH, stateDir: coord.dir });
        expect(res.owner.state, `${jobId}: ${res.owner.reason}`).toBe('completed');
        for (const n of res.nodes) {
          expect(n.state).toBe('completed');
          expect(n.rounds).toBe(2);
          expect(n.modelHash).toBe(res.owner.modelHash);
        }
        return res.owner;
      };
      const ckks = await runJob('he-eq-ckks', DEFAULT_HE_PARAMS);
      const plain = await runJob('he-eq-plain', PLAIN);
      expect(ckks.secretKey?.length ?? 0).toBeGreaterThan(0);
      expectEquivalent(
        { params: ckks.finalState.params, auc: ckks.finalMetrics!.auc },
        { params: plain.finalState.params, auc: plain.finalMetrics!.auc },
        'HTTP coordinator',
        2,
      );
    });
  });
});
