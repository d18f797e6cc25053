/**
 * The statistics against a direct computation from the rows: histograms, sibling subtraction, the
 * chosen split (brute force over every candidate) and the leaf weights — so the pooled-vs-federated
 * comparison is not merely the same code agreeing with itself.
 */
import { describe, expect, it } from 'vitest';
import {
  GbdtLocalData,
  applyStep,
  binMatrix,
  featureLayout,
  initialState,
  levelHistograms,
  localStep,
  parseGbdtParams,
  trainPooled,
  treeBinLayout,
  type GbdtState,
} from '../../src/trees/index.ts';
import { LEAF, SPLIT, goesRight, routeRow, xgbGain } from '../../src/trees/heap-tree.ts';
import { groupCuts } from '../../src/trees/candidates.ts';
import { SYNTH_SCHEMA, syntheticDataset } from './helpers.ts';

const layout = featureLayout(SYNTH_SCHEMA);
const data = syntheticDataset(2500, 21);
const params = parseGbdtParams({ trees: 3, depth: 3, learningRate: 0.3, lambda: 1, minChildWeight: 1, binEdges: 'schema', bins: 16 });

/** Rows in heap node `node` of the state's current tree, with their g, h at the current margins. */
function rowsAt(state: GbdtState, node: number) {
  const binned = binMatrix(layout, params, state.edges!, data.X, data.n);
  const margin = new GbdtLocalData(data).margins(state);
  const rows: { i: number; g: number; h: number }[] = [];
  for (let i = 0; i < data.n; i++) {
    if (routeRow(state.tree!, layout, binned, i) !== node) continue;
    const p = 1 / (1 + Math.exp(-margin[i]));
    rows.push({ i, g: p - data.y[i], h: p * (1 - p) });
  }
  return { rows, binned };
}

function directHistogram(state: GbdtState, node: number): { G: number[]; H: number[] } {
  const { rows, binned } = rowsAt(state, node);
  const bl = treeBinLayout(params, layout, 0);
  const G = new Array<number>(bl.total).fill(0);
  const H = new Array<number>(bl.total).fill(0);
  for (const r of rows) {
    bl.groups.forEach((gi, k) => {
      const at = bl.offsets[k] + binned.bins[r.i * binned.groups + gi];
      G[at] += r.g;
      H[at] += r.h;
    });
  }
  return { G, H };
}

function bruteForceSplit(state: GbdtState, node: number) {
  const { rows, binned } = rowsAt(state, node);
  let best: { group: number; cut: number; gain: number } | null = null;
  layout.groups.forEach((_, gi) => {
    for (const cut of groupCuts(layout, state.edges!, gi)) {
      let GL = 0,
        HL = 0,
        GR = 0,
        HR = 0;
      for (const r of rows) {
        if (goesRight(layout, gi, cut, binned.bins[r.i * binned.groups + gi])) {
          GR += r.g;
          HR += r.h;
        } else {
          GL += r.g;
          HL += r.h;
        }
      }
      if (HL < 1 || HR < 1) continue;
      const gain = xgbGain(GL, HL, GR, HR, params.lambda);
      if (gain > 1e-6 && (!best || gain > best.gain * (1 + 1e-9))) best = { group: gi, cut, gain };
    }
  });
  return best!;
}

const close = (a: number[], b: ArrayLike<number>, tol = 1e-9) => a.forEach((v, i) => expect(Math.abs(v - b[i]), `value ${i}`).toBeLessThan(tol));

describe('GBDT statistics match a direct computation from the rows', () => {
  it('the root histograms and the root split (brute force over every candidate)', () => {
    const state = initialState(params, layout);
    const sums = levelHistograms(state, new GbdtLocalData(data));
    const direct = directHistogram(state, 0);
    close(direct.G, sums.grad);
    close(direct.H, sums.hess);
    const next = applyStep(state, sums);
    const bf = bruteForceSplit(state, 0);
    expect([next.tree!.group[0], next.tree!.cut[0]]).toEqual([bf.group, bf.cut]);
    expect(next.tree!.gain[0]).toBeCloseTo(bf.gain, 6);
  });

  it('sibling subtraction: only left children are uploaded, and parent − left equals the right child’s own histogram', () => {
    const local = new GbdtLocalData(data);
    let state = initialState(params, layout);
    state = applyStep(state, localStep(state, local)); // level 0
    const level1 = localStep(state, local);
    const B = treeBinLayout(params, layout, 0).total;
    expect(level1.grad.length).toBe(B); // one query slot: the root's left child
    close(directHistogram(state, 1).G, level1.grad);
    const after = applyStep(state, level1);
    const right = directHistogram(state, 2);
    close(right.G, after.parent!.grad.slice(B, 2 * B), 1e-8);
    close(right.H, after.parent!.hess.slice(B, 2 * B), 1e-8);
    for (const node of [1, 2]) {
      const bf = bruteForceSplit(state, node);
      expect([after.tree!.group[node], after.tree!.cut[node]], `node ${node}`).toEqual([bf.group, bf.cut]);
    }
  });

  it('leaf weights are −η·G/(H+λ) of the rows that reach each leaf', () => {
    const { state } = trainPooled(params, layout, data);
    const first = { ...state, trees: [], tree: state.trees[0] } as GbdtState;
    const t = state.trees[0];
    let leaves = 0;
    t.kind.forEach((kind, i) => {
      if (kind !== LEAF) return;
      leaves++;
      const { rows } = rowsAt(first, i);
      const G = rows.reduce((a, r) => a + r.g, 0);
      const H = rows.reduce((a, r) => a + r.h, 0);
      expect(t.value[i]).toBeCloseTo(Math.fround((-params.learningRate * G) / (H + params.lambda)), 6);
    });
    expect(leaves).toBeGreaterThan(2);
    expect(t.kind.filter((k) => k === SPLIT).length).toBeGreaterThan(1);
  });
});
