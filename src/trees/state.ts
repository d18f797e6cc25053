/**
 * The public training state of a GBDT job and the server steps every key holder runs on the decrypted
 * sums. Each function is pure — (state, sums) → state — so the simulation, the pooled reference trainer
 * and the real nodes run the same code, and the state hash is the model-hash agreement.
 *
 * The state holds what the key holders are entitled to: the parameters, the layout, the bin edges, the
 * trees (with the node sums the key holders decrypted, needed for subtraction and feature importance),
 * and, between levels, the summed histograms of the previous level. None of it is a partner's own data.
 */
import { FedmarkError } from '../errors.ts';
import { sha256Canonical } from '../privacy/ledger/canonical.ts';
import { candidatePool, randomSplit } from './candidates.ts';
import { checkEdges, edgesFromCounts, edgesHash, quantilePartLength, schemaEdges, type BinEdges } from './edges.ts';
import { LEAF, OPEN, PENDING, SPLIT, depthOf, emptyTree, finishTree, leafSlot, levelSlot, cloneTree, type HeapTree } from './heap-tree.ts';
import { checkLayout, type FeatureLayout } from './layout.ts';
import { hasLeafRound, usesSubtraction, type GbdtParams } from './params.ts';
import {
  leafPartLength,
  levelPartLength,
  mainPartLength,
  pairPartLength,
  screenPartLength,
  screenSlotLength,
  stepAt,
  treeBinLayout,
  type GbdtStep,
} from './schedule.ts';
import { bestSplit, leafWeight } from './split.ts';
import { calibrateGbdtNoise, stepRelease, sumNoiseVariance, type GbdtNoisePlan } from './dp.ts';
import { candidatePairs, pairCounts, termAxis, termCells, type TermAxis } from './terms.ts';

export const STATE_FORMAT = 'fedmark-gbdt-state/2';

/** A term of cyclic mode: its columns, resolution and cell values (see ./terms.ts). */
export interface TermState {
  /** One column (a main effect) or two (an interaction), ascending. */
  groups: number[];
  /** Cells per numeric column (null: one per bin). */
  cells: number | null;
  /** Float32 value of every cell (sum of the term's updates). */
  values: number[];
  /** Hessian sums of the cells at the term's last update (what key holders decrypted; never released in the model). */
  H: number[];
  /** Loss reduction of the term's updates, noise variance removed: feature importance. */
  gain: number;
}

export interface GbdtState {
  format: typeof STATE_FORMAT;
  params: GbdtParams;
  layout: FeatureLayout;
  /** Index of the next step (round) to run. */
  step: number;
  edges: BinEdges | null;
  edgesHash: string | null;
  trees: HeapTree[];
  /** The tree being grown (null before the edges are known and after the last tree). */
  tree: HeapTree | null;
  /** Summed full histograms of the previous level's node slots, when levels use sibling subtraction. */
  parent: { grad: number[]; hess: number[] } | null;
  /** The job's noise (a function of params and layout, kept so every key holder demonstrably uses the same). */
  noise: GbdtNoisePlan;
  /** Cyclic mode: the main-effect terms (one per column, layout order), then the interaction terms the screening kept. */
  terms: TermState[];
  /** Cyclic mode: the float32 intercept the terms' updates are centred into (0 otherwise). */
  intercept: number;
}

export type GbdtSums = Record<string, Float64Array>;

/** The state before any round: public, the same at every key holder. */
export function initialState(params: GbdtParams, layout: FeatureLayout): GbdtState {
  checkLayout(layout);
  const edges = params.binEdges === 'schema' ? schemaEdges(layout, params) : null;
  const s: GbdtState = {
    format: STATE_FORMAT,
    params,
    layout,
    step: 0,
    edges,
    edgesHash: edges ? edgesHash(edges) : null,
    trees: [],
    tree: null,
    parent: null,
    noise: calibrateGbdtNoise(params, layout),
    terms: params.cyclic ? layout.groups.map((_, g) => emptyTerm(layout, params, [g], null)) : [],
    intercept: 0,
  };
  return startTreeIfDue(s);
}

/** Hash of the state (RFC 8785 canonical JSON, sha256): every key holder must agree on it after each round. */
export function stateHash(state: GbdtState): string {
  return sha256Canonical(state);
}

export function currentStep(state: GbdtState): GbdtStep {
  return stepAt(state.params, state.layout, state.step);
}

