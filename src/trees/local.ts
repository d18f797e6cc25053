/**
 * A partner's local step: from the public state and its own rows, the exact statistics of the current
 * round (noise is added by the caller once the release is charged, see ./dp.ts). Outputs depend only on
 * (state, rows); the caches (binned matrix, margins of finished trees) are checked against the state so a
 * restarted or replayed state recomputes rather than reuses.
 *
 * Per row: p = σ(margin), g = p − y clipped to [−1, 1], h = p(1 − p) clipped to [0, ¼] — the bounds the
 * sensitivities in ./dp.ts rely on.
 */
import { FedmarkError } from '../errors.ts';
import { binMatrix, dyadicCounts, type BinnedMatrix } from './edges.ts';
import { PENDING, leafSlot, routeRow, type HeapTree } from './heap-tree.ts';
import { clippedGradient, levelHistogramSums, levelHistogramSumsOnThreads, type LevelQuery } from './histograms.ts';
import { sharedFloat64 } from '../util/worker-pool.ts';
import { usesSubtraction } from './params.ts';
import { leafPartLength, levelPartLength, mainPartLength, pairPartLength, screenPartLength, screenSlotLength, treeBinLayout } from './schedule.ts';
import { currentStep, screenCandidates, termAxes, termOfStep, type GbdtState, type GbdtSums } from './state.ts';
import { cellOfRow, termAxis, type TermAxis } from './terms.ts';

/** Rows as src/data's Dataset holds them (structural type). */
export interface LocalRows {
  n: number;
  d: number;
  /** Row-major n × d encoded features. */
  X: Float32Array;
  /** 0/1 labels. */
  y: Float32Array;
}

const digests = new WeakMap<HeapTree, string>();
function treeDigest(t: HeapTree): string {
  let s = digests.get(t);
  if (s === undefined) {
    s = JSON.stringify([t.kind, t.group, t.cut, t.value]);
    digests.set(t, s);
  }
  return s;
}

export function logit(p: number): number {
  return Math.log(p / (1 - p));
}

export class GbdtLocalData {
  readonly rows: LocalRows;
  private binnedFor: { hash: string; matrix: BinnedMatrix } | null = null;
  private marginFor: { digests: string[]; margin: Float64Array; base: number } | null = null;

  constructor(rows: LocalRows) {
    const { n, d, X, y } = rows;
    if (!(Number.isInteger(n) && n >= 0 && Number.isInteger(d) && d >= 1)) throw new FedmarkError('GBDT_BAD_DATA', `bad shape n=${n}, d=${d}`);
    if (X.length < n * d || y.length < n)
      throw new FedmarkError('GBDT_BAD_DATA', `expected ${n} rows × ${d} features and ${n} labels, got ${X.length} values and ${y.length} labels`);
    for (let i = 0; i < n; i++) {
      if (y[i] !== 0 && y[i] !== 1) throw new FedmarkError('GBDT_BAD_DATA', `label of row ${i} is ${y[i]}; labels must be 0 or 1`);
    }
    this.rows = rows;
  }

  private checkWidth(state: GbdtState): void {
    if (this.rows.d !== state.layout.d) {
      throw new FedmarkError('GBDT_BAD_DATA', `rows have ${this.rows.d} features, the job's layout has ${state.layout.d}`);
    }
  }

  binned(state: GbdtState): BinnedMatrix {
    this.checkWidth(state);
    if (!state.edges || !state.edgesHash)
      throw new FedmarkError('GBDT_WRONG_STEP', 'the bin edges are not known yet (the quantile round has not been applied)');
    if (this.binnedFor?.hash !== state.edgesHash) {
      this.binnedFor = { hash: state.edgesHash, matrix: binMatrix(state.layout, state.params, state.edges, this.rows.X, this.rows.n) };
    }
    return this.binnedFor.matrix;
  }

