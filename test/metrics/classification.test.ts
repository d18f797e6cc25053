import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { accuracy, auc, binIndex, brier, calibrationBins, evaluateScores, liftAtTopFraction, logLoss } from '../../src/metrics/classification.ts';
import { FedmarkError } from '../../src/errors.ts';

function bruteForceAuc(s: number[], y: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < s.length; i++) {
    if (y[i] !== 1) continue;
    for (let j = 0; j < s.length; j++) {
      if (y[j] !== 0) continue;
      pairs++;
      if (s[i] > s[j]) wins += 1;
      else if (s[i] === s[j]) wins += 0.5;
    }
  }
  return pairs === 0 ? NaN : wins / pairs;
}

describe('auc', () => {
  it('matches a brute-force pairwise count with ties (property)', () => {
    // Scores drawn from a small set so ties between positives and negatives are frequent.
    const row = fc.tuple(
      fc.integer({ min: 0, max: 6 }).map((k) => k / 6),
      fc.integer({ min: 0, max: 1 }),
    );
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 40 }), (rows) => {
        const s = rows.map((r) => r[0]);
        const y = rows.map((r) => r[1]);
        const expected = bruteForceAuc(s, y);
        const got = auc(s, y);
        if (Number.isNaN(expected)) expect(got).toBeNaN();
        else expect(got).toBeCloseTo(expected, 12);
      }),
      { numRuns: 300 },
    );
  });

  it('matches brute force on continuous scores', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 1 })), {
          minLength: 2,
          maxLength: 60,
        }),
        (rows) => {
          const s = rows.map((r) => r[0]);
          const y = rows.map((r) => r[1]);
          const expected = bruteForceAuc(s, y);
          const got = auc(Float64Array.from(s), Uint8Array.from(y));
          if (Number.isNaN(expected)) expect(got).toBeNaN();
          else expect(got).toBeCloseTo(expected, 12);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('known values: perfect, inverted, all tied', () => {
    expect(auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).toBe(1);
    expect(auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1])).toBe(0);
    expect(auc([0.5, 0.5, 0.5], [0, 1, 1])).toBe(0.5);
    expect(auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75);
  });

  it('returns NaN for a single class and throws on bad input', () => {
    expect(auc([0.1, 0.2], [1, 1])).toBeNaN();
    expect(auc([0.1, 0.2], [0, 0])).toBeNaN();
    expect(() => auc([0.1, 0.2], [0])).toThrow(FedmarkError);
    expect(() => auc([0.1, 0.2], [0])).toThrow(/scores has 2 entries but labels has 1/);
    expect(() => auc([], [])).toThrow(/empty/);
    expect(() => auc([0.1, 0.2], [0, 2])).toThrow(/label at index 1 is 2/);
    expect(() => auc([0.1, NaN], [0, 1])).toThrow(/score at index 1/);
  });
});

describe('losses and accuracy', () => {
  it('log loss and Brier match hand-computed values', () => {
    const s = [0.9, 0.2, 0.6, 0.4];
    const y = [1, 0, 0, 1];
    const ll = -(Math.log(0.9) + Math.log(0.8) + Math.log(0.4) + Math.log(0.4)) / 4;
    expect(logLoss(s, y)).toBeCloseTo(ll, 14);
    expect(brier(s, y)).toBeCloseTo((0.01 + 0.04 + 0.36 + 0.36) / 4, 14);
    expect(accuracy(s, y)).toBe(0.5);
    expect(accuracy(s, y, 0.3)).toBe(0.75);
    expect(accuracy(s, y, 0.95)).toBe(0.5);
    expect(accuracy([0.5, 0.49], [1, 0])).toBe(1);
  });

  it('clips log loss at 1e-15 instead of returning Infinity', () => {
    expect(logLoss([0, 1], [1, 0])).toBeCloseTo(-Math.log(1e-15), 2);
  });

  it('rejects probabilities outside [0, 1]', () => {
    expect(() => logLoss([1.2], [1])).toThrow(/probabilities must lie in \[0, 1\]/);
    expect(() => brier([-0.1], [0])).toThrow(FedmarkError);
  });
});

describe('liftAtTopFraction', () => {
  it('computes lift and capture in the top decile', () => {
    // 20 rows, 4 positives; top 2 rows are both positive.
    const s = Array.from({ length: 20 }, (_, i) => 1 - i / 20);
    const y = s.map((_, i) => (i === 0 || i === 1 || i === 10 || i === 15 ? 1 : 0));
    const r = liftAtTopFraction(s, y, 0.1);
    expect(r.captureRate).toBeCloseTo(0.5, 14);
    expect(r.lift).toBeCloseTo(1 / 0.2, 14);
  });

  it('takes rows tied at the cut pro rata, independent of input order', () => {
    // All tied: the top 10 % has the overall positive rate → lift 1.
    const y = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0];
    expect(liftAtTopFraction(new Array(10).fill(0.3), y, 0.1).lift).toBeCloseTo(1, 14);
    const s = [0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1];
    const y2 = [0, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const y3 = [0, 0, 0, 1, 1, 0, 0, 0, 0, 0];
    // Top 30 % = the 0.9 row + 2 of the 4 tied rows (half their positives).
    expect(liftAtTopFraction(s, y2, 0.3).captureRate).toBeCloseTo(0.5, 14);
    expect(liftAtTopFraction(s, y3, 0.3).captureRate).toBeCloseTo(0.5, 14);
  });

  it('rejects a bad fraction and returns NaN without positives', () => {
    expect(() => liftAtTopFraction([0.1], [1], 0)).toThrow(/fraction/);
    expect(liftAtTopFraction([0.1, 0.2], [0, 0]).lift).toBeNaN();
  });
});

describe('calibrationBins and binIndex', () => {
  it('bins by equal width, puts 1 in the last bin, omits empty bins', () => {
    const bins = calibrationBins([0, 0.05, 0.15, 1, 0.95], [0, 1, 0, 1, 1], 10);
    expect(bins.map((b) => b.lower)).toEqual([0, 0.1, 0.9]);
    expect(bins[0]).toMatchObject({ count: 2, observedRate: 0.5 });
    expect(bins[0].meanPredicted).toBeCloseTo(0.025, 14);
    expect(bins[2]).toMatchObject({ count: 2, observedRate: 1, upper: 1 });
  });

  it('binIndex agrees with ≥ comparisons against b/bins for values near edges', () => {
    const B = 1000;
    for (let b = 1; b < B; b++) {
      const edge = b / B;
      const below = edge - Number.EPSILON * edge;
      expect(binIndex(edge, B)).toBe(b);
      if (below < edge) expect(binIndex(below, B)).toBe(b - 1);
    }
    expect(binIndex(1, B)).toBe(B - 1);
    expect(binIndex(0, B)).toBe(0);
  });
});

describe('evaluateScores', () => {
  it('bundles all metrics consistently', () => {
    const s = [0.9, 0.8, 0.3, 0.2, 0.6, 0.1];
    const y = [1, 1, 0, 0, 0, 1];
    const m = evaluateScores(s, y);
    expect(m).toMatchObject({ n: 6, positives: 3, baseRate: 0.5 });
    expect(m.auc).toBe(auc(s, y));
    expect(m.logLoss).toBe(logLoss(s, y));
    expect(m.brier).toBe(brier(s, y));
    expect(m.accuracy).toBe(accuracy(s, y));
    expect(m.liftTopDecile).toEqual(liftAtTopFraction(s, y, 0.1));
    expect(m.calibration).toEqual(calibrationBins(s, y));
  });
});
