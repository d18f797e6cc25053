import { describe, expect, it } from 'vitest';
import { auc } from '../../src/metrics/classification.ts';
import {
  GbdtLocalData,
  applyStep,
  cyclicSteps,
  initialState,
  localStep,
  stepRelease,
  sumNoiseVariance,
  sumParts,
  featureLayout,
  fromXgboostJson,
  modelFromState,
  parseGbdtParams,
  predictMargin,
  predictProba,
  rankedColumns,
  stepAt,
  termAxis,
  termTree,
  toXgboostJson,
  totalSteps,
  trainFederated,
  trainPooled,
  type GbdtState,
} from '../../src/trees/index.ts';
import { SYNTH_SCHEMA, splitRows, syntheticDataset } from './helpers.ts';

const layout = featureLayout(SYNTH_SCHEMA);
const data = syntheticDataset(4000, 21);
const parts = splitRows(data, [2000, 500, 1500]);
const names = (s: GbdtState) => s.terms.map((t) => t.groups.map((g) => layout.groups[g].name).join('×'));

describe('cyclic mode (additive terms, DP-EBM style) without DP', () => {
  const params = parseGbdtParams({ splitMode: 'cyclic', interactions: 1, interactionColumns: 5 });

  it('schedules every column per epoch, one screening round and the pair rounds, in that order', () => {
    const c = cyclicSteps(params, layout);
    expect(c).toEqual({ main: 2 * layout.groups.length, screen: 1, pair: 1 });
    expect(totalSteps(params, layout)).toBe(1 + c.main + 2);
    const kinds = Array.from({ length: totalSteps(params, layout) }, (_, s) => stepAt(params, layout, s).kind);
    expect(kinds).toEqual(['quantiles', ...new Array(c.main).fill('main'), 'screen', 'pair']);
    expect(stepAt(params, layout, 1 + layout.groups.length)).toMatchObject({ kind: 'main', epoch: 1, group: 0 });
  });

  it('a 3-way split summed in plaintext gives the pooled terms (same pairs, values within 1e-6)', () => {
    const pooled = trainPooled(params, layout, data).state;
    const fed = trainFederated(params, layout, parts).state;
    expect(fed.edges).toEqual(pooled.edges);
    expect(names(fed)).toEqual(names(pooled));
    fed.terms.forEach((t, k) => {
      const max = Math.max(...t.values.map((v, c) => Math.abs(v - pooled.terms[k].values[c])));
      expect(max, names(fed)[k]).toBeLessThanOrEqual(1e-6);
    });
  });

  it('the screening finds the planted interaction (member × high balance)', () => {
    const { state } = trainPooled(params, layout, data);
    expect(names(state).slice(layout.groups.length)).toEqual(['balance×member']);
    // The strongest main effect is the channel (phone: +1.2 on the logit).
    expect(layout.groups[rankedColumns(state)[0]].name).toBe('channel');
  });

  it('exports one tree per term whose predictions are the training margins, in fedmark and through XGBoost JSON', () => {
    const { state, model } = trainPooled(params, layout, data);
    expect(model.trees).toHaveLength(state.terms.length + 1);
    const local = new GbdtLocalData(data);
    const trained = local.margins(state);
    const predicted = predictMargin(model, data.X, data.n);
    let max = 0;
    for (let i = 0; i < data.n; i++) max = Math.max(max, Math.abs(trained[i] - predicted[i]));
    expect(max).toBeLessThan(1e-5);
    const back = fromXgboostJson(toXgboostJson(model));
    expect(Array.from(predictMargin(back, data.X, data.n))).toEqual(Array.from(predicted));
    // Importance by total gain: the planted effects carry it.
    const imp = model.importance!;
    const by = (name: string) => imp[layout.featureNames.indexOf(name)];
    expect(by('channel=phone')).toBeGreaterThan(by('channel=mail'));
    expect(imp.every((v) => v >= 0)).toBe(true);
  });

  it('a term tree routes every cell: a categorical chain and a balanced numeric split', () => {
    const { state } = trainPooled(params, layout, data);
    const g = layout.groups.findIndex((x) => x.name === 'channel');
    const axis = termAxis(layout, params, g, null);
    const values = Array.from({ length: axis.size }, (_, v) => v + 1);
    const tree = termTree(layout, state.edges!, [axis], values);
    const group = layout.groups[g];
    if (group.kind !== 'categorical') throw new Error('channel is categorical');
    for (let v = 0; v < axis.size; v++) {
      const x = new Float32Array(layout.d);
      x[group.offset + v] = 1;
      const m = predictMargin({ ...modelFromState(state), trees: [tree], baseScore: 0.5 }, x, 1);
      expect(m[0]).toBeCloseTo(v + 1, 6);
    }
  });
});

describe('cyclic mode with DP', () => {
  it('learns from noisy terms at ε = 3 and releases no hessian sums in the model', () => {
    const params = parseGbdtParams({ splitMode: 'cyclic', dp: { epsilon: 3 } });
    const { model, state } = trainFederated(params, layout, parts);
    const test = syntheticDataset(3000, 22);
    expect(auc(predictProba(model, test.X, test.n), test.y)).toBeGreaterThan(0.65);
    expect(state.terms.some((t) => t.H.some((h) => h > 0))).toBe(true);
    const text = toXgboostJson(model);
    expect(text).not.toContain(String(state.terms[0].H.find((h) => h > 0)));
    expect(model.trees.every((t) => t.cover === undefined)).toBe(true);
  });

  it('shrinks a term update by λ + lambdaNoise × the std of a summed cell’s noise (the same sums, a fixed λ of that size agrees)', () => {
    const locals = parts.map((p) => new GbdtLocalData(p));
    // The first main-effect term's values from the same (noise-free here) sums of three partners.
    const firstTerm = (input: { lambda: number; lambdaNoise: number }) => {
      const p = parseGbdtParams({ splitMode: 'cyclic', ...input, dp: { epsilon: 3 } });
      let s = applyStep(initialState(p, layout), sumParts(locals.map((l) => localStep(initialState(p, layout), l))), 3);
      const sigma = Math.sqrt(sumNoiseVariance(stepRelease(p, layout, s.noise, s.step), 3).grad);
      s = applyStep(s, sumParts(locals.map((l) => localStep(s, l))), 3);
      return { values: s.terms[0].values, sigma };
    };
    const scaled = firstTerm({ lambda: 5, lambdaNoise: 1.5 });
    expect(scaled.sigma).toBeGreaterThan(1);
    const fixed = firstTerm({ lambda: 5 + 1.5 * scaled.sigma, lambdaNoise: 0 });
    expect(fixed.sigma).toBeCloseTo(scaled.sigma, 9);
    expect(fixed.values).toEqual(scaled.values);
    expect(firstTerm({ lambda: 5, lambdaNoise: 0 }).values).not.toEqual(scaled.values);
  });
});