  /** Margins (logits) of every row: the base, the finished trees (updated incrementally) and cyclic mode's terms. */
  margins(state: GbdtState): Float64Array {
    const trees = this.treeMargins(state);
    if (state.terms.length === 0) return trees;
    const data = this.binned(state);
    const out = Float64Array.from(trees, (m) => m + state.intercept);
    for (const t of state.terms) {
      const axes = termAxes(state, t);
      for (let i = 0; i < this.rows.n; i++) out[i] += t.values[cellOfRow(axes, data, i)];
    }
    return out;
  }

  private treeMargins(state: GbdtState): Float64Array {
    const data = this.binned(state);
    const base = logit(state.params.baseScore);
    const want = state.trees.map(treeDigest);
    let c = this.marginFor;
    const reusable = c !== null && c.base === base && c.digests.length <= want.length && c.digests.every((d, k) => d === want[k]);
    // Shared memory: histogram workers read the margins where they are (./histograms.ts).
    if (!reusable) c = { digests: [], margin: sharedFloat64(this.rows.n).fill(base), base };
    for (let t = c!.digests.length; t < state.trees.length; t++) {
      const tree = state.trees[t];
      for (let i = 0; i < this.rows.n; i++) c!.margin[i] += tree.value[routeRow(tree, state.layout, data, i)];
      c!.digests.push(want[t]);
    }
    this.marginFor = c;
    return c!.margin;
  }

  /** Clipped gradients and hessians of the binary log loss at the current margins (./histograms.ts clippedGradient). */
  gradients(state: GbdtState): { g: Float64Array; h: Float64Array } {
    const m = this.margins(state);
    const { n, y } = this.rows;
    const g = new Float64Array(n);
    const h = new Float64Array(n);
    const gh = new Float64Array(2);
    for (let i = 0; i < n; i++) {
      clippedGradient(m[i], y[i], gh);
      g[i] = gh[0];
      h[i] = gh[1];
    }
    return { g, h };
  }
}

/** Local step of the quantile round: exact dyadic counts of the partner's numeric values. */
export function quantileCounts(state: GbdtState, local: GbdtLocalData): GbdtSums {
  if (currentStep(state).kind !== 'quantiles') throw new FedmarkError('GBDT_WRONG_STEP', `step ${state.step} is not the quantile round`);
  const { X, n, d } = local.rows;
  if (d !== state.layout.d) throw new FedmarkError('GBDT_BAD_DATA', `rows have ${d} features, the job's layout has ${state.layout.d}`);
  return { counts: dyadicCounts(state.params, state.layout, X, n) };
}

/** What a level's histogram pass needs from the state (./histograms.ts). */
function levelQuery(state: GbdtState): LevelQuery {
  const step = currentStep(state);
  if (step.kind !== 'level') throw new FedmarkError('GBDT_WRONG_STEP', `step ${state.step} is not a histogram level`);
  const { params, layout } = state;
  const { groups, offsets, total } = treeBinLayout(params, layout, step.tree);
  return {
    tree: state.tree!,
    layout,
    level: step.level,
    subtract: usesSubtraction(params),
    groups,
    offsets,
    B: total,
    len: levelPartLength(params, layout, step.level),
  };
}

/**
 * Local step of a histogram level: G and H histograms (one bin per group per row) of the level's queried
 * node slots — every open node, or only left children (and the root) with subtraction. Fixed length
 * `levelPartLength`; slots of nodes that are not open stay zero.
 */
export function levelHistograms(state: GbdtState, local: GbdtLocalData): GbdtSums {
  return levelHistogramSums(levelQuery(state), local.binned(state), local.margins(state), local.rows.y);
}

/** When a local step uses worker threads: `threads` (1: never) once the partner has at least `minRows` rows. */
export interface LocalThreads {
  threads: number;
  minRows: number;
}

/**
 * The local step of the state's current step, with a histogram level's pass on worker threads when the
 * data is large (the same bits as `localStep`: ./histograms.ts).
 */
