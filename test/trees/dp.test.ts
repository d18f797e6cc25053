import { describe, expect, it } from 'vitest';
import { concatDatasets, encodeRows } from '../../src/data/encode.ts';
import { RdpAccountant } from '../../src/privacy/index.ts';
import {
  GbdtLocalData,
  addReleaseNoise,
  applyStep,
  calibrateGbdtNoise,
  currentStep,
  featureLayout,
  initialState,
  isComplete,
  localStep,
  modelFromState,
  parseGbdtParams,
  predictProba,
  releasePlan,
  stepRelease,
  sumNoiseVariance,
  toXgboostJson,
  totalSteps,
  trainFederated,
  type GbdtParamsInput,
  type GbdtState,
} from '../../src/trees/index.ts';
import { auc } from '../../src/metrics/classification.ts';
import { SYNTH_SCHEMA, splitRows, syntheticDataset, syntheticRecords } from './helpers.ts';

const layout = featureLayout(SYNTH_SCHEMA);
const data = syntheticDataset(2000, 5);

function composed(events: { samplingRate: number; noiseMultiplier: number; steps: number }[], delta: number): number {
  const acc = new RdpAccountant();
  for (const e of events) acc.step(e);
  return acc.getEpsilon(delta).epsilon;
}

describe('GBDT release plan and calibration', () => {
  const configs: GbdtParamsInput[] = [
    { dp: { epsilon: 1 } },
    { dp: { epsilon: 3 }, splitMode: 'histogram', depth: 4, trees: 30 },
    { dp: { epsilon: 8 }, splitMode: 'random', binEdges: 'schema' },
    { dp: { epsilon: 3, leafShare: 0.2, hessianShare: 0.1, quantileShare: 0.3 }, splitMode: 'hybrid', depth: 4, histogramLevels: 2 },
    { dp: { epsilon: 3, interactionShare: 0.4, screenShare: 0.5 }, splitMode: 'cyclic', interactions: 2, interactionColumns: 4 },
    { dp: { epsilon: 2, noise: 'distributed', colluders: 2, minContributors: 5 }, splitMode: 'cyclic', interactions: 0 },
  ];
  for (const input of configs) {
    it(`ε of all events composed by the RDP accountant is at most, and close to, the target: ${JSON.stringify(input)}`, () => {
      const params = parseGbdtParams(input);
      const plan = calibrateGbdtNoise(params, layout);
      const events = releasePlan(params, layout, plan);
      const target = params.dp!.epsilon;
      const eps = composed(events, params.dp!.delta);
      expect(eps).toBeLessThanOrEqual(target);
      expect(eps).toBeGreaterThan(0.97 * target);
      expect(plan.epsilon).toBe(eps);
      // Every step's events are in the plan, in step order, each a plain Gaussian release (q = 1, one step).
      const perStep = Array.from({ length: totalSteps(params, layout) }, (_, s) => stepRelease(params, layout, plan, s)!.events).flat();
      expect(perStep).toEqual(events);
      for (const e of events) expect([e.samplingRate, e.steps]).toEqual([1, 1]);
      const kinds = params.cyclic ? ['term', ...(params.cyclic.interactions ? ['screen'] : [])] : [...(params.histogramLevels ? ['histogram'] : []), 'leaf'];
      expect(new Set(events.map((e) => e.label))).toEqual(new Set([...(params.binEdges === 'dp-quantiles' ? ['quantiles'] : []), ...kinds]));
      // σ = std / Δ for every part.
      for (let s = 0; s < totalSteps(params, layout); s++) {
        const r = stepRelease(params, layout, plan, s)!;
        r.parts.forEach((p, k) => expect(r.events[k].noiseMultiplier).toBeCloseTo(p.std / p.sensitivity, 12));
        // What each partner adds: the whole charged std with local noise, a share with distributed noise.
        const d = params.dp!.distributed;
        const share = d ? 1 / Math.sqrt(d.minContributors - d.colluders) : 1;
        r.parts.forEach((p) => expect(p.partnerStd).toBeCloseTo(share * p.std, 12));
      }
    });
  }

  it('distributed noise: the uploads of the honest partners together carry the charged noise, and the sum its variance', () => {
    const params = parseGbdtParams({ dp: { epsilon: 3, noise: 'distributed', colluders: 1, minContributors: 4 }, splitMode: 'cyclic' });
    const local = parseGbdtParams({ dp: { epsilon: 3 }, splitMode: 'cyclic' });
    const a = stepRelease(params, layout, calibrateGbdtNoise(params, layout), 1)!;
    const b = stepRelease(local, layout, calibrateGbdtNoise(local, layout), 1)!;
    // The same charge (the same ε), a third of the variance per partner: 3 honest uploads of the 4 carry it.
    expect(a.events).toEqual(b.events);
    for (const [i, p] of a.parts.entries()) {
      expect(3 * p.partnerStd ** 2).toBeCloseTo(b.parts[i].std ** 2, 9);
      expect(sumNoiseVariance(a, 4)[p.part as 'grad' | 'hess']).toBeCloseTo(4 * p.partnerStd ** 2, 9);
    }
  });

  it('a job without DP releases nothing to charge and adds no noise', () => {
    const params = parseGbdtParams({ trees: 3 });
    const plan = calibrateGbdtNoise(params, layout);
    expect(releasePlan(params, layout, plan)).toEqual([]);
    expect(stepRelease(params, layout, plan, 0)!.parts.every((p) => p.std === 0)).toBe(true);
  });
});

