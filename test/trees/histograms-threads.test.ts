/**
 * Issue 18 item 4: a level's histograms on worker threads are the single-thread bits, because both sum
 * the same fixed chunks of rows and add the chunk sums in chunk order (src/trees/histograms.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { subsetDataset } from '../../src/data/encode.ts';
import {
  GbdtLocalData,
  HISTOGRAM_CHUNK_ROWS,
  applyStep,
  currentStep,
  featureLayout,
  initialState,
  isComplete,
  levelHistograms,
  localStep,
  localStepOnThreads,
  parseGbdtParams,
  stateHash,
  type GbdtParams,
} from '../../src/trees/index.ts';
import { closeWorkers } from '../../src/util/worker-pool.ts';
import { SYNTH_SCHEMA, syntheticDataset } from './helpers.ts';

const layout = featureLayout(SYNTH_SCHEMA);
const base = syntheticDataset(5000, 7);
// Three and a bit chunks; the permuted replication makes every chunk's rows differ.
const n = 3 * HISTOGRAM_CHUNK_ROWS + 4321;
const data = subsetDataset(
  base,
  Array.from({ length: n }, (_, i) => (i * 7919) % base.n),
);
const bits = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

afterAll(() => closeWorkers());

/** Every step of a job, the local step on `threads` threads; returns the state hash after each step and the level uploads. */
async function run(params: GbdtParams, threads: number) {
  const local = new GbdtLocalData(data);
  let state = initialState(params, layout);
  const hashes: string[] = [];
  const levels: string[] = [];
  while (!isComplete(state)) {
    const parts = threads === 1 ? localStep(state, local) : await localStepOnThreads(state, local, { threads, minRows: 1000 });
    if (currentStep(state).kind === 'level') levels.push(bits(parts.grad) + bits(parts.hess));
    state = applyStep(state, parts);
    hashes.push(stateHash(state));
  }
  return { hashes, levels };
}

describe('GBDT level histograms on worker threads', () => {
  it('give the single-thread bits at every level, with and without sibling subtraction, on 2 and 3 threads', async () => {
    const configs = [
      { trees: 2, depth: 3, learningRate: 0.3, lambda: 1, minChildWeight: 1, binEdges: 'schema', bins: 16 },
      { trees: 1, depth: 3, learningRate: 0.3, lambda: 1, minChildWeight: 1, binEdges: 'schema', bins: 16, splitMode: 'hybrid', histogramLevels: 2 },
      // DP: no subtraction, every open node is queried (the noise is added by the caller, after the local step).
      { trees: 1, depth: 3, splitMode: 'histogram', binEdges: 'schema', bins: 16, dp: { epsilon: 3 } },
    ].map((p) => parseGbdtParams(p));
    const single = [];
    for (const params of configs) single.push(await run(params, 1));
    for (const one of single) expect(one.levels.length).toBeGreaterThanOrEqual(2);
    // Threads outermost: the pool is started once per size.
    for (const threads of [2, 3]) for (let k = 0; k < configs.length; k++) expect(await run(configs[k], threads)).toEqual(single[k]);
  }, 60_000);

  it('sum each row once: the chunked sums equal a row-by-row sum up to rounding', () => {
    const params = parseGbdtParams({ trees: 1, depth: 2, learningRate: 0.3, lambda: 1, minChildWeight: 1, binEdges: 'schema', bins: 16 });
    const state = initialState(params, layout);
    const sums = levelHistograms(state, new GbdtLocalData(data));
    // The root: every row lands once in each histogrammed column, so each column's hessian bins add up to Σh.
    const { h } = new GbdtLocalData(data).gradients(state);
    const total = h.reduce((a, v) => a + v, 0);
    expect(sums.hess.reduce((a, v) => a + v, 0) / total).toBeCloseTo(layout.groups.length, 9);
  });
});
