import { describe, expect, it } from 'vitest';
import { FedmarkError } from '../../src/errors.ts';
import { PathExplainer, featureLayout, localCovers, modelFromState, nodeValues, parseGbdtParams, predictMargin, trainPooled } from '../../src/trees/index.ts';
import { SYNTH_SCHEMA, syntheticDataset } from './helpers.ts';

const layout = featureLayout(SYNTH_SCHEMA);
const data = syntheticDataset(3000, 41);
const { state, model } = trainPooled(parseGbdtParams({ trees: 25, depth: 4, baseScore: 0.15 }), layout, data);
const margins = predictMargin(model, data.X, data.n);

describe('path contributions (Saabas) for reason codes', () => {
  for (const [name, covers] of [
    ['uniform node values (the released model alone)', 'uniform' as const],
    ['covers from the partner’s own rows', localCovers(model, data.X, data.n)],
  ] as const) {
    it(`${name}: contributions plus bias equal the margin`, () => {
      const ex = new PathExplainer(model, covers);
      for (let i = 0; i < 300; i++) {
        const c = ex.explain(data.X, i * layout.d);
        expect(c.length).toBe(layout.d + 1);
        expect(Math.abs(c.reduce((a, b) => a + b, 0) - margins[i])).toBeLessThan(1e-9);
      }
    });
  }

  it('a feature no tree splits on never gets a contribution; a split feature does', () => {
    const used = new Set(model.trees.flatMap((t) => t.feature.filter((_, i) => t.left[i] >= 0)));
    const ex = new PathExplainer(model);
    const total = new Float64Array(layout.d);
    for (let i = 0; i < 500; i++)
      ex.explain(data.X, i * layout.d)
        .slice(0, layout.d)
        .forEach((v, j) => (total[j] += Math.abs(v)));
    for (let j = 0; j < layout.d; j++) expect(total[j] > 0, layout.featureNames[j]).toBe(used.has(j));
  });

  it('node values: a split’s value is its children’s (weighted) mean; covers change attributions, not their sum', () => {
    const t = model.trees[0];
    const u = nodeValues(t);
    expect(u[0]).toBeCloseTo((u[t.left[0]] + u[t.right[0]]) / 2, 12);
    const cov = localCovers(model, data.X, data.n);
    expect(cov[0][0]).toBe(data.n);
    expect(cov[0][t.left[0]] + cov[0][t.right[0]]).toBe(data.n);
    const a = new PathExplainer(model).explain(data.X, 0);
    const b = new PathExplainer(model, cov).explain(data.X, 0);
    expect(Array.from(a)).not.toEqual(Array.from(b));
    expect(a.reduce((x, y) => x + y, 0)).toBeCloseTo(
      b.reduce((x, y) => x + y, 0),
      9,
    );
  });

  it('top reasons are the largest positive contributions, by feature name', () => {
    const ex = new PathExplainer(model);
    const c = ex.explain(data.X, 5 * layout.d);
    const top = ex.topReasons(data.X, 3, 5 * layout.d);
    const positives = Array.from(c.slice(0, layout.d))
      .filter((v) => v > 0)
      .sort((x, y) => y - x);
    expect(top.map((r) => r.contribution)).toEqual(positives.slice(0, 3));
    for (const r of top) expect(layout.featureNames).toContain(r.feature);
  });

  it('feature importance by total gain covers the split features and ranks the planted signal first', () => {
    const imp = modelFromState(state).importance!;
    const byColumn = layout.groups.map((g) => {
      const f = g.kind === 'categorical' ? Array.from({ length: g.slots }, (_, k) => g.offset + k) : [g.feature];
      return { name: g.name, gain: f.reduce((a, j) => a + imp[j], 0) };
    });
    byColumn.sort((a, b) => b.gain - a.gain);
    // The label depends on channel, score, member×balance and age; never on nothing.
    expect(byColumn[0].gain).toBeGreaterThan(0);
    expect(['channel', 'score']).toContain(byColumn[0].name);
  });

  it('refuses covers the model does not have', () => {
    expect(() => new PathExplainer(model, 'model')).toThrow(FedmarkError);
    expect(() => new PathExplainer(model, [new Float64Array(1)])).toThrow(FedmarkError);
  });
});
