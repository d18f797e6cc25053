import type { ParameterLayout } from '../model/params.ts';
import type { Workspace } from './backprop.ts';
import { chunkSums, type ChunkSums } from './chunked-gradients.ts';

/** One worker's share of a DP-SGD step: chunks [from, to) of the batch. X and y are views of SharedArrayBuffers (not copied per task). */
export interface GradientTask {
  layout: ParameterLayout;
  params: Float64Array;
  X: Float32Array;
  y: Float32Array;
  rows: Int32Array;
  from: number;
  to: number;
  clipNorm: number;
}

let workspace: Workspace | undefined;
let workspaceLayout: string | undefined;

/** Runs in a piscina worker (src/util/worker.mjs); the workspace is kept between tasks of the same model shape. */
export default function gradientTask(t: GradientTask): ChunkSums {
  const shape = JSON.stringify(t.layout);
  if (shape !== workspaceLayout) {
    workspace = undefined;
    workspaceLayout = shape;
  }
  const res = chunkSums(t.layout, t.params, t.X, t.y, t.rows, t.from, t.to, t.clipNorm, workspace);
  workspace = res.workspace;
  return { sums: res.sums, losses: res.losses, clipped: res.clipped };
}
