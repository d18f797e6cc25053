import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoordinatorStore } from '../../coordinator/store.ts';
import { FedmarkError } from '../../src/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedmark-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('coordinator store', () => {
  it("keeps a round's sums as one row per named part", () => {
    const store = new CoordinatorStore(join(dir, 'fresh'));
    try {
      store.putPartSum('j', 1, 0, 'update', new Uint8Array([1, 2]));
      store.putPartSum('j', 1, 0, 'grad-hist', new Uint8Array([3]));
      store.putPartSum('j', 1, 0, 'update', new Uint8Array([4, 5, 6]));
      const sums = store.partSums('j', 1, 0);
      expect(Object.keys(sums).sort()).toEqual(['grad-hist', 'update']);
      expect(Array.from(sums.update)).toEqual([4, 5, 6]);
      expect(store.partSums('j', 1, 1)).toEqual({});
    } finally {
      store.close();
    }
    // Reopening a store of this layout is fine.
    new CoordinatorStore(join(dir, 'fresh')).close();
  });

  it('refuses, with a message saying what to do, a data directory written by the earlier layout', () => {
    const old = join(dir, 'old');
    new CoordinatorStore(old).close();
    const db = new Database(join(old, 'coordinator.sqlite'));
    db.pragma('user_version = 0');
    db.close();
    let err: unknown;
    try {
      new CoordinatorStore(old);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FedmarkError);
    expect((err as FedmarkError).code).toBe('STORE_LAYOUT');
    expect((err as Error).message).toMatch(/store layout 1, this build uses 2.*new --data-dir/);
  });
});