export async function localStepOnThreads(state: GbdtState, local: GbdtLocalData, t: LocalThreads): Promise<GbdtSums> {
  if (currentStep(state).kind !== 'level' || t.threads < 2 || local.rows.n < t.minRows) return localStep(state, local);
  return levelHistogramSumsOnThreads(levelQuery(state), local.binned(state), local.margins(state), local.rows.y, t.threads);
}

/** Local step of the leaf round: G and H of the rows in each pending leaf (slot = leftmost descendant at full depth). */
export function leafSums(state: GbdtState, local: GbdtLocalData): GbdtSums {
  if (currentStep(state).kind !== 'leaves') throw new FedmarkError('GBDT_WRONG_STEP', `step ${state.step} is not a leaf round`);
  const { params, layout } = state;
  const data = local.binned(state);
  const { g, h } = local.gradients(state);
  const len = leafPartLength(params);
  const grad = new Float64Array(len);
  const hess = new Float64Array(len);
  const tree = state.tree!;
  for (let i = 0; i < data.n; i++) {
    const node = routeRow(tree, layout, data, i);
    if (tree.kind[node] !== PENDING) continue;
    const s = leafSlot(node, params.depth);
    grad[s] += g[i];
    hess[s] += h[i];
  }
  return { grad, hess };
}

/** G and H of the rows in each cell of a term, written at `offset` of the parts. */
function addTermHistogram(
  state: GbdtState,
  local: GbdtLocalData,
  axes: readonly TermAxis[],
  out: GbdtSums,
  offset: number,
  g: Float64Array,
  h: Float64Array,
): void {
  const data = local.binned(state);
  for (let i = 0; i < data.n; i++) {
    const c = offset + cellOfRow(axes, data, i);
    out.grad[c] += g[i];
    out.hess[c] += h[i];
  }
}

/** Local step of a term round (cyclic mode): G and H of the rows in each cell of the column's or pair's term. */
export function termHistograms(state: GbdtState, local: GbdtLocalData): GbdtSums {
  const step = currentStep(state);
  if (step.kind !== 'main' && step.kind !== 'pair') throw new FedmarkError('GBDT_WRONG_STEP', `step ${state.step} is not a term round`);
  const len = step.kind === 'main' ? mainPartLength(state.params, state.layout, step.group) : pairPartLength(state.params, state.layout);
  const out = { grad: new Float64Array(len), hess: new Float64Array(len) };
  const { g, h } = local.gradients(state);
  addTermHistogram(state, local, termAxes(state, state.terms[termOfStep(state)]), out, 0, g, h);
  return out;
}

/** Local step of the screening round: every candidate pair's coarse 2-D histogram of G and H, one slot per pair. */
export function screenHistograms(state: GbdtState, local: GbdtLocalData): GbdtSums {
  if (currentStep(state).kind !== 'screen') throw new FedmarkError('GBDT_WRONG_STEP', `step ${state.step} is not the screening round`);
  const { params, layout } = state;
  const len = screenPartLength(params, layout);
  const slot = screenSlotLength(params, layout);
  const out = { grad: new Float64Array(len), hess: new Float64Array(len) };
  const { g, h } = local.gradients(state);
  screenCandidates(state).forEach((pair, k) => {
    addTermHistogram(
      state,
      local,
      pair.map((gi) => termAxis(layout, params, gi, params.cyclic!.screenBins)),
      out,
      k * slot,
      g,
      h,
    );
  });
  return out;
}

/** Dispatches to the local step of the state's current step. */
export function localStep(state: GbdtState, local: GbdtLocalData): GbdtSums {
  const kind = currentStep(state).kind;
  if (kind === 'quantiles') return quantileCounts(state, local);
  if (kind === 'level') return levelHistograms(state, local);
  if (kind === 'leaves') return leafSums(state, local);
  if (kind === 'main' || kind === 'pair') return termHistograms(state, local);
  if (kind === 'screen') return screenHistograms(state, local);
  throw new FedmarkError('GBDT_WRONG_STEP', `the job is complete after ${state.step} steps`);
}
