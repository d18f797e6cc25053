import { describe, expect, it } from 'vitest';
import { scheduleFactor } from '../../src/train/lr-schedules.ts';

describe('learning-rate schedules', () => {
  it('absent or constant is exactly 1 in every round', () => {
    for (let t = 1; t <= 5; t++) {
      expect(scheduleFactor(undefined, t, 5)).toBe(1);
      expect(scheduleFactor({ kind: 'constant' }, t, 5)).toBe(1);
    }
  });

  it('step and exponential decay', () => {
    expect([1, 2, 3, 4, 5].map((t) => scheduleFactor({ kind: 'step', every: 2, gamma: 0.5 }, t, 5))).toEqual([1, 1, 0.5, 0.5, 0.25]);
    expect([1, 2, 3].map((t) => scheduleFactor({ kind: 'exponential', gamma: 0.9 }, t, 3))).toEqual([1, 0.9, 0.81]);
  });

  it('cosine: warm-up t/w, then 1 down to minFactor at the last round', () => {
    const s = { kind: 'cosine' as const, minFactor: 0.1, warmupRounds: 2 };
    const f = [1, 2, 3, 4, 5, 6, 7].map((t) => scheduleFactor(s, t, 7));
    expect(f[0]).toBe(0.5);
    expect(f[1]).toBe(1);
    expect(f[2]).toBe(1);
    // Midway through the decay (round 5 of rounds 3..7): (1 + min) / 2.
    expect(f[4]).toBeCloseTo(0.55, 15);
    expect(f[6]).toBeCloseTo(0.1, 15);
    for (let i = 3; i < 7; i++) expect(f[i]).toBeLessThan(f[i - 1]);
  });

  it('refuses rounds outside the job and malformed schedules, naming the field', () => {
    expect(() => scheduleFactor({ kind: 'constant' }, 0, 5)).toThrow(/round 0 of 5/);
    expect(() => scheduleFactor({ kind: 'constant' }, 6, 5)).toThrow(/round 6 of 5/);
    expect(() => scheduleFactor({ kind: 'step', every: 0, gamma: 0.5 }, 1, 5)).toThrow(/every/);
    expect(() => scheduleFactor({ kind: 'exponential', gamma: 1.5 }, 1, 5)).toThrow(/gamma/);
  });
});