function expectStep(state: GbdtState, kind: GbdtStep['kind']): GbdtStep {
  const step = currentStep(state);
  if (step.kind !== kind) {
    throw new FedmarkError('GBDT_WRONG_STEP', `step ${state.step} is a "${step.kind}" step, not "${kind}"`);
  }
  return step;
}

function part(sums: GbdtSums, name: string, length: number): Float64Array {
  const v = sums[name];
  if (!(v instanceof Float64Array)) throw new FedmarkError('GBDT_BAD_PART', `missing part "${name}"`);
  if (v.length !== length) throw new FedmarkError('GBDT_BAD_PART', `part "${name}" has ${v.length} values, expected ${length}`);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new FedmarkError('GBDT_BAD_PART', `part "${name}" value ${i} is not finite`);
  }
  return v;
}

function emptyTerm(layout: FeatureLayout, params: GbdtParams, groups: number[], cells: number | null): TermState {
  const n = termCells(groups.map((g) => termAxis(layout, params, g, cells)));
  return { groups, cells, values: new Array<number>(n).fill(0), H: new Array<number>(n).fill(0), gain: 0 };
}

/** The axes of a term (public: from the layout and the term's columns). */
export function termAxes(state: Pick<GbdtState, 'layout' | 'params'>, term: Pick<TermState, 'groups' | 'cells'>): TermAxis[] {
  return term.groups.map((g) => termAxis(state.layout, state.params, g, term.cells));
}

function checkContributors(k: number): number {
  if (!(Number.isInteger(k) && k >= 1)) throw new FedmarkError('GBDT_BAD_PART', `contributors must be a positive integer, got ${k}`);
  return k;
}

/** Random splits (./candidates.ts) for every open node at or below `fromDepth`; nodes at full depth become pending leaves. */
function growRandom(state: GbdtState, tree: HeapTree, treeIndex: number, fromDepth: number): void {
  const { depth, seed } = state.params;
  const pool = candidatePool(state.layout, state.edges!);
  for (let i = 0; i < tree.kind.length; i++) {
    if (tree.kind[i] !== OPEN || depthOf(i) < fromDepth) continue;
    const split = depthOf(i) < depth ? randomSplit(pool, seed, treeIndex, i) : null;
    if (!split) {
      tree.kind[i] = PENDING;
      continue;
    }
    tree.kind[i] = SPLIT;
    tree.group[i] = split.group;
    tree.cut[i] = split.cut;
    tree.kind[2 * i + 1] = OPEN;
    tree.kind[2 * i + 2] = OPEN;
  }
}

/** When the state's step is the first of a tree (and the edges are known), plants that tree's root. */
function startTreeIfDue(s: GbdtState): GbdtState {
  const step = currentStep(s);
  if ((step.kind !== 'level' && step.kind !== 'leaves') || s.tree !== null) return s;
  const t = emptyTree(s.params.depth);
  t.kind[0] = OPEN;
  if (s.params.histogramLevels === 0) growRandom(s, t, step.tree, 0);
  return { ...s, tree: t, parent: null };
}

/** Moves to the next step; a tree finished at this step joins the ensemble and the next one is planted. */
function advance(s: GbdtState, tree: HeapTree, finished: boolean): GbdtState {
  const next: GbdtState = finished
    ? { ...s, step: s.step + 1, trees: [...s.trees, finishTree(tree, s.params.lambda)], tree: null, parent: null }
    : { ...s, step: s.step + 1, tree };
  return startTreeIfDue(next);
}

/** Server step of the quantile round: the summed counts → the shared bin edges (and their hash). */
export function applyQuantiles(state: GbdtState, sums: GbdtSums): GbdtState {
  expectStep(state, 'quantiles');
  const counts = part(sums, 'counts', quantilePartLength(state.params, state.layout));
  const edges = checkEdges(state.layout, state.params, edgesFromCounts(state.params, state.layout, counts));
  return startTreeIfDue({ ...state, step: state.step + 1, edges, edgesHash: edgesHash(edges) });
}

