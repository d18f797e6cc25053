import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BudgetStore } from '../../src/privacy/budget/store.ts';
import { parsePolicy } from '../../src/privacy/policy.ts';

describe('two-person approval of a job', () => {
  it('accepts a job only when two distinct officers named in the policy signed this exact manifest', async () => {
    const { generateIdentity, publicIdentity, signBytes } = await import('../../src/crypto/identity.ts');
    const { approvalPayload, parseManifest, MANIFEST_SCHEMA_VERSION } = await import('../../src/federation/manifest.ts');
    const { jobPreset } = await import('../../src/federation/job-presets.ts');
    const { loadBundledSchema } = await import('../../src/data/bundled.ts');
    const { policyReview } = await import('../../partner/policy-review.ts');
    const schema = await loadBundledSchema('telco-churn');
    const owner = generateIdentity('owner');
    const partner = generateIdentity('bank-a');
    const other = generateIdentity('telco-b');
    const mk = (jobId: string) =>
      parseManifest({
        ...jobPreset({ jobId, schema, partners: 2, rounds: 2, epsilon: 1 }),
        schemaVersion: MANIFEST_SCHEMA_VERSION,
        createdAt: '2026-11-25T00:00:00Z',
        owner: publicIdentity(owner),
        partners: [publicIdentity(partner), publicIdentity(other)],
      });
    const manifest = mk('job-approved');
    const [alice, bob, mallory] = ['alice', 'bob', 'mallory'].map((n) => generateIdentity(n));
    const dual = parsePolicy({
      partner: 'bank-a',
      datasetId: 'd1',
      maxEpsilonPerJob: 2,
      lifetimeEpsilon: 10,
      maxDelta: 1e-4,
      allowedColumns: manifest.dataset.columns,
      allowedPurposes: [manifest.purpose],
      dualAuthorization: { officers: [alice, bob].map((o) => ({ name: o.name, signPublicKey: publicIdentity(o).signPublicKey })), required: 2 },
    });
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-dual-'));
    try {
      const store = BudgetStore.open(join(dir, 'b.json'));
      const sign = (who: typeof alice, m = manifest) => ({ officer: who.name, signature: signBytes(approvalPayload(m), who) });
      expect(policyReview(dual, manifest, 5000, store, [sign(alice), sign(bob)])).toEqual([]);
      expect(policyReview(dual, manifest, 5000, store, [sign(alice)]).join()).toMatch(/two-person approval missing/);
      expect(policyReview(dual, manifest, 5000, store, [sign(alice), sign(alice)]).join()).toMatch(/two-person approval missing/);
      expect(policyReview(dual, manifest, 5000, store, [sign(alice), { officer: 'bob', signature: sign(mallory).signature }]).join()).toMatch(/two-person/);
      // An approval of another job cannot be reused.
      expect(policyReview(dual, manifest, 5000, store, [sign(alice), sign(bob, mk('other-job'))]).join()).toMatch(/two-person/);
      // δ must be at most 1/n: with 200,000 rows, δ = 1e-5 is too large.
      expect(policyReview(dual, manifest, 200_000, store, [sign(alice), sign(bob)]).join()).toMatch(/1\/n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
