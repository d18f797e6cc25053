import { describe, it, expect } from 'vitest';
import { gaussianNoise, addGaussianNoiseInPlace } from '../../src/privacy/noise.ts';
import { FedmarkError } from '../../src/errors.ts';

function stats(x: ArrayLike<number>): { mean: number; std: number; within1: number } {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  const mean = s / x.length;
  let v = 0;
  let w = 0;
  for (let i = 0; i < x.length; i++) v += (x[i] - mean) ** 2;
  const std = Math.sqrt(v / (x.length - 1));
  for (let i = 0; i < x.length; i++) if (Math.abs(x[i] - mean) <= std) w++;
  return { mean, std, within1: w / x.length };
}

describe('gaussianNoise (CSPRNG)', () => {
  const n = 200_000;
  it('has the requested std, mean ≈ 0 and Gaussian shape (fixed statistical tolerances)', () => {
    const std = 2.5;
    const x = gaussianNoise(n, std);
    expect(x.length).toBe(n);
    const s = stats(x);
    // Std. error of the sample std is σ/√(2n) ≈ 0.0016σ; 1% is > 6 standard errors.
    expect(Math.abs(s.std / std - 1)).toBeLessThan(0.01);
    // Std. error of the mean is σ/√n ≈ 0.0056; allow 6 standard errors.
    expect(Math.abs(s.mean)).toBeLessThan((6 * std) / Math.sqrt(n));
    // P(|Z| ≤ 1) = 0.6827; binomial std. error ≈ 0.001.
    expect(Math.abs(s.within1 - 0.6827)).toBeLessThan(0.006);
    expect(x.every((v) => Number.isFinite(v))).toBe(true);
  });

  it('is not seeded: two calls differ', () => {
    const a = gaussianNoise(16, 1);
    const b = gaussianNoise(16, 1);
    expect(Array.from(a)).not.toEqual(Array.from(b));
  });

  it('handles odd lengths, zero std and zero length', () => {
    expect(gaussianNoise(3, 1).length).toBe(3);
    expect(Array.from(gaussianNoise(4, 0))).toEqual([0, 0, 0, 0]);
    expect(gaussianNoise(0, 1).length).toBe(0);
  });

  it('adds noise in place to Float64Array and Float32Array', () => {
    const v = new Float64Array(n).fill(10);
    addGaussianNoiseInPlace(v, 0.5);
    const s = stats(v);
    expect(Math.abs(s.mean - 10)).toBeLessThan((6 * 0.5) / Math.sqrt(n));
    expect(Math.abs(s.std / 0.5 - 1)).toBeLessThan(0.01);
    const f = new Float32Array(5).fill(1);
    addGaussianNoiseInPlace(f, 1);
    expect(Array.from(f).some((x) => x !== 1)).toBe(true);
  });

  it('rejects bad arguments', () => {
    expect(() => gaussianNoise(-1, 1)).toThrow(FedmarkError);
    expect(() => gaussianNoise(2, -1)).toThrow(/standard deviation/);
    expect(() => addGaussianNoiseInPlace(new Float64Array(2), NaN)).toThrow(FedmarkError);
  });
});
