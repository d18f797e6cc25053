import { describe, it, expect } from 'vitest';
import { DISPARATE_IMPACT_THRESHOLD, fairnessMetrics, finalizeSegment } from '../../src/metrics/fairness.ts';
import { FedmarkError } from '../../src/errors.ts';

describe('fairnessMetrics (direct)', () => {
  // group a: 4 rows, 2 selected (rate 0.5); group b: 4 rows, 1 selected (0.25) → DI 0.5, flagged.
  const scores = [0.9, 0.6, 0.2, 0.1, 0.7, 0.3, 0.4, 0.2];
  const labels = [1, 0, 1, 0, 1, 1, 0, 0];
  const seg = { grp: ['a', 'a', 'a', 'a', 'b', 'b', 'b', 'b'] };

  it('computes rates, AUC, disparate impact and the four-fifths flag', () => {
    const [s] = fairnessMetrics(scores, labels, seg);
    expect(s.segment).toBe('grp');
    expect(s.threshold).toBe(0.5);
    expect(s.referenceGroup).toBe('a');
    const [a, b] = s.groups;
    expect(a).toMatchObject({ group: 'a', count: 4, positives: 2, baseRate: 0.5, selectionRate: 0.5, tpr: 0.5, fpr: 0.5 });
    expect(a.disparateImpact).toBe(1);
    expect(a.flagged).toBe(false);
    expect(a.auc).toBe(0.75);
    expect(b).toMatchObject({ group: 'b', count: 4, positives: 2, selectionRate: 0.25, tpr: 0.5, fpr: 0, auc: 0.75 });
    expect(b.disparateImpact).toBe(0.5);
    expect(b.flagged).toBe(true);
    expect(DISPARATE_IMPACT_THRESHOLD).toBe(0.8);
  });

  it('honours the threshold', () => {
    const [s] = fairnessMetrics(scores, labels, seg, { threshold: 0.25 });
    expect(s.groups[0].selectionRate).toBe(0.5);
    expect(s.groups[1].selectionRate).toBe(0.75);
    expect(s.referenceGroup).toBe('b');
    expect(s.groups[0].disparateImpact).toBeCloseTo(2 / 3, 14);
  });

  it('keeps declared order, includes empty declared groups, rejects undeclared values', () => {
    const [s] = fairnessMetrics(scores, labels, seg, { groups: { grp: ['b', 'c', 'a'] } });
    expect(s.groups.map((g) => g.group)).toEqual(['b', 'c', 'a']);
    const c = s.groups[1];
    expect(c.count).toBe(0);
    expect(c.selectionRate).toBeNaN();
    expect(c.disparateImpact).toBeNaN();
    expect(c.flagged).toBe(false);
    expect(() => fairnessMetrics(scores, labels, seg, { groups: { grp: ['a'] } })).toThrow(FedmarkError);
    expect(() => fairnessMetrics(scores, labels, seg, { groups: { grp: ['a'] } })).toThrow(/row 4: segment "grp" has value "b"/);
  });

  it('sorts segments by name and checks lengths', () => {
    const out = fairnessMetrics(scores, labels, { z: seg.grp, a: seg.grp });
    expect(out.map((s) => s.segment)).toEqual(['a', 'z']);
    expect(() => fairnessMetrics(scores, labels, { a: ['x'] })).toThrow(/segment "a" has 1 entries but there are 8 rows/);
  });

  it('leaves disparate impact undefined when nobody is selected', () => {
    const s = finalizeSegment('x', 0.5, [
      { group: 'p', count: 3, positives: 1, baseRate: 1 / 3, selectionRate: 0, tpr: 0, fpr: 0, auc: 0.5 },
      { group: 'q', count: 3, positives: 1, baseRate: 1 / 3, selectionRate: 0, tpr: 0, fpr: 0, auc: 0.5 },
    ]);
    expect(s.referenceGroup).toBeNull();
    expect(s.groups.every((g) => Number.isNaN(g.disparateImpact) && !g.flagged)).toBe(true);
  });
});
