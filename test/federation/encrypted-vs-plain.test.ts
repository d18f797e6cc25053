import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { REAL_QUANTUM } from '../../src/federation/release-grid.ts';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/ckks/index.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import type { EncryptionSpec } from '../../src/federation/manifest.ts';
import { simulate, type SimulationJob, type SimulationResult } from '../../src/federation/simulate.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, runFederation, telcoPartners, type PartnerData } from '../helpers/partners.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';

/**
 * Acceptance: an encrypted (CKKS) and a plaintext run of the same seeded, non-DP job give global
 * models equal within 1e-6 per parameter and the same AUC to 4 decimals. DP jobs are left out on
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
const PARAM_TOLERANCE = 1e-6;

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

  const job = (): SimulationJob => jobPreset({ jobId: 'he-equivalence', schema, partners: 3, rounds: 3, epsilon: null, seed: 7 });
  const run = (encryption: EncryptionSpec): Promise<SimulationResult> =>
    simulate({ job: { ...job(), encryption }, partners: parts.map((p) => ({ name: p.name, train: p.train, test: p.test })) });

  function expectEquivalent(ckks: { params: Float64Array; auc: number }, plain: { params: Float64Array; auc: number }, label: string): number {
    const diff = maxAbsDiff(ckks.params, plain.params);
    measured.push(
      `${label}: max |Δparam| = ${diff.toExponential(3)} over ${ckks.params.length} parameters; AUC ckks ${ckks.auc.toFixed(6)} vs plain ${plain.auc.toFixed(6)}`,
    );
    // The models must have moved away from the shared initial point, or equality would prove nothing.
    expect(plain.auc, `${label}: plaintext AUC`).toBeGreaterThan(0.7);
    expect(diff, `${label}: largest parameter difference between the CKKS and the plaintext model`).toBeLessThanOrEqual(PARAM_TOLERANCE);
    expect(ckks.auc, `${label}: AUC of the CKKS model vs the plaintext model`).toBeCloseTo(plain.auc, 4);
    return diff;
  }

  it('simulate(): the same job, encrypted and in plaintext, gives the same model and AUC', async () => {
    const ckks = await run(DEFAULT_HE_PARAMS);
    const plain = await run(PLAIN);
    expect(ckks.manifest.encryption.scheme).toBe('ckks');
    expect(plain.manifest.encryption.scheme).toBe('plain-insecure');
    // If this fails with a difference around 1e-3 while the pinned-identity test below passes, the
    // cause is simulate() drawing random partner identities (and so training seeds) on every call.
    expectEquivalent({ params: ckks.params, auc: ckks.finalMetrics.auc }, { params: plain.params, auc: plain.finalMetrics.auc }, 'simulate()');
  });

  it('simulate() with pinned partner identities: CKKS changes each parameter by at most 1e-6', async () => {
    identityMode.fixed = true;
    try {
      const plain = await run(PLAIN);
      const plainAgain = await run(PLAIN);
      const ckks = await run(DEFAULT_HE_PARAMS);
      // With identities pinned the job is reproducible bit for bit, so any difference below is CKKS's.
      expect(plainAgain.modelHash).toBe(plain.modelHash);
      expect(ckks.manifest.partners.map((p) => p.keyId)).toEqual(plain.manifest.partners.map((p) => p.keyId));
      const diff = expectEquivalent(
        { params: ckks.params, auc: ckks.finalMetrics.auc },
        { params: plain.params, auc: plain.finalMetrics.auc },
        'simulate(), pinned identities',
      );
      // CKKS is approximate, but every decrypted sum is rounded to the release grid (2⁻²⁰), far above
      // its error: the models agree to within a quantum or two (a value on a rounding boundary).
      expect(diff).toBeLessThanOrEqual(4 * REAL_QUANTUM);
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
        const { signed } = makeJob({ jobId, schema, owner, partners: identities, rounds: 2, encryption, seed: 7 });
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
      const diff = expectEquivalent(
        { params: ckks.finalState.params, auc: ckks.finalMetrics!.auc },
        { params: plain.finalState.params, auc: plain.finalMetrics!.auc },
        'HTTP coordinator',
      );
      expect(diff).toBeLessThanOrEqual(4 * REAL_QUANTUM);
    });
  });
});