/** One row that makes |g| close to 1: a positive where the model is confident it is negative. */
function extremeRow(): Record<string, string> {
  return { ...syntheticRecords(1, 1)[0], y: '1' };
}

describe('stated sensitivities hold when one row is added (end to end through the local steps)', () => {
  const cases: GbdtParamsInput[] = [
    { dp: { epsilon: 3 }, splitMode: 'histogram', depth: 3, trees: 4 },
    { dp: { epsilon: 3 }, splitMode: 'hybrid', depth: 3, trees: 4, columnsPerTree: 2 },
    { dp: { epsilon: 3 }, splitMode: 'random', depth: 3, trees: 4 },
    { dp: { epsilon: 3 }, splitMode: 'cyclic', interactions: 2, interactionColumns: 4, cyclicEpochs: 1 },
  ];
  for (const input of cases) {
    it(JSON.stringify(input), () => {
      const params = parseGbdtParams(input);
      const row = encodeRows(SYNTH_SCHEMA, [extremeRow()], { strict: true });
      const with1 = new GbdtLocalData(concatDatasets([data, row]));
      const without = new GbdtLocalData(data);
      let state: GbdtState = initialState(params, layout);
      const kinds = new Set<string>();
      while (!isComplete(state)) {
        const a = localStep(state, with1);
        const b = localStep(state, without);
        const release = stepRelease(params, layout, state.noise, state.step)!;
        kinds.add(currentStep(state).kind);
        for (const p of release.parts) {
          let sq = 0;
          let touched = 0;
          for (let i = 0; i < a[p.part].length; i++) {
            const diff = a[p.part][i] - b[p.part][i];
            sq += diff * diff;
            if (Math.abs(diff) > 1e-12) touched++;
          }
          expect(Math.sqrt(sq), `${currentStep(state).kind} ${p.part}`).toBeLessThanOrEqual(p.sensitivity + 1e-9);
          if (p.part === 'counts') expect(Math.sqrt(sq)).toBeCloseTo(p.sensitivity, 9);
          // One node per level, one bin per histogrammed column (or one leaf): never more values than that.
          if (p.part === 'grad') expect(touched).toBeLessThanOrEqual(Math.round(p.sensitivity ** 2));
        }
        // Train on the neighbour without the row; the release's state is public either way.
        state = applyStep(state, b, 1);
      }
      expect(kinds.has(params.cyclic ? 'screen' : 'leaves')).toBe(true);
    });
  }
});

describe('DP training', () => {
  it('adds fresh CSPRNG noise at the stated scale (same seed, different models) and still learns', () => {
    const parts = splitRows(data, [800, 700, 500]);
    const params = parseGbdtParams({ dp: { epsilon: 8 }, trees: 15, seed: 3 });
    const a = trainFederated(params, layout, parts);
    const b = trainFederated(params, layout, parts);
    expect(JSON.stringify(a.model.trees)).not.toBe(JSON.stringify(b.model.trees));
    const test = syntheticDataset(3000, 77);
    // Over 40 fresh draws the AUC spread 0.60–0.70 (mean 0.66, sd ≈ 0.025): 0.55 is > 4 sd below, and chance is 0.5.
    expect(auc(predictProba(a.model, test.X, test.n), test.y)).toBeGreaterThan(0.55);

    const release = stepRelease(params, layout, a.noise, 1)!;
    const zeros = { grad: new Float64Array(20000), hess: new Float64Array(20000) };
    addReleaseNoise(zeros, release);
    for (const p of release.parts) {
      const v = zeros[p.part as 'grad' | 'hess'];
      const sd = Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
      expect(sd / p.std).toBeGreaterThan(0.97);
      expect(sd / p.std).toBeLessThan(1.03);
    }
  });

  it('the released model holds no covers, node gains or node weights', () => {
    const parts = splitRows(data, [1000, 1000]);
    const { state } = trainFederated(parseGbdtParams({ dp: { epsilon: 3 }, trees: 5 }), layout, parts);
    const model = modelFromState(state);
    expect(model.trees.every((t) => t.cover === undefined)).toBe(true);
    const keys = new Set(model.trees.flatMap((t) => Object.keys(t)));
    expect([...keys].sort()).toEqual(['defaultLeft', 'feature', 'left', 'right', 'threshold', 'value']);
    const text = toXgboostJson(model);
    const xgb = JSON.parse(text) as { learner: { gradient_booster: { model: { trees: Record<string, number[]>[] } } } };
    for (const t of xgb.learner.gradient_booster.model.trees) {
      for (const field of ['sum_hessian', 'loss_changes', 'base_weights'])
        expect(
          t[field].every((v) => v === 0),
          field,
        ).toBe(true);
    }
    // The key holders' node sums exist in the training state (they decrypted them) but not in the model.
    expect(state.trees[0].H.some((h) => h !== 0)).toBe(true);
    expect(text).not.toContain(String(state.trees[0].H.find((h) => h !== 0)));
  });
});
