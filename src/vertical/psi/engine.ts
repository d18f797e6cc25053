/**
 * The elliptic-curve work of a PSI party behind one interface, so the protocol code is the same
 * for the fast path (OpenSSL in piscina worker threads) and the reference (@noble/curves, in tests).
 * Lists are packed: n elements = n × 32 bytes of x-coordinates.
 */
import { createECDH, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { FedmarkError } from '../../errors.ts';
import { ELEMENT_BYTES, type Suite } from './group.ts';
import { runNativeTask, type NativeResult, type NativeTask } from './native-ops.ts';

export interface EngineProgress {
  op: 'hash-blind' | 'blind' | 'random';
  done: number;
  total: number;
}

export interface PsiEngine {
  readonly name: string;
  /** Hashes each id onto the curve and blinds it with the scalar: x([k]·H(id)). */
  hashAndBlind(ids: readonly string[], suite: Suite, domain: string, scalar: Uint8Array): Promise<Uint8Array>;
  /**
   * x([k]·P) for every packed x; validates every input. A bad element throws FedmarkError
   * 'PSI_BAD_POINT' with `details.index` (the caller adds which message it came from).
   */
  blind(xs: Uint8Array, scalar: Uint8Array): Promise<Uint8Array>;
  /** Uniformly random curve elements, indistinguishable from blinded ids (padding). */
  randomElements(count: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A fresh blinding scalar, uniform in [1, n − 1] (OpenSSL's key generation). */
export function freshScalar(): Uint8Array {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  // OpenSSL returns the scalar without leading zero bytes; the protocol's form is 32 bytes.
  const k = ecdh.getPrivateKey();
  const out = new Uint8Array(32);
  out.set(k, 32 - k.length);
  return out;
}

export function badPoint(index: number, reason: string): FedmarkError {
  return new FedmarkError('PSI_BAD_POINT', `element ${index}: ${reason}`, { index, reason });
}

export interface NativeEngineOptions {
  /** Worker threads; 0 runs in the calling thread. Default: min(2, available cores). */
  threads?: number;
  /** Elements per task (a task is the unit of work a worker takes). */
  batchSize?: number;
  onProgress?: (p: EngineProgress) => void;
}

type Batch = { task: NativeTask; start: number; count: number };

/** OpenSSL P-256 in worker threads (piscina), batching lists into tasks. */
export class NativeEngine implements PsiEngine {
  readonly name: string;
  private readonly pool: Piscina | null;
  private readonly batchSize: number;
  private readonly onProgress?: (p: EngineProgress) => void;

  constructor(options: NativeEngineOptions = {}) {
    const threads = options.threads ?? Math.min(2, availableParallelism());
    if (!Number.isInteger(threads) || threads < 0) throw new FedmarkError('PSI_BAD_OPTIONS', 'threads must be a non-negative integer');
    this.batchSize = options.batchSize ?? 2048;
    this.onProgress = options.onProgress;
    this.name = threads === 0 ? 'native (in-thread)' : `native (${threads} worker thread${threads === 1 ? '' : 's'})`;
    this.pool =
      threads === 0
        ? null
        : new Piscina({ filename: new URL('./worker.mjs', import.meta.url).href, minThreads: threads, maxThreads: threads, idleTimeout: 60_000 });
  }

  private async runAll(op: EngineProgress['op'], total: number, batches: Batch[]): Promise<Uint8Array> {
    const out = new Uint8Array(total * ELEMENT_BYTES);
    let done = 0;
    const run = async (b: Batch): Promise<void> => {
      const r: NativeResult = this.pool ? await this.pool.run(b.task) : runNativeTask(b.task);
      if (!r.ok) throw badPoint(b.start + r.index, r.reason);
      out.set(r.out, b.start * ELEMENT_BYTES);
      done += b.count;
      this.onProgress?.({ op, done, total });
    };
    if (this.pool) {
      await Promise.all(batches.map(run));
    } else {
      for (const b of batches) await run(b);
    }
    return out;
  }

  private split<T extends NativeTask>(n: number, make: (start: number, end: number) => T): Batch[] {
    const batches: Batch[] = [];
    for (let start = 0; start < n; start += this.batchSize) {
      const end = Math.min(n, start + this.batchSize);
      batches.push({ task: make(start, end), start, count: end - start });
    }
    return batches;
  }

  hashAndBlind(ids: readonly string[], suite: Suite, domain: string, scalar: Uint8Array): Promise<Uint8Array> {
    return this.runAll(
      'hash-blind',
      ids.length,
      this.split(ids.length, (s, e) => ({ op: 'hash-blind', suite, domain, ids: ids.slice(s, e), scalar })),
    );
  }

  blind(xs: Uint8Array, scalar: Uint8Array): Promise<Uint8Array> {
    const n = xs.length / ELEMENT_BYTES;
    return this.runAll(
      'blind',
      n,
      this.split(n, (s, e) => ({ op: 'blind', xs: xs.slice(s * ELEMENT_BYTES, e * ELEMENT_BYTES), scalar })),
    );
  }

  randomElements(count: number): Promise<Uint8Array> {
    return this.runAll(
      'random',
      count,
      this.split(count, (s, e) => ({ op: 'random', count: e - s, seed: randomBytes(32) })),
    );
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}
