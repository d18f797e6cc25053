/**
 * One lazily loaded node-seal (Microsoft SEAL 4.1 compiled to WASM) instance per process, plus the
 * scoped-deletion helper every caller uses. node-seal objects live in the WASM heap; node-seal 6 does
 * register a FinalizationRegistry, but GC timing is unpredictable and the heap only ever grows, so
 * every object is deleted explicitly as soon as it is no longer needed.
 */
import SEALFactory from 'node-seal';
import type { SEALLibrary } from 'node-seal/implementation/seal.js';

export type { SEALLibrary };

/** The bits of the WebAssembly global we touch (lib ES2022 + @types/node do not declare them). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmGlobal {
  instantiate: (...args: unknown[]) => Promise<unknown>;
  Memory: new (...args: never[]) => WasmMemory;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmGlobal }).WebAssembly;

interface LoadedSeal {
  seal: SEALLibrary;
  /** The module's linear memory, when it could be identified unambiguously (used for leak checks). */
  memory: WasmMemory | undefined;
}

let loading: Promise<LoadedSeal> | undefined;

/**
 * Loads the SEAL module once. While it instantiates we watch WebAssembly.instantiate to capture the
 * module's exported memory: node-seal exposes no handle to it, and its size is the only reliable
 * signal that the heap is (not) leaking. The hook is removed as soon as loading finishes.
 */
export function loadSeal(): Promise<LoadedSeal> {
  if (!loading) {
    loading = (async () => {
      const original = wasm.instantiate;
      const memories: WasmMemory[] = [];
      wasm.instantiate = async (...args: unknown[]): Promise<unknown> => {
        const result = await original.apply(wasm, args);
        const instance = (result as { instance?: { exports?: object } }).instance ?? (result as { exports?: object });
        for (const value of Object.values(instance.exports ?? {})) {
          if (value instanceof wasm.Memory) memories.push(value);
        }
        return result;
      };
      try {
        const factory = SEALFactory as unknown as () => Promise<SEALLibrary>;
        const seal = await factory();
        return { seal, memory: memories.length === 1 ? memories[0] : undefined };
      } finally {
        wasm.instantiate = original;
      }
    })();
  }
  return loading;
}

/**
 * Current size in bytes of SEAL's WASM linear memory (it never shrinks, so a leak shows as growth),
 * or undefined if the memory could not be identified.
 */
export async function sealHeapBytes(): Promise<number | undefined> {
  const { memory } = await loadSeal();
  return memory?.buffer.byteLength;
}

interface Deletable {
  delete(): void;
}

/** Collects SEAL objects and deletes them all, in reverse order, when the scope ends. */
export class SealScope {
  private readonly items: Deletable[] = [];

  track<T extends Deletable>(item: T): T {
    this.items.push(item);
    return item;
  }

  dispose(): void {
    while (this.items.length > 0) {
      const item = this.items.pop()!;
      try {
        item.delete();
      } catch {
        // A failed delete must not stop the others from being freed.
      }
    }
  }
}

/** Runs fn with a scope whose SEAL objects are deleted afterwards, whether fn returns or throws. */
export function withScope<T>(fn: (scope: SealScope) => T): T {
  const scope = new SealScope();
  try {
    return fn(scope);
  } finally {
    scope.dispose();
  }
}
