import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import { BudgetStore } from '../../../src/privacy/budget/store.ts';
import { RdpAccountant, epsilonFor } from '../../../src/privacy/accountant.ts';
import { checkJob, type PartnerPolicy } from '../../../src/privacy/policy.ts';
import { FedmarkError } from '../../../src/errors.ts';

const DELTA = 1e-5;
const round = { samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50 };

function freshPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'fedmark-budget-')), 'budget.json');
}
function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return err instanceof FedmarkError ? err.code : `other: ${(err as Error).message}`;
  }
  return undefined;
}

describe('BudgetStore', () => {
  it('creates the file on open and persists charges across a restart', () => {
    const path = freshPath();
    const s1 = BudgetStore.open(path);
    expect(existsSync(path)).toBe(true);
    s1.charge('job-1', 'ds', 0, round, DELTA);
    const after = s1.charge('job-1', 'ds', 1, round, DELTA);
    const s2 = BudgetStore.open(path); // "restart"
    expect(s2.jobEpsilon('job-1', DELTA)).toBe(after.jobEpsilon);
    expect(s2.lifetimeEpsilon('ds', DELTA)).toBe(after.lifetimeEpsilon);
    expect(s2.charges('job-1').map((c) => c.round)).toEqual([0, 1]);
    // No temp files are left behind by the atomic writes.
    expect(readdirSync(join(path, '..'))).toEqual(['budget.json']);
  });

  it('composes a job with the RDP accountant, not by adding ε', () => {
    const s = BudgetStore.open(freshPath());
    s.charge('j', 'ds', 0, round, DELTA);
    const r = s.charge('j', 'ds', 1, { ...round, samplingRate: 0.05 }, DELTA);
    const acc = new RdpAccountant();
    acc.step(round);
    acc.step({ ...round, samplingRate: 0.05 });
    expect(r.jobEpsilon).toBe(acc.getEpsilon(DELTA).epsilon);
    const added = epsilonFor({ ...round, delta: DELTA }) + epsilonFor({ ...round, samplingRate: 0.05, delta: DELTA });
    expect(r.jobEpsilon).toBeLessThan(added);
  });

  it('lifetime ε is the sum of job ε per dataset (basic composition across jobs)', () => {
    const s = BudgetStore.open(freshPath());
    const a = s.charge('a', 'ds', 0, round, DELTA);
    const b = s.charge('b', 'ds', 0, { ...round, noiseMultiplier: 2 }, DELTA);
    s.charge('c', 'other', 0, round, DELTA);
    expect(b.lifetimeEpsilon).toBeCloseTo(a.jobEpsilon + b.jobEpsilon, 12);
    expect(s.lifetimeEpsilon('other', DELTA)).toBe(a.jobEpsilon);
    expect(s.lifetimeEpsilon('nothing', DELTA)).toBe(0);
  });

  it('re-charging the same round is idempotent, also after a restart; a different event is refused', () => {
    const path = freshPath();
    const s = BudgetStore.open(path);
    const first = s.charge('j', 'ds', 3, round, DELTA);
    const again = s.charge('j', 'ds', 3, round, DELTA);
    expect(again).toEqual(first);
    const reopened = BudgetStore.open(path);
    expect(reopened.charge('j', 'ds', 3, round, DELTA)).toEqual(first);
    expect(reopened.charges('j')).toHaveLength(1);
    expect(codeOf(() => reopened.charge('j', 'ds', 3, { ...round, steps: 51 }, DELTA))).toBe('BUDGET_ROUND_CONFLICT');
    expect(codeOf(() => reopened.charge('j', 'other-ds', 4, round, DELTA))).toBe('BUDGET_DATASET_MISMATCH');
  });

  it('wouldSpend previews without charging', () => {
    const path = freshPath();
    const s = BudgetStore.open(path);
    s.charge('j', 'ds', 0, round, DELTA);
    const before = readFileSync(path, 'utf8');
    const w = s.wouldSpend('j', round, DELTA);
    const r = s.charge('j', 'ds', 1, round, DELTA);
    expect(w).toEqual(r);
    expect(s.wouldSpend('new-job', round, DELTA, 'ds').lifetimeEpsilon).toBeCloseTo(r.lifetimeEpsilon + epsilonFor({ ...round, delta: DELTA }), 12);
    expect(codeOf(() => s.wouldSpend('new-job', round, DELTA))).toBe('BUDGET_UNKNOWN_JOB');
    expect(before).not.toBe(readFileSync(path, 'utf8'));
  });

  it('with the partner policy: refuses the round that would break maxEpsilonPerJob or the lifetime budget', () => {
    const policy: PartnerPolicy = {
      partner: 'p',
      datasetId: 'ds',
      maxEpsilonPerJob: 1.5,
      lifetimeEpsilon: 2.5,
      maxDelta: 1e-5,
      allowedColumns: ['x'],
      allowedPurposes: ['churn'],
    };
    const path = freshPath();
    const store = BudgetStore.open(path);
    const ev = { samplingRate: 0.02, noiseMultiplier: 1.5, steps: 20 }; // ≈0.54 for one round, ≈1.5 for 25
    const runJob = (jobId: string): number => {
      let charged = 0;
      for (let r = 0; r < 1000; r++) {
        const w = store.wouldSpend(jobId, ev, DELTA, policy.datasetId);
        if (w.jobEpsilon > policy.maxEpsilonPerJob || w.lifetimeEpsilon > policy.lifetimeEpsilon) break;
        store.charge(jobId, policy.datasetId, r, ev, DELTA);
        charged++;
      }
      return charged;
    };
    const n1 = runJob('job-1');
    expect(n1).toBeGreaterThan(0);
    expect(store.jobEpsilon('job-1', DELTA)).toBeLessThanOrEqual(policy.maxEpsilonPerJob);
    expect(store.wouldSpend('job-1', ev, DELTA).jobEpsilon).toBeGreaterThan(policy.maxEpsilonPerJob);
    // A second job only gets what is left of the lifetime budget, even after a restart.
    const reopened = BudgetStore.open(path);
    const spent = reopened.lifetimeEpsilon('ds', DELTA);
    expect(checkJob(policy, { purpose: 'churn', columns: ['x'], targetEpsilon: 1.5, delta: 1e-6, datasetRows: 1000 }, spent).ok).toBe(false);
    const n2 = runJob('job-2');
    expect(n2).toBeGreaterThan(0);
    expect(n2).toBeLessThan(n1);
    expect(store.lifetimeEpsilon('ds', DELTA)).toBeLessThanOrEqual(policy.lifetimeEpsilon);
  });

  it('refuses a corrupt store with a clear error and never resets it', () => {
    const path = freshPath();
    const s = BudgetStore.open(path);
    s.charge('j', 'ds', 0, round, DELTA);
    const good = readFileSync(path, 'utf8');

    writeFileSync(path, good.slice(0, good.length / 2)); // torn write
    expect(codeOf(() => BudgetStore.open(path))).toBe('BUDGET_STORE_CORRUPT');
    expect(() => BudgetStore.open(path)).toThrow(/never reset/);
    expect(readFileSync(path, 'utf8')).toBe(good.slice(0, good.length / 2));

    writeFileSync(path, good.replace('"steps": 50', '"steps": 5')); // hand-edited to spend less
    expect(() => BudgetStore.open(path)).toThrow(/checksum/);

    writeFileSync(path, '');
    expect(codeOf(() => BudgetStore.open(path))).toBe('BUDGET_STORE_CORRUPT');

    writeFileSync(path, JSON.stringify({ ...JSON.parse(good), version: 99 }));
    expect(codeOf(() => BudgetStore.open(path))).toBe('BUDGET_STORE_CORRUPT');

    writeFileSync(path, good);
    expect(BudgetStore.open(path).jobEpsilon('j', DELTA)).toBeGreaterThan(0);
  });

  it('ignores a temp file left by a writer killed before its rename', () => {
    const path = freshPath();
    const s = BudgetStore.open(path);
    const r = s.charge('j', 'ds', 0, round, DELTA);
    writeFileSync(join(path, '..', '.budget.json.999.deadbeef.tmp'), '{"format": "fedmark-bud');
    expect(BudgetStore.open(path).jobEpsilon('j', DELTA)).toBe(r.jobEpsilon);
  });

  it('validates its arguments', () => {
    const s = BudgetStore.open(freshPath());
    expect(codeOf(() => s.charge('', 'ds', 0, round, DELTA))).toBe('BUDGET_BAD_ARGUMENT');
    expect(codeOf(() => s.charge('j', 'ds', -1, round, DELTA))).toBe('BUDGET_BAD_ARGUMENT');
    expect(codeOf(() => s.charge('j', 'ds', 0, { ...round, samplingRate: 2 }, DELTA))).toBe('DP_BAD_EVENT');
    expect(codeOf(() => s.jobEpsilon('j', 0))).toBe('DP_BAD_DELTA');
  });
});
