import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { FedmarkError } from '../errors.ts';
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
 * step: a step sends the parameters and the batch's row indices. The workers are kept between
 * training calls (idle workers do not keep the process alive, and exit after a minute).
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
    this.X = shared(data.X);
    this.y = shared(data.y);
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
    const pool = workers(this.threads - 1);
    for (let from = per; from < chunks; from += per) {
      const to = Math.min(chunks, from + per);
      const slice = rows.slice(from * GRADIENT_CHUNK_ROWS, Math.min(rows.length, to * GRADIENT_CHUNK_ROWS));
      const task: GradientTask = { layout, params, X: this.X, y: this.y, rows: slice, from: 0, to: to - from, clipNorm };
      tasks.push(pool.run(task) as Promise<ChunkSums>);
    }
    const mine = chunkSums(layout, params, this.X, this.y, rows, 0, Math.min(per, chunks), clipNorm, this.ws);
    this.ws = mine.workspace;
    return combineChunks([mine, ...(await Promise.all(tasks))], layout.size, out);
  }
}

let cached: { size: number; pool: Piscina } | null = null;

function workers(size: number): Piscina {
  if (cached?.size !== size) {
    void cached?.pool.destroy();
    cached = {
      size,
      pool: new Piscina({ filename: new URL('./gradient-worker.mjs', import.meta.url).href, minThreads: 0, maxThreads: size, idleTimeout: 60_000 }),
    };
  }
  return cached.pool;
}

/** Stops the worker threads now (tests, or a process that wants them gone before their idle timeout). */
export async function closeGradientWorkers(): Promise<void> {
  const c = cached;
  cached = null;
  await c?.pool.destroy();
}

const sharedCopies = new WeakMap<Float32Array, Float32Array>();

function shared(a: Float32Array): Float32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  let out = sharedCopies.get(a);
  if (!out) {
    out = new Float32Array(new SharedArrayBuffer(a.byteLength));
    out.set(a);
    sharedCopies.set(a, out);
  }
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
