import * as tf from '@tensorflow/tfjs-core';
// The cpu backend registers itself on import; it is the fallback that always works and lets
// synchronous helpers (predictProba) run even if nobody awaited initBackend().
import '@tensorflow/tfjs-backend-cpu';
import { FedmarkError } from '../errors.ts';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface InitBackendOptions {
  /** Start the search at this backend (later ones are still tried if it fails). */
  prefer?: BackendName;
  log?: (msg: string) => void;
}

const ORDER: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** Why a backend that did not load is missing, in words a user can act on. */
const WHY_NOT: Record<BackendName, string> = {
  tensorflow: 'the native TensorFlow backend is not installed (optional package @tensorflow/tfjs-node)',
  wasm: 'the WebAssembly backend did not load (@tensorflow/tfjs-backend-wasm)',
  cpu: 'the pure-JavaScript backend did not load',
};

let chosen: Promise<string> | null = null;

// The package name is kept in a variable so neither tsc nor the bundler insists that the optional
// dependency exists: @tensorflow/tfjs-node cannot be installed on machines without libtensorflow.
const TFJS_NODE = '@tensorflow/tfjs-node';

async function tryBackend(name: BackendName): Promise<string | null> {
  try {
    if (name === 'tensorflow') {
      await import(TFJS_NODE);
      if (!(await tf.setBackend('tensorflow'))) return null;
    } else if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
      if (!(await tf.setBackend('wasm'))) return null;
    } else {
      if (!(await tf.setBackend('cpu'))) return null;
    }
    await tf.ready();
    return tf.getBackend();
  } catch {
    return null;
  }
}

async function choose(opts: InitBackendOptions): Promise<string> {
  const start = opts.prefer ? ORDER.indexOf(opts.prefer) : 0;
  if (start < 0) {
    throw new FedmarkError('INVALID_BACKEND', `unknown tfjs backend "${String(opts.prefer)}" (tensorflow, wasm or cpu)`);
  }
  const tried: string[] = [];
  for (const name of ORDER.slice(start)) {
    const got = await tryBackend(name);
    if (got) {
      const skipped = tried.length > 0 ? ` (${tried.map((t) => WHY_NOT[t as BackendName]).join('; ')}; ${got} is slower but trains the same models)` : '';
      // No "fedmark:" prefix: callers add their own.
      (opts.log ?? ((m: string) => console.error(m)))(`tfjs backend: ${got}${skipped}`);
      return got;
    }
    tried.push(name);
  }
  throw new FedmarkError('NO_TFJS_BACKEND', `no tfjs backend could be initialised (tried ${tried.join(', ')})`);
}

/**
 * Chooses the tfjs backend once per process: tfjs-node (native TensorFlow) if it loads, else WASM,
 * else the pure-JS cpu backend. Idempotent: later calls return the first choice without logging
 * again, whatever options they pass, so every part of a process uses the same numerics.
 */
export function initBackend(opts: InitBackendOptions = {}): Promise<string> {
  if (!chosen) {
    chosen = choose(opts).catch((err: unknown) => {
      chosen = null;
      throw err;
    });
  }
  return chosen;
}
