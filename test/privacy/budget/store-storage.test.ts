import { afterEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { BudgetStore } from '../../../src/privacy/budget/store.ts';
import { FedmarkError } from '../../../src/errors.ts';

afterEach(() => {
  vi.restoreAllMocks();
  syncBuiltinESMExports();
});

describe('the budget store on a full disk', () => {
  it('a charge whose write hits ENOSPC throws STORAGE_FULL naming the file, is not counted in memory or on disk, and leaves no temp file', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-budget-disk-')), 'privacy-budget.json');
    const store = BudgetStore.open(file);
    const event = { samplingRate: 0.1, noiseMultiplier: 1.1, steps: 10 };
    store.charge('job-1', 'ds', 1, event, 1e-5);
    const before = fs.readFileSync(file);
    const spent = store.jobEpsilon('job-1', 1e-5);
    const real = fs.renameSync;
    vi.spyOn(fs, 'renameSync')
      .mockImplementationOnce(() => {
        throw Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
      })
      .mockImplementation(real);
    syncBuiltinESMExports();
    let thrown: unknown;
    try {
      store.charge('job-1', 'ds', 2, event, 1e-5);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(FedmarkError);
    expect((thrown as FedmarkError).code).toBe('STORAGE_FULL');
    expect((thrown as FedmarkError).message).toContain(file);
    expect(store.jobEpsilon('job-1', 1e-5)).toBe(spent);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(
      BudgetStore.open(file)
        .charges('job-1')
        .map((c) => c.round),
    ).toEqual([1]);
    expect(fs.readdirSync(path.dirname(file)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
