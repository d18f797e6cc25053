import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { FedmarkError } from '../errors.ts';

/**
 * The one pool of worker threads local work runs on (DP-SGD's per-example gradients, GBDT histograms,
 * batch scoring): piscina workers of ./worker.mjs, each task naming the function it runs. Kept between
 * calls (idle workers do not keep the process alive, and exit after a minute); a request for another
 * size replaces the pool.
 */
export type WorkerTaskName = 'gradients' | 'histograms' | 'scores';

let cached: { size: number; pool: Piscina } | null = null;

function pool(size: number): Piscina {
  if (cached?.size !== size) {
    void cached?.pool.destroy();
    cached = {
      size,
      pool: new Piscina({ filename: new URL('./worker.mjs', import.meta.url).href, minThreads: 0, maxThreads: size, idleTimeout: 60_000 }),
    };
  }
  return cached.pool;
}

/** Runs `task` on one of `size` worker threads. */
export function runOnWorker<T>(size: number, name: WorkerTaskName, task: unknown): Promise<T> {
  return pool(size).run(task, { name }) as Promise<T>;
}

/** Stops the worker threads now (tests, or a process that wants them gone before their idle timeout). */
export async function closeWorkers(): Promise<void> {
  const c = cached;
  cached = null;
  await c?.pool.destroy();
}

type Shareable = Float32Array | Float64Array | Uint8Array | Uint16Array | Int32Array;
const sharedCopies = new WeakMap<Shareable, Shareable>();

/**
 * `a` in a SharedArrayBuffer, so workers read it without a copy per task: `a` itself when it is
 * shared already, else a copy made once and kept while `a` lives (the caller must not change `a` after).
 */
export function sharedCopy<T extends Shareable>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  let out = sharedCopies.get(a) as T | undefined;
  if (!out) {
    const Ctor = a.constructor as new (b: SharedArrayBuffer) => T;
    out = new Ctor(new SharedArrayBuffer(a.byteLength));
    out.set(a as never);
    sharedCopies.set(a, out);
  }
  return out;
}

/** A Float64Array of n zeros in a SharedArrayBuffer (filled by the caller, read by workers). */
export function sharedFloat64(n: number): Float64Array {
  return new Float64Array(new SharedArrayBuffer(n * 8));
}

function envInt(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new FedmarkError('INVALID_THREADS', `${name} must be an integer in ${min}..${max}, got "${raw}"`);
  return n;
}

/**
 * Threads local work may use: FEDMARK_THREADS when set (1 turns the pool off), else every core.
 * DP-SGD uses them when a step's batch spans two or more gradient chunks; histograms and batch
 * scoring when the data has at least `threadMinRows()` rows.
 */
export function workerThreads(env: NodeJS.ProcessEnv = process.env): number {
  return envInt(env, 'FEDMARK_THREADS', availableParallelism(), 1, 256);
}

/** Default of FEDMARK_THREAD_MIN_ROWS: below it a histogram pass or a scoring run takes milliseconds, less than handing it to workers. */
export const DEFAULT_THREAD_MIN_ROWS = 100_000;

/** Rows from which GBDT histograms and batch scoring use worker threads: FEDMARK_THREAD_MIN_ROWS, else 100,000. */
export function threadMinRows(env: NodeJS.ProcessEnv = process.env): number {
  return envInt(env, 'FEDMARK_THREAD_MIN_ROWS', DEFAULT_THREAD_MIN_ROWS, 0, Number.MAX_SAFE_INTEGER);
}
