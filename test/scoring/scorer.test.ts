import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { encodeRows } from '../../src/data/encode.ts';
import { featureCount, featureNames } from '../../src/data/schema.ts';
import { predictProba } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { buildBaseline } from '../../src/scoring/baseline.ts';
import { denseNet, gaussLegendre, NetWorkspace } from '../../src/scoring/dense-net.ts';
import { denseScorer } from '../../src/scoring/dense-scorers.ts';
import { loadScoringModel } from '../../src/scoring/model.ts';
import { completenessGap, predictProbabilities, registerScorerProvider, scorerProviders } from '../../src/scoring/scorer.ts';
import { PathScorer } from '../../src/scoring/path-scorer.ts';
import { scoreFile } from '../../src/scoring/batch.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import { fixtureParams, fixtureSchema, makeCustomers, saveFixtureModel, tempDir, toCsv } from './helpers.ts';

const schema = await fixtureSchema();
const d = featureCount(schema);
const data = encodeRows(
  schema,
  makeCustomers(600, 11).map((c) => ({ ...c, consent: 'yes' })),
);
/** The first n rows of the encoded matrix. */
const rows = (n: number) => data.X.subarray(0, n * d);

const SPECS: ModelSpec[] = [
  { kind: 'logistic' },
  { kind: 'mlp', hidden: [16], activation: 'relu' },
  { kind: 'mlp', hidden: [12, 8], activation: 'relu' },
  { kind: 'mlp', hidden: [12, 8], activation: 'tanh' },
];

/** Integrated gradients by a 20,000-step midpoint Riemann sum: slow, simple, independent of the code under test. */
function riemannIg(spec: ModelSpec, params: Float64Array, x: ArrayLike<number>, x0: Float64Array, steps = 20_000): Float64Array {
  const ws = new NetWorkspace(denseNet(spec, d, params));
  const phi = new Float64Array(d);
  const g = new Float64Array(d);
  const pt = new Float64Array(d);
  for (let s = 0; s < steps; s++) {
    const t = (s + 0.5) / steps;
    for (let j = 0; j < d; j++) pt[j] = x0[j] + t * (x[j] - x0[j]);
    ws.forward(pt);
    ws.backward(g);
    for (let j = 0; j < d; j++) phi[j] += g[j] / steps;
  }
  for (let j = 0; j < d; j++) phi[j] *= x[j] - x0[j];
  return phi;
}

describe('dense scorers', () => {
  for (const spec of SPECS) {
    const label = JSON.stringify(spec);
    const params = fixtureParams(spec, d);
    const scorer = denseScorer(spec, d, params, buildBaseline(schema));

    it(`${label}: probabilities equal the model's own predictions (tfjs, float32)`, () => {
      const ours = predictProbabilities(scorer, data.X, data.n);
      const tf = predictProba(spec, d, params, data.X, data.n);
      let worst = 0;
      for (let i = 0; i < data.n; i++) worst = Math.max(worst, Math.abs(ours[i] - tf[i]));
      expect(worst).toBeLessThan(2e-6);
    });

    it(`${label}: contributions + base value = logit (${scorer.attribution.exact ? 'exact' : 'within the documented error'})`, () => {
      const gap = completenessGap(scorer, data.X, data.n);
      const worst = Math.max(...gap);
      // Exact methods: float64 rounding only. tanh quadrature: docs/SCORING.md documents ≤ 1e-6.
      expect(worst).toBeLessThan(scorer.attribution.exact ? 1e-9 : 1e-6);
    });
  }

  it('logistic with the zero baseline: each contribution is exactly coefficient × value and the base value is the intercept', () => {
    const spec: ModelSpec = { kind: 'logistic' };
    const params = fixtureParams(spec, d);
    const scorer = denseScorer(spec, d, params, buildBaseline(schema, { kind: 'zero' }));
    expect(scorer.baseValue).toBe(params[d]);
    const phi = scorer.contributions(rows(5), 5);
    for (let i = 0; i < 5; i++) for (let j = 0; j < d; j++) expect(phi[i * d + j]).toBe(params[j] * data.X[i * d + j]);
  });

  it('MLP contributions are integrated gradients: they match an independent 20,000-step Riemann sum', () => {
    for (const spec of SPECS.slice(1)) {
      const params = fixtureParams(spec, d);
      const baseline = buildBaseline(schema);
      const scorer = denseScorer(spec, d, params, baseline);
      const phi = scorer.contributions(rows(8), 8);
      for (let i = 0; i < 8; i++) {
        const ref = riemannIg(spec, params, data.X.subarray(i * d, (i + 1) * d), baseline.x0);
        for (let j = 0; j < d; j++) expect(Math.abs(phi[i * d + j] - ref[j])).toBeLessThan(2e-3);
      }
    }
  });

  it('the tanh completeness error falls as the quadrature gets finer (it is measured, not assumed)', () => {
    const spec: ModelSpec = { kind: 'mlp', hidden: [12, 8], activation: 'tanh' };
    const params = fixtureParams(spec, d);
    for (let i = 0; i < params.length; i++) params[i] *= 2.5; // a sharper network makes the error visible
    const gaps = [4, 8, 32].map((points) => {
      const s = denseScorer(spec, d, params, buildBaseline(schema), { points });
      return Math.max(...completenessGap(s, rows(200), 200));
    });
    expect(gaps[1]).toBeLessThan(gaps[0]);
    expect(gaps[2]).toBeLessThan(gaps[1]);
  });

  it('Gauss–Legendre nodes integrate polynomials of degree 2m − 1 exactly', () => {
    const { nodes, weights } = gaussLegendre(5);
    const integral = (k: number) => nodes.reduce((a, t, i) => a + weights[i] * t ** k, 0);
    for (let k = 0; k <= 9; k++) expect(integral(k)).toBeCloseTo(1 / (k + 1), 13);
  });
});

