import { describe, expect, it } from 'vitest';
import { GBDT_DEFAULTS, hasLeafRound, parseGbdtParams, usesSubtraction } from '../../src/trees/index.ts';
import { thrown } from './helpers.ts';

const code = (f: () => unknown) => {
  const err = thrown(f);
  expect(err.code).toBe('GBDT_BAD_PARAMS');
  return err.message;
};

describe('GBDT parameters', () => {
  it('resolve the defaults of the privacy regime', () => {
    const plain = parseGbdtParams({});
    expect(plain).toMatchObject({ trees: 100, depth: 4, learningRate: 0.1, splitMode: 'histogram', histogramLevels: 4, columnsPerTree: null, dp: null });
    expect(usesSubtraction(plain)).toBe(true);
    expect(hasLeafRound(plain)).toBe(false);
    // With DP the default is the additive (cyclic) model; asking for tree settings gets the private tree defaults.
    const cyc = parseGbdtParams({ dp: { epsilon: 3 } });
    expect(cyc).toMatchObject({ trees: 0, splitMode: 'cyclic', bins: 12, lambda: 5, learningRate: 0.5 });
    expect(cyc.cyclic).toEqual({
      epochs: 2,
      lambdaNoise: 1.5,
      interactions: 3,
      interactionColumns: 6,
      interactionEpochs: 1,
      interactionBins: 8,
      screenBins: 4,
    });
    expect(cyc.dp).toMatchObject({ epsilon: 3, delta: 1e-5, hessianShare: 0.2, interactionShare: 0.5, screenShare: 0.3, noise: 'local', distributed: null });
    expect(hasLeafRound(cyc)).toBe(false);
    const priv = parseGbdtParams({ dp: { epsilon: 3 }, trees: 40 });
    expect(priv).toMatchObject({ trees: GBDT_DEFAULTS.private.trees, depth: 3, splitMode: 'hybrid', histogramLevels: 1, columnsPerTree: 5, bins: 32 });
    expect(priv.dp).toEqual({
      epsilon: 3,
      delta: 1e-5,
      leafShare: 0.6,
      quantileShare: 0.1,
      hessianShare: 0.5,
      interactionShare: 0.5,
      screenShare: 0.3,
      noise: 'local',
      distributed: null,
    });
    expect(usesSubtraction(priv)).toBe(false);
    expect(hasLeafRound(priv)).toBe(true);
    expect(parseGbdtParams({ splitMode: 'random' })).toMatchObject({ histogramLevels: 0 });
    expect(hasLeafRound(parseGbdtParams({ splitMode: 'random' }))).toBe(true);
  });

  it('reject bad input naming the field', () => {
    expect(code(() => parseGbdtParams({ depth: 0 }))).toMatch(/depth/);
    expect(code(() => parseGbdtParams({ trees: 2.5 }))).toMatch(/trees/);
    expect(code(() => parseGbdtParams({ quantileGrid: 1000 }))).toMatch(/power of two/);
    expect(code(() => parseGbdtParams({ dp: { epsilon: -1 } }))).toMatch(/dp\.epsilon/);
    expect(code(() => parseGbdtParams({ splitMode: 'hybrid', depth: 3, histogramLevels: 3 }))).toMatch(/histogramLevels \(3\) must be below depth/);
    expect(code(() => parseGbdtParams({ splitMode: 'histogram', histogramLevels: 1 }))).toMatch(/hybrid/);
    expect(code(() => parseGbdtParams({ splitMode: 'hybrid', depth: 1 }))).toMatch(/depth ≥ 2/);
    expect(code(() => parseGbdtParams({ colsample: 0.5 }))).toMatch(/colsample/);
    expect(code(() => parseGbdtParams({ splitMode: 'cyclic', depth: 3 }))).toMatch(/depth applies to tree modes/);
    expect(code(() => parseGbdtParams({ splitMode: 'histogram', interactions: 2 }))).toMatch(/interactions applies to splitMode "cyclic"/);
    expect(code(() => parseGbdtParams({ splitMode: 'hybrid', lambdaNoise: 1 }))).toMatch(/lambdaNoise applies to splitMode "cyclic"/);
    expect(code(() => parseGbdtParams({ splitMode: 'cyclic', lambdaNoise: -1 }))).toMatch(/lambdaNoise/);
    expect(code(() => parseGbdtParams({ splitMode: 'hybrid', dp: { epsilon: 1, screenShare: 0.2 } }))).toMatch(/cyclic/);
    expect(code(() => parseGbdtParams({ dp: { epsilon: 1, noise: 'distributed' } }))).toMatch(/minContributors/);
    expect(code(() => parseGbdtParams({ dp: { epsilon: 1, noise: 'distributed', colluders: 3, minContributors: 3 } }))).toMatch(
      /colluders \(3\) must be below/,
    );
    expect(code(() => parseGbdtParams({ dp: { epsilon: 1, colluders: 1 } }))).toMatch(/distributed/);
  });
});
