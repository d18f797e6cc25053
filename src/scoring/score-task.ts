import { FedmarkError } from '../errors.ts';
import type { DatasetSchema } from '../data/schema.ts';
import type { Baseline } from './baseline.ts';
import { loadWithProviders, type Scorer } from './scorer.ts';
import './dense-scorers.ts';
import './tree-scorer.ts';

/** One batch of batch scoring for a worker: the model to score with (by directory and hash) and the rows. */
export interface ScoresTask {
  dir: string;
  modelHash: string;
  kind: string;
  schema: DatasetSchema;
  baseline: Baseline;
  X: Float32Array;
  n: number;
  contributions: boolean;
}

export interface BatchScores {
  z: Float64Array;
  phi: Float64Array | null;
}

// A worker loads each model once; the hash check makes sure it scores with the model the caller loaded.
const scorers = new Map<string, Promise<Scorer>>();

async function scorerFor(t: ScoresTask): Promise<Scorer> {
  const key = `${t.dir}\u0000${t.modelHash}`;
  let s = scorers.get(key);
  if (!s) {
    s = loadWithProviders(t.dir, { schema: t.schema, baseline: t.baseline }).then((m) => {
      if (m.modelHash !== t.modelHash || m.scorer.kind !== t.kind) {
        throw new FedmarkError(
          'SCORING_THREAD_MODEL',
          `${t.dir}: a scoring worker loaded ${m.scorer.kind} model ${m.modelHash.slice(0, 12)}, not the ${t.kind} model ${t.modelHash.slice(0, 12)} being scored (run with FEDMARK_THREADS=1)`,
        );
      }
      return m.scorer;
    });
    scorers.set(key, s);
  }
  return s;
}

/** Runs in a worker of the shared pool (src/util/worker.mjs): the logits and, when asked, the contributions of one batch. */
export default async function scoreTask(t: ScoresTask): Promise<BatchScores> {
  const scorer = await scorerFor(t);
  return { z: scorer.logits(t.X, t.n), phi: t.contributions ? scorer.contributions(t.X, t.n) : null };
}
