import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BudgetStore } from '../../../src/privacy/budget/store.ts';
import { parsePolicy } from '../../../src/privacy/policy.ts';
import { composedEpsilon } from '../../../src/privacy/accountant.ts';
import { PolicyBudgetGuard } from '../../../src/privacy/budget/policy-guard.ts';

const policy = parsePolicy({
  partner: 'bank-a',
  datasetId: 'customers-2026',
  maxEpsilonPerJob: 2,
  lifetimeEpsilon: 3,
  maxDelta: 1e-5,
  allowedColumns: ['age'],
  allowedPurposes: ['churn-model'],
});
const event = { label: 'update', samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50, sensitivity: 1 };
const releases = [event];
const delta = 1e-5;

describe("the partner's own budget enforcement", () => {
  it('refuses the round that would break the per-job limit, survives a restart, and never double-charges a retried upload', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmark-guard-'));
    try {
      const path = join(dir, 'budget.json');
      let guard = new PolicyBudgetGuard(policy, BudgetStore.open(path));
      let round = 1;
      for (; ; round++) {
        const verdict = guard.authorize('job-1', round, 0, releases, delta);
        if (!verdict.ok) {
          expect(verdict.reason).toMatch(/per-job limit 2/);
          expect(verdict.requestedEpsilon).toBeGreaterThan(0);
          expect(verdict.remainingEpsilon).toBeLessThan(verdict.requestedEpsilon);
          break;
        }
        const charged = guard.charge('job-1', round, 0, releases, delta);
        expect(charged.epsilonAfter).toBeCloseTo(verdict.epsilonAfter, 12);
        expect(charged.epsilonAfter).toBeLessThanOrEqual(2);
        // A crash-and-resend of the same round charges nothing more.
        expect(guard.charge('job-1', round, 0, releases, delta).epsilonAfter).toBe(charged.epsilonAfter);
        expect(round).toBeLessThan(100);
      }
      const spent = guard.spent('job-1', delta);
      expect(spent).toBeCloseTo(
        composedEpsilon(
          Array.from({ length: round - 1 }, () => event),
          delta,
        ),
        12,
      );

      // Restart: a new guard over the same file still knows the spend and still refuses.
      guard = new PolicyBudgetGuard(policy, BudgetStore.open(path));
      expect(guard.spent('job-1', delta)).toBe(spent);
      expect(guard.authorize('job-1', round, 0, releases, delta).ok).toBe(false);

      // A retried attempt of a round is a separate release: it is charged again.
      const before = guard.spent('job-1', delta);
      guard.charge('job-1', round - 1, 1, releases, delta);
      expect(guard.spent('job-1', delta)).toBeGreaterThan(before);

      // The lifetime budget spans jobs on the same dataset.
      const other = guard.authorize('job-2', 1, 0, [{ ...event, steps: 2000 }], delta);
      expect(other.ok).toBe(false);
      if (!other.ok) expect(other.reason).toMatch(/lifetime|per-job/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
