import { describe, expect, it } from 'vitest';
import { addGaussianNoiseInPlace } from '../../src/privacy/index.ts';
import {
  binMatrix,
  checkEdges,
  edgesFromCounts,
  edgesHash,
  featureLayout,
  parseGbdtParams,
  dyadicCounts,
  quantilePartLength,
  schemaEdges,
  sumParts,
} from '../../src/trees/index.ts';
import { SYNTH_SCHEMA, splitRows, syntheticDataset, thrown } from './helpers.ts';

const layout = featureLayout(SYNTH_SCHEMA);
const data = syntheticDataset(4000, 7);
const params = parseGbdtParams({ bins: 16, quantileGrid: 1024 });
const BALANCE = layout.groups.findIndex((g) => g.name === 'balance');
const column = (gi: number) => {
  const g = layout.groups[gi];
  if (g.kind === 'categorical') throw new Error('numeric only');
  return Array.from({ length: data.n }, (_, i) => data.X[i * layout.d + g.feature]);
};

describe('feature layout and schema edges', () => {
  it('groups one schema column each: numeric, categorical one-hot slots, boolean', () => {
    expect(layout.groups.map((g) => `${g.name}:${g.kind}`)).toEqual([
      'age:numeric',
      'balance:numeric',
      'score:numeric',
      'channel:categorical',
      'member:binary',
    ]);
    const channel = layout.groups[3];
    expect(channel.kind === 'categorical' && channel.slots).toBe(5); // 4 values + <other>
    expect(layout.groups[2]).toMatchObject({ lo: -1, hi: 1 }); // scale: centered
  });

  it('cuts each declared range into equal float32 widths; booleans at ½; categoricals by slot', () => {
    const e = schemaEdges(layout, params);
    expect(e.cuts[0]).toHaveLength(15);
    expect(e.cuts[0][7]).toBe(Math.fround(0.5));
    expect(e.cuts[2][7]).toBe(0); // centered: midpoint of [−1, 1]
    for (const c of e.cuts[0]) expect(Math.fround(c)).toBe(c);
    expect(e.cuts[3]).toEqual([]);
    expect(e.cuts[4]).toEqual([0.5]);
  });

  it('a column crowded near the bottom of a wide declared range lands in one schema bin, but spreads over DP-quantile bins', () => {
    const bal = column(BALANCE);
    const schemaBins = binMatrix(layout, params, schemaEdges(layout, params), data.X, data.n);
    const counts = (bins: Uint8Array | Uint16Array) => {
      const c = new Array<number>(16).fill(0);
      for (let i = 0; i < data.n; i++) c[bins[i * layout.groups.length + BALANCE]]++;
      return c;
    };
    expect(Math.max(...counts(schemaBins.bins))).toBeGreaterThan(0.99 * data.n);
    const q = edgesFromCounts(params, layout, dyadicCounts(params, layout, data.X, data.n));
    const qc = counts(binMatrix(layout, params, q, data.X, data.n).bins);
    expect(Math.max(...qc)).toBeLessThan(0.2 * data.n);
    expect(qc.filter((c) => c > 0).length).toBeGreaterThan(8);
    expect(bal.length).toBe(data.n);
  });
});

