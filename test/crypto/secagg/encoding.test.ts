import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MIN_FRACTION_BITS,
  decodeSums,
  encodeValues,
  encodingPlanSchema,
  limbBitsFor,
  planEncoding,
  quantisationErrorBound,
  type EncodingPlan,
} from '../../../src/crypto/secagg/index.ts';
import { expectCode, seededRandom, sumMod } from './helpers.ts';

/** The default BFV plain modulus (a 40-bit batching prime for N = 8192) and its noise-bound summands. */
const T = 1099511480321;
const MAX_PARTNERS = 8001;

/** n identical copies summed mod t: the worst case of n partners all at the same extreme. */
function timesN(v: Float64Array, n: number, t: number): Float64Array {
  return Float64Array.from(v, (x) => Number((BigInt(x) * BigInt(n)) % BigInt(t)));
}

describe('encoding plan', () => {
  it('gives reals as many fraction bits as one limb holds for the declared summands', () => {
    const plan = planEncoding([{ name: 'update', length: 10, kind: 'real', maxAbs: 1 }], T, 10);
    const p = plan.parts[0];
    expect(p.limbs).toBe(1);
    const fits = (f: number) => 10 * 2 * Math.ceil(2 ** f) <= T - 1;
    expect(fits(p.fractionBits)).toBe(true);
    expect(fits(p.fractionBits + 1)).toBe(false);
    expect(p.fractionBits).toBe(35);
  });

  it('a partner with 10^8 rows in the largest federation the HE parameters allow fits (issue 18): counts split into limbs', () => {
    const plan = planEncoding([{ name: 'rows', length: 3, kind: 'count', maxAbs: 1e8 }], T, MAX_PARTNERS);
    const p = plan.parts[0];
    // 8001 · 2·10^8 > t: one 40-bit slot cannot hold the sum, two limbs can.
    expect(MAX_PARTNERS * 2 * 1e8).toBeGreaterThan(T);
    expect(p.limbs).toBe(2);
    expect(MAX_PARTNERS * (2 ** p.limbBits - 1)).toBeLessThanOrEqual(T - 1);
    const v = Float64Array.from([1e8, -1e8, 12345678]);
    const enc = encodeValues(plan, { rows: v });
    // Every partner at the same value: the worst case for wrap-around. No slot reaches t…
    const sum = timesN(enc, MAX_PARTNERS, T);
    for (let i = 0; i < sum.length; i++) expect(sum[i]).toBe(enc[i] * MAX_PARTNERS);
    // …and the decoded sums are exact.
    expect(Array.from(decodeSums(plan, sum, MAX_PARTNERS).rows)).toEqual([1e8 * MAX_PARTNERS, -1e8 * MAX_PARTNERS, 12345678 * MAX_PARTNERS]);
  });

  it('with one limb, a federation of 64 partners of 10^8 rows fits directly', () => {
    const plan = planEncoding([{ name: 'rows', length: 1, kind: 'count', maxAbs: 1e8 }], T, 64);
    expect(plan.parts[0].limbs).toBe(1);
  });

  it('reals too wide for one limb keep the requested precision in several limbs, and decode exactly', () => {
    const plan = planEncoding([{ name: 'w', length: 2, kind: 'real', maxAbs: 1e6, minFractionBits: 24 }], T, 1000);
    const p = plan.parts[0];
    expect(p.fractionBits).toBe(24);
    expect(p.limbs).toBeGreaterThan(1);
    const enc = encodeValues(plan, { w: Float64Array.from([1e6, -0.5]) });
    const sum = timesN(enc, 1000, T);
    const out = decodeSums(plan, sum, 1000).w;
    expect(out[0]).toBe(1e9);
    expect(out[1]).toBe(-500);
  });

  it('the sum of maxSummands partners at +bound and at −bound stays inside (−t/2, t/2): no wrap at the boundary', () => {
    for (const n of [2, 10, 64, 1000]) {
      const plan = planEncoding([{ name: 'x', length: 2, kind: 'real', maxAbs: 3.5 }], T, n);
      const enc = encodeValues(plan, { x: Float64Array.from([3.5, -3.5]) });
      const sum = timesN(enc, n, T);
      const out = decodeSums(plan, sum, n).x;
      expect(out[0]).toBe(3.5 * n);
      expect(out[1]).toBe(-3.5 * n);
    }
  });

  it('refuses values beyond the declared bound, NaN, non-integer counts and undeclared parts', () => {
    const plan = planEncoding(
      [
        { name: 'x', length: 3, kind: 'real', maxAbs: 2 },
        { name: 'c', length: 1, kind: 'count', maxAbs: 10 },
      ],
      T,
      10,
    );
    const ok = { x: Float64Array.from([2, -2, 0]), c: Float64Array.from([10]) };
    expect(encodeValues(plan, ok).length).toBe(plan.totalSlots);
    const over = expectCode(() => encodeValues(plan, { ...ok, x: Float64Array.from([0, 2.0000001, 0]) }), 'SECAGG_VALUE_OUT_OF_RANGE');
    expect(over.message).toMatch(/part x: value 2.0000001 at index 1 exceeds the declared bound ±2/);
    expectCode(() => encodeValues(plan, { ...ok, x: Float64Array.from([0, Number.NaN, 0]) }), 'SECAGG_VALUE_OUT_OF_RANGE');
    expectCode(() => encodeValues(plan, { ...ok, c: Float64Array.from([11]) }), 'SECAGG_VALUE_OUT_OF_RANGE');
    expectCode(() => encodeValues(plan, { ...ok, c: Float64Array.from([2.5]) }), 'SECAGG_VALUE_OUT_OF_RANGE');
    expectCode(() => encodeValues(plan, { ...ok, y: new Float64Array(1) }), 'SECAGG_BAD_INPUT');
    expectCode(() => encodeValues(plan, { x: new Float64Array(2), c: new Float64Array(1) }), 'SECAGG_BAD_INPUT');
  });

  it('refuses, before anything runs, plans that cannot fit', () => {
    expectCode(() => planEncoding([{ name: 'x', length: 1, kind: 'real', maxAbs: 2 ** 40, minFractionBits: 16 }], T, 10), 'SECAGG_ENCODING_DOES_NOT_FIT');
    expectCode(() => planEncoding([{ name: 'x', length: 1, kind: 'count', maxAbs: 1.5 }], T, 10), 'SECAGG_ENCODING_DOES_NOT_FIT');
    expectCode(() => planEncoding([{ name: 'x', length: 1, kind: 'real', maxAbs: 1 }], 7, 7), 'SECAGG_ENCODING_DOES_NOT_FIT');
    expectCode(
      () =>
        planEncoding(
          [
            { name: 'x', length: 1, kind: 'real', maxAbs: 1 },
            { name: 'x', length: 1, kind: 'real', maxAbs: 1 },
          ],
          T,
          10,
        ),
      'SECAGG_ENCODING_DOES_NOT_FIT',
    );
    expectCode(() => planEncoding([], T, 10), 'SECAGG_ENCODING_DOES_NOT_FIT');
    expect(limbBitsFor(T, 1)).toBe(39);
  });

  it('refuses to decode a vector more than `summands` partners could produce', () => {
    const plan = planEncoding([{ name: 'x', length: 1, kind: 'real', maxAbs: 1 }], T, 10);
    const enc = encodeValues(plan, { x: Float64Array.from([1]) });
    expect(decodeSums(plan, timesN(enc, 3, T), 3).x[0]).toBe(3);
    expectCode(() => decodeSums(plan, timesN(enc, 3, T), 2), 'SECAGG_DECODE_OUT_OF_RANGE');
  });
});