/** Full histograms of the level's open node slots: the released ones, or parent − left with subtraction. */
function fullHistograms(state: GbdtState, level: number, grad: Float64Array, hess: Float64Array, B: number, fullG: Float64Array, fullH: Float64Array): void {
  const subtract = usesSubtraction(state.params);
  const tree = state.tree!;
  const first = 2 ** level - 1;
  for (let i = first; i < first + 2 ** level; i++) {
    if (tree.kind[i] !== OPEN) continue;
    const slot = i - first;
    if (!subtract || level === 0) {
      const q = subtract ? 0 : slot;
      fullG.set(grad.subarray(q * B, (q + 1) * B), slot * B);
      fullH.set(hess.subarray(q * B, (q + 1) * B), slot * B);
      continue;
    }
    const p = (i - 1) >> 1;
    const ps = levelSlot(p);
    const isLeft = i === 2 * p + 1;
    for (let b = 0; b < B; b++) {
      const lg = grad[ps * B + b];
      const lh = hess[ps * B + b];
      fullG[slot * B + b] = isLeft ? lg : state.parent!.grad[ps * B + b] - lg;
      fullH[slot * B + b] = isLeft ? lh : state.parent!.hess[ps * B + b] - lh;
    }
  }
}

/**
 * Server step of a histogram level: every open node of the level takes the best split of its summed
 * histograms, or becomes a leaf. With subtraction the right child's histogram is parent − left.
 */
export function applyLevel(state: GbdtState, sums: GbdtSums, contributors = 1): GbdtState {
  const step = expectStep(state, 'level');
  if (step.kind !== 'level') throw new Error('unreachable');
  const { params, layout } = state;
  const { level } = step;
  const len = levelPartLength(params, layout, level);
  const grad = part(sums, 'grad', len);
  const hess = part(sums, 'hess', len);
  const bins = treeBinLayout(params, layout, step.tree);
  const B = bins.total;
  const subtract = usesSubtraction(params);
  const tree = cloneTree(state.tree!);
  const first = 2 ** level - 1;
  const width = 2 ** level;
  const release = stepRelease(params, layout, state.noise, state.step);
  const { grad: gradVar, hess: hessVar } = sumNoiseVariance(release, checkContributors(contributors));
  const fullG = new Float64Array(width * B);
  const fullH = new Float64Array(width * B);
  fullHistograms(state, level, grad, hess, B, fullG, fullH);
  const leafRound = hasLeafRound(params);
  const lastLevel = level + 1 === params.depth;
  const settle = (i: number, G: number, H: number) => {
    tree.G[i] = G;
    tree.H[i] = H;
    if (leafRound) tree.kind[i] = PENDING;
    else {
      tree.kind[i] = LEAF;
      tree.value[i] = leafWeight(G, H, params);
    }
  };
  for (let i = first; i < first + width; i++) {
    if (tree.kind[i] !== OPEN) continue;
    const base = (i - first) * B;
    const choice = bestSplit(layout, bins, state.edges!, params, fullG, fullH, base, gradVar, hessVar);
    if (choice === null) {
      // The node's totals from its first histogrammed column (every column's bins hold the same rows).
      let G = 0;
      let H = 0;
      for (let b = 0; b < bins.sizes[0]; b++) {
        G += fullG[base + b];
        H += fullH[base + b];
      }
      settle(i, G, H);
      continue;
    }
    tree.kind[i] = SPLIT;
    tree.group[i] = choice.group;
    tree.cut[i] = choice.cut;
    tree.gain[i] = choice.gain;
    const l = 2 * i + 1;
    if (lastLevel) {
      settle(l, choice.GL, choice.HL);
      settle(l + 1, choice.GR, choice.HR);
    } else {
      tree.kind[l] = OPEN;
      tree.kind[l + 1] = OPEN;
    }
  }
  if (level + 1 === params.histogramLevels && params.histogramLevels < params.depth) growRandom(state, tree, step.tree, level + 1);
  const finished = !leafRound && level + 1 === params.histogramLevels;
  const next = advance(state, tree, finished);
  // The next level subtracts from these full histograms.
  if (!subtract || level + 1 >= params.histogramLevels) return next;
  return { ...next, parent: { grad: Array.from(fullG), hess: Array.from(fullH) } };
}

/** Server step of the leaf round: every pending leaf's weight from its summed (noisy) G and H. */
export function applyLeaves(state: GbdtState, sums: GbdtSums): GbdtState {
  expectStep(state, 'leaves');
  const { params } = state;
  const len = leafPartLength(params);
  const grad = part(sums, 'grad', len);
  const hess = part(sums, 'hess', len);
  const tree = cloneTree(state.tree!);
  for (let i = 0; i < tree.kind.length; i++) {
    if (tree.kind[i] !== PENDING) continue;
    const s = leafSlot(i, params.depth);
    const G = grad[s];
    const H = hess[s];
    tree.G[i] = G;
    tree.H[i] = H;
    tree.kind[i] = LEAF;
    // A leaf with less released hessian than a split would need carries no weight: under DP its sums are mostly noise.
    tree.value[i] = H >= params.minChildWeight ? leafWeight(G, H, params) : 0;
  }
  return advance(state, tree, true);
}

