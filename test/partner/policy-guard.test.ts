import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BudgetStore } from '../../src/privacy/budget-store.ts';
import { parsePolicy } from '../../src/privacy/policy.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { PolicyBudgetGuard } from '../../partner/policy-guard.ts';

const policy = parsePolicy({
  partner: 'bank-a',
  datasetId: 'customers-2026',
  maxEpsilonPerJob: 2,
  lifetimeEpsilon: 3,
  maxDelta: 1e-5,
  allowedColumns: ['age'],
  allowedPurposes: ['churn-model'],
});
const event = { samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50 };
const delta = 1e-5;

describe("the partner's own budget enforcement", () => {
  it('refuses the round that would break the per-job limit, survives a restart, and never double-charges a retried upload', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-guard-'));
    try {
      const path = join(dir, 'budget.json');
      let guard = new PolicyBudgetGuard(policy, BudgetStore.open(path));
      let round = 1;
      for (; ; round++) {
        const verdict = guard.authorize('job-1', round, 0, event, delta);
        if (!verdict.ok) {
          expect(verdict.reason).toMatch(/per-job limit 2/);
          expect(verdict.requestedEpsilon).toBeGreaterThan(0);
          expect(verdict.remainingEpsilon).toBeLessThan(verdict.requestedEpsilon);
          break;
        }
        const charged = guard.charge('job-1', round, 0, event, delta);
        expect(charged.epsilonAfter).toBeCloseTo(verdict.epsilonAfter, 12);
        expect(charged.epsilonAfter).toBeLessThanOrEqual(2);
        // A crash-and-resend of the same round charges nothing more.
        expect(guard.charge('job-1', round, 0, event, delta).epsilonAfter).toBe(charged.epsilonAfter);
        expect(round).toBeLessThan(100);
      }
      const spent = guard.spent('job-1', delta);
      expect(spent).toBeCloseTo(composedEpsilon(Array.from({ length: round - 1 }, () => event), delta), 12);

      // Restart: a new guard over the same file still knows the spend and still refuses.
      guard = new PolicyBudgetGuard(policy, BudgetStore.open(path));
      expect(guard.spent('job-1', delta)).toBe(spent);
      expect(guard.authorize('job-1', round, 0, event, delta).ok).toBe(false);

      // A retried attempt of a round is a separate release: it is charged again.
      const before = guard.spent('job-1', delta);
      guard.charge('job-1', round - 1, 1, event, delta);
      expect(guard.spent('job-1', delta)).toBeGreaterThan(before);

      // The lifetime budget spans jobs on the same dataset.
      const other = guard.authorize('job-2', 1, 0, { ...event, steps: 2000 }, delta);
      expect(other.ok).toBe(false);
      if (!other.ok) expect(other.reason).toMatch(/lifetime|per-job/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('two-person approval of a job', () => {
  it('accepts a job only when two distinct officers named in the policy signed this exact manifest', async () => {
    const { generateIdentity, publicIdentity, signBytes } = await import('../../src/crypto/identity.ts');
    const { approvalPayload, parseManifest, MANIFEST_SCHEMA_VERSION } = await import('../../src/federation/manifest.ts');
    const { jobPreset } = await import('../../src/federation/job-presets.ts');
    const { loadBundledSchema } = await import('../../src/data/bundled.ts');
    const { policyReview } = await import('../../partner/policy-guard.ts');
    const schema = await loadBundledSchema('telco-churn');
    const owner = generateIdentity('owner');
    const partner = generateIdentity('bank-a');
    const mk = (jobId: string) =>
      parseManifest({ ...jobPreset({ jobId, schema, partners: 1, rounds: 2, epsilon: 1 }), schemaVersion: MANIFEST_SCHEMA_VERSION, createdAt: '2026-11-25T00:00:00Z', owner: publicIdentity(owner), partners: [publicIdentity(partner)] });
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