describe('DP quantile edges', () => {
  it('dyadic counts: every level adds up to the rows, and a row touches one cell per level', () => {
    const c = dyadicCounts(params, layout, data.X, 1);
    const levels = Math.log2(params.quantileGrid) + 1;
    const numeric = layout.groups.filter((g) => g.kind === 'numeric').length;
    expect(c.length).toBe(quantilePartLength(params, layout));
    expect(c.reduce((a, b) => a + b, 0)).toBe(levels * numeric);
    const all = dyadicCounts(params, layout, data.X, data.n);
    let at = 0;
    for (let w = params.quantileGrid; w >= 1; w >>= 1) {
      expect(all.subarray(at, at + w).reduce((a, b) => a + b, 0)).toBe(data.n);
      at += w;
    }
  });

  it('exact counts give the empirical quantiles, up to the grid resolution', () => {
    const e = edgesFromCounts(params, layout, dyadicCounts(params, layout, data.X, data.n));
    const age = column(0).sort((a, b) => a - b);
    for (let k = 1; k < 16; k++) {
      const cut = e.cuts[0][k - 1];
      const below = age.filter((v) => v < cut).length / age.length;
      expect(Math.abs(below - k / 16)).toBeLessThan(0.03);
    }
  });

  it('summed partner counts give the same edges as pooled counts; the hash pins them', () => {
    const parts = splitRows(data, [1000, 2000, 1000]);
    const summed = sumParts(parts.map((p) => ({ counts: dyadicCounts(params, layout, p.X, p.n) }))).counts;
    const a = edgesFromCounts(params, layout, summed);
    const b = edgesFromCounts(params, layout, dyadicCounts(params, layout, data.X, data.n));
    expect(a).toEqual(b);
    expect(edgesHash(a)).toBe(edgesHash(b));
    const other = structuredClone(a);
    other.cuts[0][3] = Math.fround(other.cuts[0][3] + 0.01);
    expect(edgesHash(other)).not.toBe(edgesHash(a));
  });

  it('noisy counts still give ascending, in-range float32 edges near the true quantiles, the same at every key holder', () => {
    const counts = dyadicCounts(params, layout, data.X, data.n);
    addGaussianNoiseInPlace(counts, 8);
    const a = edgesFromCounts(params, layout, counts);
    expect(edgesFromCounts(params, layout, Float64Array.from(counts))).toEqual(a);
    checkEdges(layout, params, a);
    const age = column(0).sort((x, y) => x - y);
    const median = age.filter((v) => v < a.cuts[0][7]).length / age.length;
    expect(Math.abs(median - 0.5)).toBeLessThan(0.06);
  });

  it('a group with no rows anywhere falls back to the schema widths', () => {
    const e = edgesFromCounts(params, layout, new Float64Array(quantilePartLength(params, layout)));
    expect(e).toEqual(schemaEdges(layout, params));
  });
});

describe('binning refuses what would break the tree/model correspondence', () => {
  const edges = schemaEdges(layout, params);
  const code = (f: () => unknown) => thrown(f).code;
  it('rows whose one-hot slots are not exactly one-hot, NaN values, bad edges', () => {
    const X = Float32Array.from(data.X.subarray(0, layout.d));
    const off = (layout.groups[3] as { offset: number }).offset;
    const two = Float32Array.from(X);
    two[off] = 1;
    two[off + 1] = 1;
    expect(code(() => binMatrix(layout, params, edges, two, 1))).toBe('GBDT_BAD_VALUE');
    const none = Float32Array.from(X);
    for (let s = 0; s < 5; s++) none[off + s] = 0;
    expect(code(() => binMatrix(layout, params, edges, none, 1))).toBe('GBDT_BAD_VALUE');
    const nan = Float32Array.from(X);
    nan[0] = NaN;
    expect(code(() => binMatrix(layout, params, edges, nan, 1))).toBe('GBDT_BAD_VALUE');
    expect(code(() => binMatrix(layout, params, edges, X, 2))).toBe('GBDT_BAD_DATA');
    expect(code(() => checkEdges(layout, params, { cuts: edges.cuts.slice(1) }))).toBe('GBDT_BAD_EDGES');
    const unsorted = structuredClone(edges);
    unsorted.cuts[0].reverse();
    expect(code(() => checkEdges(layout, params, unsorted))).toBe('GBDT_BAD_EDGES');
    const notF32 = structuredClone(edges);
    notF32.cuts[0][0] = 0.1;
    expect(code(() => checkEdges(layout, params, notF32))).toBe('GBDT_BAD_EDGES');
  });
});