/**
 * Dispatches a round's summed parts to the server step of the state's current step. `contributors` is
 * the number of partners whose uploads were summed (public in the round), which fixes the noise variance
 * of the sums.
 */
export function applyStep(state: GbdtState, sums: GbdtSums, contributors = 1): GbdtState {
  const kind = currentStep(state).kind;
  if (kind === 'quantiles') return applyQuantiles(state, sums);
  if (kind === 'level') return applyLevel(state, sums, contributors);
  if (kind === 'leaves') return applyLeaves(state, sums);
  if (kind === 'main' || kind === 'pair') return applyTerm(state, sums, contributors);
  if (kind === 'screen') return applyScreen(state, sums, contributors);
  throw new FedmarkError('GBDT_WRONG_STEP', `the job is complete after ${state.step} steps`);
}

// --- cyclic mode ---------------------------------------------------------------------------------

/**
 * Columns ranked by the strength of their main-effect term: the hessian-weighted variance of its
 * values (what the term moves the margin by, over the rows), strongest first, ties by column. Public:
 * a function of the decrypted sums every key holder has.
 */
export function rankedColumns(state: GbdtState): number[] {
  const strength = state.layout.groups.map((_, g) => {
    const t = state.terms[g];
    let W = 0;
    let m = 0;
    t.values.forEach((v, c) => {
      W += t.H[c];
      m += t.H[c] * v;
    });
    if (!(W > 0)) return 0;
    m /= W;
    return t.values.reduce((acc, v, c) => acc + t.H[c] * (v - m) ** 2, 0);
  });
  return strength
    .map((v, g) => [v, g])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .map((x) => x[1]);
}

/** The pairs the screening round scores, from the public main-effect terms. */
export function screenCandidates(state: GbdtState): [number, number][] {
  return candidatePairs(rankedColumns(state), state.params.cyclic!.interactionColumns);
}

/** The term a main or pair step updates: the column's main term, or the interaction term of a kept pair. */
export function termOfStep(state: GbdtState): number {
  const step = currentStep(state);
  if (step.kind === 'main') return step.group;
  if (step.kind === 'pair') return state.layout.groups.length + step.slot;
  throw new FedmarkError('GBDT_WRONG_STEP', `step ${state.step} is a "${step.kind}" step, not a term step`);
}

/**
 * λ of a term update: the job's λ plus lambdaNoise × the std of the noise in one summed gradient cell
 * (vG: the variance the sum of this round's uploads carries, known to every key holder). A noisy cell
 * G is shrunk as much as its noise calls for — a fixed λ is too strong at large ε and too weak at
 * small — and the sum is the same for every key holder, so every party computes the same terms.
 */
function termLambda(params: GbdtParams, vG: number): number {
  return params.lambda + (params.cyclic?.lambdaNoise ?? 0) * Math.sqrt(vG);
}

/**
 * Server step of a term round: every cell's value moves by the Newton step −η·G/(H+λ) (λ from termLambda) of its summed
 * (noisy) statistics — the partition is fixed, so nothing is searched and every released value is
 * used. The update is centred (its hessian-weighted mean goes to the intercept), so a term holds its
 * column's effect, not a share of the base rate; predictions are the same either way. The gain — the
 * Newton gain of the cells over one leaf, noise variance removed, floored at 0 — feeds feature
 * importance.
 */
