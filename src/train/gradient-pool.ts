import { FedmarkError } from '../errors.ts';
import { runOnWorker, sharedCopy } from '../util/worker-pool.ts';
import type { ParameterLayout } from '../model/params.ts';
import { chunkCount, chunkSums, combineChunks, GRADIENT_CHUNK_ROWS, type ChunkSums } from './chunked-gradients.ts';
import type { GradientTask } from './gradient-task.ts';
import type { Workspace } from './backprop.ts';

/**
 * DP-SGD's per-example gradients on several cores: each step's batch is cut into the fixed chunks of
 * chunked-gradients.ts; the calling thread sums the first run of chunks itself while `threads − 1`
 * piscina worker threads sum the others, and the chunk sums are added back in chunk order — so the
 * result is bit-identical to the single-thread run. Features and labels are shared with the workers
 * (a SharedArrayBuffer copy made once per dataset and kept while the dataset lives), never sent per
 * step: a step sends the parameters and the batch's row indices. The workers are the shared pool of
 * src/util/worker-pool.ts.
 */
export class GradientPool {
  private readonly X: Float32Array;
  private readonly y: Float32Array;
  private ws: Workspace | undefined;

  constructor(
    readonly threads: number,
    data: { X: Float32Array; y: Float32Array },
  ) {
    if (!(Number.isInteger(threads) && threads >= 2)) throw new FedmarkError('INVALID_THREADS', `a gradient pool needs at least 2 threads, got ${threads}`);
    this.X = sharedCopy(data.X);
    this.y = sharedCopy(data.y);
  }

  /** Σ clipped per-example gradients of the batch `rows` into `out`; the same bits as chunkedClippedGradientSum. */
  async sum(
    layout: ParameterLayout,
    params: Float64Array,
    rows: Int32Array,
    clipNorm: number,
    out: Float64Array,
  ): Promise<{ lossSum: number; clipped: number }> {
    const chunks = chunkCount(rows.length);
    const per = Math.ceil(chunks / this.threads);
    const tasks: Promise<ChunkSums>[] = [];
    for (let from = per; from < chunks; from += per) {
      const to = Math.min(chunks, from + per);
      const slice = rows.slice(from * GRADIENT_CHUNK_ROWS, Math.min(rows.length, to * GRADIENT_CHUNK_ROWS));
      const task: GradientTask = { layout, params, X: this.X, y: this.y, rows: slice, from: 0, to: to - from, clipNorm };
      tasks.push(runOnWorker<ChunkSums>(this.threads - 1, 'gradients', task));
    }
    const mine = chunkSums(layout, params, this.X, this.y, rows, 0, Math.min(per, chunks), clipNorm, this.ws);
    this.ws = mine.workspace;
    return combineChunks([mine, ...(await Promise.all(tasks))], layout.size, out);
  }
}