describe('stochastic rounding', () => {
  /** A plan with a coarse grid (f = 2), so rounding is visible. */
  const coarse: EncodingPlan = encodingPlanSchema.parse({
    format: 'fedmark-encoding-1',
    plainModulus: T,
    maxSummands: 10,
    parts: [{ name: 'x', length: 200_000, kind: 'real', maxAbs: 1, fractionBits: 2, offset: 4, limbs: 1, limbBits: 4, firstSlot: 0 }],
    totalSlots: 200_000,
  });

  it('is unbiased, and every value lands on one of the two neighbouring grid points', () => {
    const x = 0.3; // 0.3·4 = 1.2: 1 with probability 0.8, 2 with probability 0.2
    const enc = encodeValues(coarse, { x: new Float64Array(200_000).fill(x) });
    let sum = 0;
    for (const u of enc) {
      const q = u - 4;
      expect(q === 1 || q === 2).toBe(true);
      sum += q / 4;
    }
    const mean = sum / enc.length;
    // std of one rounded value: 0.25·√(0.2·0.8) = 0.1; of the mean: 0.1/√200000 ≈ 2.2e-4.
    expect(Math.abs(mean - x)).toBeLessThan(5 * 2.3e-4);
  });

  it('the error of a decoded sum of n partners stays within n·2^-f and its spread matches √n·2^-f/2', () => {
    const n = 9;
    const L = 20_000;
    const rand = seededRandom('sr-error');
    const xs = Array.from({ length: n }, (_, p) => Float64Array.from({ length: L }, (_, i) => Math.sin(i * 0.37 + p)));
    const plan: EncodingPlan = { ...coarse, parts: [{ ...coarse.parts[0], length: L }], totalSlots: L };
    const sums = decodeSums(
      plan,
      sumMod(
        xs.map((x) => encodeValues(plan, { x }, rand)),
        T,
      ),
      n,
    ).x;
    const bound = quantisationErrorBound(plan.parts[0], n);
    expect(bound.maxAbs).toBe(n / 4);
    let sq = 0;
    for (let i = 0; i < L; i++) {
      const exact = xs.reduce((a, x) => a + x[i], 0);
      const err = sums[i] - exact;
      expect(Math.abs(err)).toBeLessThan(bound.maxAbs);
      sq += err * err;
    }
    const rms = Math.sqrt(sq / L);
    expect(rms).toBeLessThanOrEqual(bound.stdDev * 1.05);
    expect(rms).toBeGreaterThan(bound.stdDev * 0.5);
  });

  it('defaults: at least 2^-16 resolution for reals', () => {
    expect(DEFAULT_MIN_FRACTION_BITS).toBe(16);
    const plan = planEncoding([{ name: 'x', length: 1, kind: 'real', maxAbs: 1e5 }], T, 8000);
    expect(plan.parts[0].fractionBits).toBe(16);
    expect(plan.parts[0].limbs).toBe(2);
  });
});
