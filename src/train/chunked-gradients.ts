import type { ParameterLayout } from '../model/params.ts';
import { clippedGradientSum, type ClippedSum } from './dp-sgd.ts';
import { createWorkspace, type Workspace } from './backprop.ts';

/**
 * DP-SGD's clipped gradient sum over a large batch, in fixed chunks of GRADIENT_CHUNK_ROWS rows:
 * each chunk's sum is computed on its own and the chunk sums are added in chunk order. The order of
 * every floating-point addition depends only on the batch, never on how many threads computed the
 * chunks, so a run on one thread and on several gives bit-identical parameters (src/train/gradient-pool.ts).
 * A batch of at most one chunk is summed exactly as clippedGradientSum sums it.
 */
export const GRADIENT_CHUNK_ROWS = 2048;

export function chunkCount(count: number): number {
  return Math.max(1, Math.ceil(count / GRADIENT_CHUNK_ROWS));
}

export interface ChunkSums {
  /** chunks × P: chunk c's clipped gradient sum at [c·P, (c+1)·P). */
  sums: Float64Array;
  /** Each chunk's summed loss. */
  losses: Float64Array;
  clipped: number;
}

/** Sums of chunks [from, to) of the batch `rows` (what one worker computes). */
export function chunkSums(
  layout: ParameterLayout,
  params: Float64Array,
  X: Float32Array,
  y: Float32Array,
  rows: Int32Array,
  from: number,
  to: number,
  clipNorm: number,
  ws?: Workspace,
): ChunkSums & { workspace: Workspace } {
  const P = layout.size;
  const sums = new Float64Array((to - from) * P);
  const losses = new Float64Array(to - from);
  let clipped = 0;
  let workspace = ws ?? createWorkspace(layout, GRADIENT_CHUNK_ROWS);
  for (let c = from; c < to; c++) {
    const start = c * GRADIENT_CHUNK_ROWS;
    const part = rows.subarray(start, Math.min(rows.length, start + GRADIENT_CHUNK_ROWS));
    const res = clippedGradientSum(layout, params, X, y, part, part.length, clipNorm, sums.subarray((c - from) * P, (c - from + 1) * P), workspace);
    workspace = res.workspace;
    losses[c - from] = res.lossSum;
    clipped += res.clipped;
  }
  return { sums, losses, clipped, workspace };
}

/** Adds chunk sums in chunk order into `out` (the first chunk is copied, so one chunk gives exactly its own sum). Returns the summed loss. */
export function combineChunks(parts: readonly ChunkSums[], P: number, out: Float64Array): { lossSum: number; clipped: number } {
  let first = true;
  let lossSum = 0;
  let clipped = 0;
  for (const part of parts) {
    clipped += part.clipped;
    for (let c = 0; c < part.losses.length; c++) {
      const s = part.sums.subarray(c * P, (c + 1) * P);
      if (first) {
        out.set(s);
        lossSum = part.losses[c];
        first = false;
      } else {
        for (let i = 0; i < P; i++) out[i] += s[i];
        lossSum += part.losses[c];
      }
    }
  }
  return { lossSum, clipped };
}

/** The single-thread clipped sum of a batch of any size, chunked as the worker pool chunks it. */
export function chunkedClippedGradientSum(
  layout: ParameterLayout,
  params: Float64Array,
  X: Float32Array,
  y: Float32Array,
  rows: Int32Array,
  clipNorm: number,
  out: Float64Array,
  ws: Workspace,
): Pick<ClippedSum, 'lossSum' | 'clipped' | 'workspace'> {
  if (rows.length <= GRADIENT_CHUNK_ROWS) {
    const res = clippedGradientSum(layout, params, X, y, rows, rows.length, clipNorm, out, ws);
    return { lossSum: res.lossSum, clipped: res.clipped, workspace: res.workspace };
  }
  const res = chunkSums(layout, params, X, y, rows, 0, chunkCount(rows.length), clipNorm, ws);
  return { ...combineChunks([res], layout.size, out), workspace: res.workspace };
}
