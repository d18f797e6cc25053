import { describe, expect, it } from 'vitest';
import { concatDatasets } from '../../src/data/encode.ts';
import {
  GbdtLocalData,
  applyLeaves,
  applyStep,
  currentStep,
  featureLayout,
  initialState,
  isComplete,
  leafSums,
  levelHistograms,
  levelPartLength,
  localStep,
  modelFromState,
  parseGbdtParams,
  predictMargin,
  stateHash,
  stepParts,
  sumParts,
  totalSteps,
  trainFederated,
  trainPooled,
  type GbdtParamsInput,
  type GbdtState,
} from '../../src/trees/index.ts';
import { SPLIT, LEAF } from '../../src/trees/heap-tree.ts';
import { SYNTH_SCHEMA, splitRows, syntheticDataset, thrown } from './helpers.ts';

const layout = featureLayout(SYNTH_SCHEMA);
const data = syntheticDataset(3000, 11);
const parts = splitRows(data, [1700, 300, 1000]);

function expectSameTrees(a: GbdtState, b: GbdtState): void {
  expect(a.trees.length).toBe(b.trees.length);
  expect(b.edges).toEqual(a.edges);
  a.trees.forEach((t, k) => {
    const u = b.trees[k];
    expect(u.kind, `tree ${k} shape`).toEqual(t.kind);
    t.kind.forEach((kind, i) => {
      if (kind === SPLIT) expect([u.group[i], u.cut[i]], `tree ${k} node ${i} split`).toEqual([t.group[i], t.cut[i]]);
      if (kind === LEAF) expect(Math.abs(u.value[i] - t.value[i]), `tree ${k} leaf ${i}`).toBeLessThanOrEqual(1e-6);
    });
  });
}

