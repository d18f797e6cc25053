import { describe, expect, it } from 'vitest';
import { onGrid } from '../../src/federation/aggregation.ts';
import { REAL_QUANTUM, toGrid, vectorToGrid } from '../../src/federation/release-grid.ts';
import type { PartSpec } from '../../src/federation/workload.ts';

const onIt = (x: number, q = REAL_QUANTUM) => Number.isInteger(x / q);

describe('the release grid of decrypted values', () => {
  it('is at least 2⁻²⁰ and binary, so sums of grid values stay on the grid exactly', () => {
    expect(REAL_QUANTUM).toBeGreaterThanOrEqual(2 ** -20);
    expect(Math.log2(REAL_QUANTUM)).toBe(Math.round(Math.log2(REAL_QUANTUM)));
    const a = toGrid(0.123456789);
    const b = toGrid(-7.000000321);
    expect(onIt(a) && onIt(b) && onIt(a + b)).toBe(true);
    expect(toGrid(a + b)).toBe(a + b);
  });

  it('rounds to the nearest multiple, symmetrically, and removes an error far below the quantum', () => {
    expect(toGrid(0.4 * REAL_QUANTUM)).toBe(0);
    expect(toGrid(0.6 * REAL_QUANTUM)).toBe(REAL_QUANTUM);
    expect(toGrid(-0.6 * REAL_QUANTUM)).toBe(-REAL_QUANTUM);
    // A CKKS-like decryption error of 1e-8 on values already on the grid disappears.
    const exact = Float64Array.from([3 * REAL_QUANTUM, -12345 * REAL_QUANTUM, 0.25]);
    const noisy = exact.map((x, i) => x + (i % 2 ? 1e-8 : -1e-8));
    expect(Array.from(vectorToGrid(noisy))).toEqual(Array.from(exact));
    expect(Object.is(vectorToGrid(Float64Array.from([-1e-12]))[0], 0)).toBe(true);
  });

  it('opens counts as integers, the real slots of a count part and real parts to the quantum', () => {
    const hist: PartSpec = { name: 'evaluation', length: 5, domain: 'count', realSlots: [[2, 4]], bound: null, use: 'report' };
    const v = onGrid(hist, Float64Array.from([3.0000002, 4.49, 10.123456789, -0.7, 6.51]));
    expect(Array.from(v.subarray(0, 2))).toEqual([3, 4]);
    expect(onIt(v[2]) && Math.abs(v[2] - 10.123456789) <= REAL_QUANTUM / 2).toBe(true);
    expect(onIt(v[3])).toBe(true);
    expect(v[4]).toBe(7);
    const real: PartSpec = { name: 'update', length: 2, domain: 'real', bound: null, use: 'state' };
    expect(Array.from(onGrid(real, Float64Array.from([0.1, 2.0000000001]))).every((x) => onIt(x))).toBe(true);
  });
});