describe('the scorer registry (where the tree scorer plugs in)', () => {
  // Two stumps in the shape of issue 14's model and PathExplainer (Saabas contributions, uniform node values).
  const names = featureNames(schema);
  const stumps = [
    { feature: names.indexOf('tenure'), cut: 0.3, left: 0.8, right: -0.4 },
    { feature: names.indexOf('contract=monthly'), cut: 0.5, left: -0.2, right: 0.5 },
  ];
  const base = -1.1;
  const margin = (X: Float32Array, n: number) =>
    Float64Array.from({ length: n }, (_, i) => base + stumps.reduce((a, t) => a + (X[i * d + t.feature] < t.cut ? t.left : t.right), 0));
  const explainer = {
    explain(x: ArrayLike<number>, offset = 0) {
      const out = new Float64Array(d + 1);
      for (const t of stumps) {
        const root = (t.left + t.right) / 2;
        out[t.feature] += (x[offset + t.feature] < t.cut ? t.left : t.right) - root;
        out[d] += root;
      }
      out[d] += base;
      return out;
    },
  };

  it('a path-contribution model (the trees) scores through its own provider; contributions + bias = margin exactly', async () => {
    const dir = tempDir();
    const scorer = new PathScorer('gbdt-test', d, margin, explainer);
    registerScorerProvider({
      name: 'gbdt-test',
      detect: async (p) => p === join(dir, 'trees'),
      load: async () => ({ scorer, modelHash: 'f'.repeat(64), spec: { kind: 'gbdt-test' }, metadata: { purpose: 'churn-retention', featureNames: names } }),
    });
    try {
      const m = await loadScoringModel(join(dir, 'trees'), schema);
      expect(m.scorer.kind).toBe('gbdt-test');
      expect(m.scorer.baseValue).toBeCloseTo(base + 0.2 + 0.15, 14);
      expect(Math.max(...completenessGap(m.scorer, rows(300), 300))).toBeLessThan(1e-12);
      // The whole batch pipeline runs on it: reasons come from the path contributions.
      writeFileSync(join(dir, 'c.csv'), toCsv(makeCustomers(200, 3)));
      const s = await scoreFile({ dataPath: join(dir, 'c.csv'), outPath: join(dir, 'o.csv'), schema, model: m, reasons: 2 });
      expect(s.model.attribution).toMatchObject({ method: 'tree-path', exact: true });
      const text = readFileSync(join(dir, 'o.csv'), 'utf8');
      expect(text).toMatch(/tenure low \(\d+\),0\.6000/);
      expect(text).toMatch(/contract = monthly,0\.3500/);
      // The dense provider still handles its own directories.
      await saveFixtureModel(join(dir, 'dense'), schema);
      expect((await loadScoringModel(join(dir, 'dense'), schema)).scorer.kind).toBe('logistic');
    } finally {
      const list = scorerProviders() as unknown as { name: string }[];
      list.splice(
        list.findIndex((p) => p.name === 'gbdt-test'),
        1,
      );
    }
  });

  it('refuses an explainer of the wrong width', () => {
    expect(() => new PathScorer('x', d, margin, { explain: () => new Float64Array(d) })).toThrow(/expected \d+ \+ 1/);
  });
});
