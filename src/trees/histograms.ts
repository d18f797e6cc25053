/**
 * A partner's level histograms (the G and H sums of every queried node slot, one bin per column per
 * row) in fixed chunks of HISTOGRAM_CHUNK_ROWS rows: each chunk is summed on its own and the chunk sums
 * are added into the result in chunk order. The order of every floating-point addition then depends
 * only on the rows, never on how many threads summed the chunks, so a run on worker threads gives the
 * single-thread bits. Data of at most one chunk (every bundled file) is summed row by row into the
 * result, exactly as before chunking.
 *
 * On threads: the calling thread sums the first run of chunks while `threads − 1` workers of the
 * shared pool (src/util/worker-pool.ts) sum the others, each computing its rows' gradients from the
 * margins; the binned matrix and the labels are shared once (SharedArrayBuffer), the margins live in
 * one, and a task sends the tree and a chunk range.
 */
import type { BinnedMatrix } from './edges.ts';
import { OPEN, depthOf, levelSlot, routeRow, type HeapTree } from './heap-tree.ts';
import type { FeatureLayout } from './layout.ts';
import { runOnWorker, sharedCopy } from '../util/worker-pool.ts';

export const HISTOGRAM_CHUNK_ROWS = 65_536;

/** What a level's histogram pass needs besides the rows (public: from the state). */
export interface LevelQuery {
  tree: HeapTree;
  layout: FeatureLayout;
  level: number;
  /** Sibling subtraction: only the root and left children are summed. */
  subtract: boolean;
  /** Histogrammed columns of the tree (binned-matrix group indices) and where each one's bins start in a node's slot. */
  groups: readonly number[];
  offsets: ArrayLike<number>;
  /** Values per node slot. */
  B: number;
  /** Length of each part (query slots × B). */
  len: number;
}

/**
 * A row's g = p − y clipped to [−1, 1] and h = p(1 − p) clipped to [0, ¼] at margin m, p = σ(m) —
 * the bounds the sensitivities in ./dp.ts rely on. Written to out[0], out[1]; the one definition the
 * histogram passes and GbdtLocalData.gradients share.
 */
export function clippedGradient(m: number, y: number, out: Float64Array): void {
  const p = 1 / (1 + Math.exp(-m));
  const gi = p - y;
  const hi = p * (1 - p);
  out[0] = gi < -1 ? -1 : gi > 1 ? 1 : gi;
  out[1] = hi < 0 ? 0 : hi > 0.25 ? 0.25 : hi;
}

/** Rows [from, to) added into grad/hess (the single-chunk path and each chunk's own sum); g and h from the margins. */
function addRows(
  q: LevelQuery,
  data: BinnedMatrix,
  margin: Float64Array,
  y: Float32Array,
  from: number,
  to: number,
  grad: Float64Array,
  hess: Float64Array,
): void {
  const { tree, layout, level, subtract, groups, offsets, B } = q;
  const G = data.groups;
  const bins = data.bins;
  const gh = new Float64Array(2);
  for (let i = from; i < to; i++) {
    const node = routeRow(tree, layout, data, i);
    if (tree.kind[node] !== OPEN || depthOf(node) !== level) continue;
    let slot: number;
    if (!subtract) slot = levelSlot(node);
    else if (node === 0) slot = 0;
    else if (node % 2 === 1) slot = levelSlot((node - 1) >> 1);
    else continue; // right child: parent − left
    const base = slot * B;
    clippedGradient(margin[i], y[i], gh);
    const gi = gh[0];
    const hi = gh[1];
    const row = i * G;
    for (let k = 0; k < groups.length; k++) {
      const at = base + offsets[k] + bins[row + groups[k]];
      grad[at] += gi;
      hess[at] += hi;
    }
  }
}

export function histogramChunks(n: number): number {
  return Math.max(1, Math.ceil(n / HISTOGRAM_CHUNK_ROWS));
}

export interface HistogramChunkSums {
  /** chunks × len: chunk c's sums at [c·len, (c+1)·len). */
  grad: Float64Array;
  hess: Float64Array;
}

/** Each chunk's own sums, for chunks [from, to) (what one worker computes). */
export function levelChunkSums(q: LevelQuery, data: BinnedMatrix, margin: Float64Array, y: Float32Array, from: number, to: number): HistogramChunkSums {
  const grad = new Float64Array((to - from) * q.len);
  const hess = new Float64Array((to - from) * q.len);
  for (let c = from; c < to; c++) {
    const k = c - from;
    const start = c * HISTOGRAM_CHUNK_ROWS;
    addRows(
      q,
      data,
      margin,
      y,
      start,
      Math.min(data.n, start + HISTOGRAM_CHUNK_ROWS),
      grad.subarray(k * q.len, (k + 1) * q.len),
      hess.subarray(k * q.len, (k + 1) * q.len),
    );
  }
  return { grad, hess };
}

/** Adds chunk sums into the result, in the order given (chunk order). */
function addChunks(part: HistogramChunkSums, len: number, grad: Float64Array, hess: Float64Array): void {
  for (let off = 0; off < part.grad.length; off += len) {
    for (let j = 0; j < len; j++) {
      grad[j] += part.grad[off + j];
      hess[j] += part.hess[off + j];
    }
  }
}

/** The level's histograms on the calling thread. */
export function levelHistogramSums(q: LevelQuery, data: BinnedMatrix, margin: Float64Array, y: Float32Array): { grad: Float64Array; hess: Float64Array } {
  const grad = new Float64Array(q.len);
  const hess = new Float64Array(q.len);
  const chunks = histogramChunks(data.n);
  if (chunks === 1) addRows(q, data, margin, y, 0, data.n, grad, hess);
  else for (let c = 0; c < chunks; c++) addChunks(levelChunkSums(q, data, margin, y, c, c + 1), q.len, grad, hess);
  return { grad, hess };
}

/** One worker's share: chunks [from, to) of a level pass. bins, g and h are views of SharedArrayBuffers. */
export interface HistogramTask {
  query: LevelQuery;
  data: BinnedMatrix;
  margin: Float64Array;
  y: Float32Array;
  from: number;
  to: number;
}

/** The level's histograms with `threads` threads (the calling one and threads − 1 workers): the same bits as levelHistogramSums. */
export async function levelHistogramSumsOnThreads(
  q: LevelQuery,
  data: BinnedMatrix,
  margin: Float64Array,
  y: Float32Array,
  threads: number,
): Promise<{ grad: Float64Array; hess: Float64Array }> {
  const chunks = histogramChunks(data.n);
  if (threads < 2 || chunks < 2) return levelHistogramSums(q, data, margin, y);
  const per = Math.ceil(chunks / threads);
  const shared: BinnedMatrix = { n: data.n, groups: data.groups, bins: sharedCopy(data.bins) };
  const sm = sharedCopy(margin);
  const sy = sharedCopy(y);
  const tasks: Promise<HistogramChunkSums>[] = [];
  for (let from = per; from < chunks; from += per) {
    const task: HistogramTask = { query: q, data: shared, margin: sm, y: sy, from, to: Math.min(chunks, from + per) };
    tasks.push(runOnWorker<HistogramChunkSums>(threads - 1, 'histograms', task));
  }
  const grad = new Float64Array(q.len);
  const hess = new Float64Array(q.len);
  addChunks(levelChunkSums(q, data, margin, y, 0, Math.min(per, chunks)), q.len, grad, hess);
  for (const part of await Promise.all(tasks)) addChunks(part, q.len, grad, hess);
  return { grad, hess };
}