export function applyTerm(state: GbdtState, sums: GbdtSums, contributors = 1): GbdtState {
  const index = termOfStep(state);
  const { params, layout } = state;
  const step = currentStep(state);
  const len = step.kind === 'main' ? mainPartLength(params, layout, step.group) : pairPartLength(params, layout);
  const grad = part(sums, 'grad', len);
  const hess = part(sums, 'hess', len);
  const { grad: vG } = sumNoiseVariance(stepRelease(params, layout, state.noise, state.step), checkContributors(contributors));
  const lambda = termLambda(params, vG);
  const old = state.terms[index];
  const n = old.values.length;
  const H = Array.from(hess.subarray(0, n), (h) => Math.max(h, 0));
  const w = Array.from({ length: n }, (_, c) => leafWeight(grad[c], hess[c], { ...params, lambda }));
  let mass = 0;
  let mean = 0;
  let Gt = 0;
  let cellsGain = 0;
  for (let c = 0; c < n; c++) {
    mass += H[c];
    mean += H[c] * w[c];
    Gt += grad[c];
    cellsGain += (grad[c] * grad[c] - vG) / (H[c] + lambda);
  }
  mean = mass > 0 ? mean / mass : 0;
  const shift = Math.fround(mean);
  const values = old.values.map((v, c) => Math.fround(v + w[c] - shift));
  const gain = Math.max(0, cellsGain - (Gt * Gt - n * vG) / (mass + lambda));
  const terms = [...state.terms];
  terms[index] = { ...old, values, H, gain: old.gain + (Number.isFinite(gain) ? gain : 0) };
  return { ...state, step: state.step + 1, terms, intercept: Math.fround(state.intercept + shift) };
}

/**
 * How strongly a pair interacts, from its coarse ka × kb residual histogram: the Newton gain of the
 * cells minus that of the row and column margins plus that of the total (the interaction part of a
 * two-way decomposition, so main effects the cyclic rounds have not fully fitted yet do not count),
 * each cell's G² corrected by s = H + (summed cells) × the DP noise variance — what G² is from
 * sampling and noise alone — and divided by the standard deviation the gain has when there is no
 * interaction ((ka−1)(kb−1) of the ka·kb cells' chance variance). Pairs with many cells therefore do
 * not win by chance.
 */
export function interactionScore(ka: number, kb: number, grad: ArrayLike<number>, hess: ArrayLike<number>, noiseVar: number, lambda: number): number {
  const rowG = new Float64Array(ka);
  const rowH = new Float64Array(ka);
  const colG = new Float64Array(kb);
  const colH = new Float64Array(kb);
  let Gt = 0;
  let Ht = 0;
  const term = (G: number, H: number, cells: number) => (G * G - (H + cells * noiseVar)) / (H + lambda);
  let gain = 0;
  let nullVar = 0;
  for (let a = 0; a < ka; a++) {
    for (let b = 0; b < kb; b++) {
      const G = grad[a * kb + b];
      const H = Math.max(hess[a * kb + b], 0);
      gain += term(G, H, 1);
      const chance = H + noiseVar;
      nullVar += (2 * chance * chance) / ((H + lambda) * (H + lambda));
      rowG[a] += G;
      rowH[a] += H;
      colG[b] += G;
      colH[b] += H;
      Gt += G;
      Ht += H;
    }
  }
  for (let a = 0; a < ka; a++) gain -= term(rowG[a], rowH[a], kb);
  for (let b = 0; b < kb; b++) gain -= term(colG[b], colH[b], ka);
  gain += term(Gt, Ht, ka * kb);
  const sd = Math.sqrt((nullVar * (ka - 1) * (kb - 1)) / (ka * kb));
  return sd > 0 ? gain / sd : gain;
}

/**
 * Server step of the screening round: every candidate pair gets its `interactionScore` from its
 * coarse 2-D residual histogram, and the strongest `interactions` pairs become terms (ties: candidate
 * order).
 */
export function applyScreen(state: GbdtState, sums: GbdtSums, contributors = 1): GbdtState {
  expectStep(state, 'screen');
  const { params, layout } = state;
  const cyc = params.cyclic!;
  const grad = part(sums, 'grad', screenPartLength(params, layout));
  const hess = part(sums, 'hess', screenPartLength(params, layout));
  const { grad: vG } = sumNoiseVariance(stepRelease(params, layout, state.noise, state.step), checkContributors(contributors));
  const slot = screenSlotLength(params, layout);
  const scored = screenCandidates(state).map((pair, k) => {
    const axes = pair.map((g) => termAxis(layout, params, g, cyc.screenBins));
    return { pair, k, z: interactionScore(axes[0].size, axes[1].size, grad.subarray(k * slot), hess.subarray(k * slot), vG, termLambda(params, vG)) };
  });
  scored.sort((a, b) => b.z - a.z || a.k - b.k);
  const kept = scored.slice(0, pairCounts(cyc, layout.groups.length).kept).map((x) => x.pair);
  const terms = [...state.terms, ...kept.map((p) => emptyTerm(layout, params, p, cyc.interactionBins))];
  return { ...state, step: state.step + 1, terms };
}

export function isComplete(state: GbdtState): boolean {
  return currentStep(state).kind === 'done';
}
