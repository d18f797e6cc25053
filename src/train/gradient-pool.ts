import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { FedmarkError } from '../errors.ts';
import type { ParameterLayout } from '../model/params.ts';
import { chunkCount, combineChunks, GRADIENT_CHUNK_ROWS, type ChunkSums } from './chunked-gradients.ts';
import type { GradientTask } from './gradient-task.ts';

/**
 * DP-SGD's per-example gradients on several cores: each step's batch is cut into the fixed chunks of
 * chunked-gradients.ts, contiguous runs of chunks go to piscina worker threads, and the chunk sums
 * are added back in chunk order — so the result is bit-identical to the single-thread run. The
 * feature matrix and labels are shared with the workers (SharedArrayBuffer, copied once per pool),
 * never sent per step; a step sends the parameters and the batch's row indices.
 */
export class GradientPool {
  private readonly pool: Piscina;
  private readonly X: Float32Array;
  private readonly y: Float32Array;

  constructor(
    readonly threads: number,
    data: { X: Float32Array; y: Float32Array },
  ) {
    this.X = shared(data.X);
    this.y = shared(data.y);
    this.pool = new Piscina({ filename: new URL('./gradient-worker.mjs', import.meta.url).href, minThreads: threads, maxThreads: threads, idleTimeout: 30_000 });
  }

  /** Σ clipped per-example gradients of the batch `rows` into `out`; the same bits as chunkedClippedGradientSum. */
  async sum(layout: ParameterLayout, params: Float64Array, rows: Int32Array, clipNorm: number, out: Float64Array): Promise<{ lossSum: number; clipped: number }> {
    const chunks = chunkCount(rows.length);
    const per = Math.ceil(chunks / this.threads);
    const tasks: Promise<ChunkSums>[] = [];
    for (let from = 0; from < chunks; from += per) {
      const to = Math.min(chunks, from + per);
      const slice = rows.slice(from * GRADIENT_CHUNK_ROWS, Math.min(rows.length, to * GRADIENT_CHUNK_ROWS));
      const task: GradientTask = { layout, params, X: this.X, y: this.y, rows: slice, from: 0, to: to - from, clipNorm };
      tasks.push(this.pool.run(task) as Promise<ChunkSums>);
    }
    return combineChunks(await Promise.all(tasks), layout.size, out);
  }

  async destroy(): Promise<void> {
    await this.pool.destroy();
  }
}

function shared<T extends Float32Array>(a: T): Float32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const out = new Float32Array(new SharedArrayBuffer(a.byteLength));
  out.set(a);
  return out;
}

/**
 * Threads local training may use: FEDMARK_THREADS when set (1 turns the pool off), else every core.
 * Training uses them only when a step's batch spans two or more gradient chunks.
 */
export function localTrainingThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FEDMARK_THREADS;
  if (raw === undefined || raw === '') return availableParallelism();
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new FedmarkError('INVALID_THREADS', `FEDMARK_THREADS must be an integer in 1..256, got "${raw}"`);
  return n;
}