describe('federated steps against the pooled reference trainer (no DP)', () => {
  const cases: [string, GbdtParamsInput][] = [
    ['histogram, subtraction, DP-quantile edges', { trees: 12, depth: 4, learningRate: 0.3, binEdges: 'dp-quantiles' }],
    ['histogram, schema edges, 16 bins', { trees: 8, depth: 3, bins: 16, binEdges: 'schema', minChildWeight: 2 }],
    ['hybrid: one histogram level, random below, two columns per tree', { trees: 8, depth: 3, splitMode: 'hybrid', histogramLevels: 1, columnsPerTree: 2 }],
    ['random splits', { trees: 8, depth: 3, splitMode: 'random', seed: 5 }],
  ];
  for (const [name, input] of cases) {
    it(`${name}: a 3-way split summed in plaintext grows the same trees`, () => {
      const params = parseGbdtParams(input);
      const pooled = trainPooled(params, layout, data);
      const fed = trainFederated(params, layout, parts);
      expectSameTrees(pooled.state, fed.state);
      const a = predictMargin(pooled.model, data.X, data.n);
      const b = predictMargin(fed.model, data.X, data.n);
      let worst = 0;
      for (let i = 0; i < data.n; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      expect(worst).toBeLessThan(1e-5);
      // The trees do split: a degenerate all-leaf ensemble would pass the comparison trivially.
      expect(pooled.state.trees.some((t) => t.kind[0] === SPLIT)).toBe(true);
    });
  }

  it('the partners agree on the state hash after every step, and it changes as training advances', () => {
    const params = parseGbdtParams({ trees: 3, depth: 3 });
    const locals = parts.map((p) => new GbdtLocalData(p));
    let state = initialState(params, layout);
    const seen = new Set<string>();
    while (!isComplete(state)) {
      const sums = sumParts(locals.map((l) => localStep(state, l)));
      // Every key holder applies the same sums to its own copy (here: a JSON round trip of the state).
      const copy = JSON.parse(JSON.stringify(state)) as GbdtState;
      const next = applyStep(state, sums, locals.length);
      expect(stateHash(applyStep(copy, sums, locals.length))).toBe(stateHash(next));
      seen.add(stateHash(next));
      state = next;
    }
    expect(seen.size).toBe(totalSteps(params, layout));
  });

  it('the partners’ cached margins equal the saved model’s predictions (bins and float thresholds route alike)', () => {
    const params = parseGbdtParams({ trees: 6, depth: 4, binEdges: 'dp-quantiles' });
    const { state } = trainPooled(params, layout, data);
    const local = new GbdtLocalData(data);
    const cached = local.margins(state);
    const predicted = predictMargin(modelFromState(state), data.X, data.n);
    for (let i = 0; i < data.n; i++) expect(Math.abs(cached[i] - predicted[i])).toBeLessThan(1e-9);
  });

  it('every upload has the length the schedule states before any row is read', () => {
    for (const input of [{ depth: 4 }, { depth: 4, dp: { epsilon: 1 } }, { depth: 3, splitMode: 'hybrid', columnsPerTree: 2 }] as GbdtParamsInput[]) {
      const params = parseGbdtParams({ trees: 2, ...input });
      const locals = parts.map((p) => new GbdtLocalData(p));
      let state = initialState(params, layout);
      while (!isComplete(state)) {
        const spec = stepParts(params, layout, currentStep(state));
        const uploads = locals.map((l) => localStep(state, l));
        for (const u of uploads)
          expect(Object.fromEntries(Object.entries(u).map(([k, v]) => [k, v.length]))).toEqual(Object.fromEntries(spec.map((s) => [s.name, s.length])));
        state = applyStep(state, sumParts(uploads), uploads.length);
      }
    }
  });

  it('refuses sums of the wrong step, length or content with a clear error', () => {
    const params = parseGbdtParams({ trees: 2, depth: 3, binEdges: 'schema' });
    const state = initialState(params, layout);
    const len = levelPartLength(params, layout, 0);
    const err = (f: () => unknown) => thrown(f).code;
    expect(err(() => applyStep(state, { grad: new Float64Array(len - 1), hess: new Float64Array(len) }))).toBe('GBDT_BAD_PART');
    expect(err(() => applyStep(state, { grad: new Float64Array(len) }))).toBe('GBDT_BAD_PART');
    const nan = new Float64Array(len);
    nan[3] = NaN;
    expect(err(() => applyStep(state, { grad: nan, hess: new Float64Array(len) }))).toBe('GBDT_BAD_PART');
    expect(err(() => applyStep(state, { grad: new Float64Array(len), hess: new Float64Array(len) }, 0))).toBe('GBDT_BAD_PART');
    const local = new GbdtLocalData(parts[0]);
    expect(err(() => leafSums(state, local))).toBe('GBDT_WRONG_STEP');
    expect(err(() => applyLeaves(state, levelHistograms(state, local)))).toBe('GBDT_WRONG_STEP');
    expect(err(() => new GbdtLocalData({ ...parts[0], y: parts[0].y.map(() => 2) }))).toBe('GBDT_BAD_DATA');
  });

  it('a small, imbalanced partner can train alone and the trees beat a constant score', () => {
    const small = syntheticDataset(400, 3, -1.5);
    const positives = small.y.reduce((a, b) => a + b, 0);
    expect(positives).toBeGreaterThan(3);
    expect(positives / small.n).toBeLessThan(0.1);
    const { model } = trainPooled(parseGbdtParams({ trees: 20, depth: 3, minChildWeight: 1 }), layout, small);
    const test = syntheticDataset(4000, 99, -1.5);
    const m = predictMargin(model, test.X, test.n);
    let concordant = 0;
    let pairs = 0;
    for (let i = 0; i < test.n; i += 7)
      for (let j = 0; j < test.n; j += 7)
        if (test.y[i] === 1 && test.y[j] === 0) {
          pairs++;
          concordant += m[i] > m[j] ? 1 : m[i] === m[j] ? 0.5 : 0;
        }
    expect(concordant / pairs).toBeGreaterThan(0.6);
  });

  it('pooling the partners’ rows in another order changes nothing (the statistics are sums)', () => {
    const params = parseGbdtParams({ trees: 4, depth: 3 });
    const a = trainPooled(params, layout, data).state;
    const b = trainPooled(params, layout, concatDatasets([parts[2], parts[0], parts[1]])).state;
    expectSameTrees(a, b);
  });
});
