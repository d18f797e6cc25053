import { describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import {
  partitionByColumn,
  partitionByColumnGroups,
  partitionDirichlet,
  partitionIid,
  trainTestSplit,
} from '../../src/data/partition.ts';
import { createRng } from '../../src/util/rng.ts';

/** Every index in 0..n−1 appears in exactly one part, each part ascending. */
function expectExactCover(parts: Int32Array[], n: number): void {
  const seen = new Uint8Array(n);
  let total = 0;
  let problems = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      if (p[i] < 0 || p[i] >= n || (i > 0 && p[i] <= p[i - 1])) problems++;
      else seen[p[i]]++;
    }
    total += p.length;
  }
  expect(problems).toBe(0);
  expect(total).toBe(n);
  expect(seen.every((s) => s === 1)).toBe(true);
}

function labels(n: number, rate: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => (rng.next() < rate ? 1 : 0));
}

const positiveRate = (part: Int32Array, y: Float32Array) => part.reduce((a, i) => a + y[i], 0) / part.length;

describe('partitionIid', () => {
  it('is seeded, covers every row once and balances sizes', () => {
    const a = partitionIid(1003, 4, 42);
    expectExactCover(a, 1003);
    expect(a.map((p) => p.length).sort()).toEqual([250, 251, 251, 251]);
    expect(partitionIid(1003, 4, 42)).toEqual(a);
    expect(partitionIid(1003, 4, 43)).not.toEqual(a);
  });

  it('rejects impossible requests', () => {
    expect(() => partitionIid(3, 4, 1)).toThrow(FedmarkError);
    expect(() => partitionIid(10, 0, 1)).toThrow(/positive integer/);
  });
});

describe('partitionByColumn', () => {
  const values = ['north', 'south', 'north', 'east', 'west', 'north', 'south', 'east', 'north', 'west', 'west', 'center'];

  it('makes every group its own partner when k is omitted', () => {
    const { partitions, groups } = partitionByColumnGroups(values);
    expect(groups).toEqual([['center'], ['east'], ['north'], ['south'], ['west']]);
    expect(Array.from(partitions[2])).toEqual([0, 2, 5, 8]);
    expectExactCover(partitions, values.length);
  });

  it('assigns groups to fewer partners deterministically, balancing size', () => {
    // sizes north 4, west 3, east 2, south 2, center 1; largest first to the lightest partner:
    // north→A, west→B, east→C, south→C (2 < 3), center→B (3 < 4) → 4, 4, 4
    const { partitions, groups } = partitionByColumnGroups(values, 3);
    expect(groups).toEqual([['center', 'west'], ['east', 'south'], ['north']]);
    expect(partitions.map((p) => p.length)).toEqual([4, 4, 4]);
    expectExactCover(partitions, values.length);
    expect(partitionByColumn(values, 3)).toEqual(partitions);
    // Order of rows does not change which groups end up together.
    const reversed = partitionByColumnGroups([...values].reverse(), 3);
    expect(reversed.groups).toEqual(groups);
  });

  it('refuses more partners than groups', () => {
    expect(() => partitionByColumn(values, 6)).toThrow(/non-empty share of 5 distinct/);
  });
});

describe('partitionDirichlet', () => {
  const y = labels(20_000, 0.2, 5);

  it('is seeded and covers every row once', () => {
    const a = partitionDirichlet(y, 8, 0.5, 9);
    expectExactCover(a, y.length);
    expect(partitionDirichlet(y, 8, 0.5, 9)).toEqual(a);
    expect(partitionDirichlet(y, 8, 0.5, 10)).not.toEqual(a);
  });

  it('with small alpha skews base rates visibly; with large alpha stays near IID', () => {
    const spread = (alpha: number) => {
      const rates = partitionDirichlet(y, 10, alpha, 3).map((p) => positiveRate(p, y));
      return Math.max(...rates) - Math.min(...rates);
    };
    expect(spread(0.1)).toBeGreaterThan(0.4);
    expect(spread(1000)).toBeLessThan(0.05);
  });

  it('keeps every partner non-empty with both classes even at tiny alpha', () => {
    for (const seed of [1, 2, 3]) {
      const parts = partitionDirichlet(y, 20, 0.01, seed);
      for (const p of parts) {
        const r = positiveRate(p, y);
        expect(p.length).toBeGreaterThan(1);
        expect(r).toBeGreaterThan(0);
        expect(r).toBeLessThan(1);
      }
    }
  });

  it('fills empty partners when classes are too small to reserve for everyone', () => {
    const tiny = Float32Array.from([1, 0, 0, 1, 0]);
    const parts = partitionDirichlet(tiny, 4, 0.05, 1);
    expectExactCover(parts, 5);
    for (const p of parts) expect(p.length).toBeGreaterThan(0);
    expect(() => partitionDirichlet(tiny, 2, 0, 1)).toThrow(/alpha/);
  });
});

describe('trainTestSplit', () => {
  it('stratifies, is seeded and covers every row once', () => {
    const y = labels(10_000, 0.117, 8);
    const s = trainTestSplit(y, 0.2, 1);
    expectExactCover([s.train, s.test], y.length);
    const pos = y.reduce((a, b) => a + b, 0);
    expect(s.test.reduce((a, i) => a + y[i], 0)).toBe(Math.round(pos * 0.2));
    expect(s.test.length).toBe(Math.round(pos * 0.2) + Math.round((y.length - pos) * 0.2));
    expect(trainTestSplit(y, 0.2, 1)).toEqual(s);
    expect(trainTestSplit(y, 0.2, 2)).not.toEqual(s);
  });

  it('splits a plain count uniformly and rejects bad fractions', () => {
    const s = trainTestSplit(101, 0.3, 4);
    expect(s.test.length).toBe(30);
    expectExactCover([s.train, s.test], 101);
    expect(() => trainTestSplit(10, 1, 1)).toThrow(/\(0, 1\)/);
    expect(() => trainTestSplit(2, 0.1, 1)).toThrow(/leaves one side empty/);
  });
});
