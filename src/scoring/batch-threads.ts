/**
 * Batch scoring on worker threads: the calling thread reads and encodes the file and writes the output
 * while workers of the shared pool (src/util/worker-pool.ts) compute each batch's logits and
 * contributions. Batches are consumed strictly in file order, so every accumulator (deciles, mean,
 * top-k ties, fairness counts) and every output byte is what the single-thread run gives.
 */
import type { LoadedScoringModel } from './model.ts';
import type { ScoringBatch } from './rows.ts';
import type { BatchScores, ScoresTask } from './score-task.ts';
import type { DatasetSchema } from '../data/schema.ts';
import { runOnWorker } from '../util/worker-pool.ts';

export class ScoringPipeline {
  private readonly queue: { batch: ScoringBatch; scores: Promise<BatchScores> }[] = [];
  /** Batches in flight before the reader waits for the oldest one. */
  private readonly depth: number;

  constructor(
    private readonly threads: number,
    private readonly model: LoadedScoringModel,
    private readonly schema: DatasetSchema,
    private readonly contributions: boolean,
    private readonly consume: (batch: ScoringBatch, scores: BatchScores) => void,
  ) {
    this.depth = 2 * (threads - 1);
  }

  /** Hands a detached batch to a worker. */
  push(batch: ScoringBatch): void {
    const { scorer } = this.model;
    const task: ScoresTask = {
      dir: this.model.dir,
      modelHash: this.model.modelHash,
      kind: scorer.kind,
      schema: this.schema,
      baseline: this.model.baseline,
      X: batch.X.subarray(0, batch.n * scorer.d),
      n: batch.n,
      contributions: this.contributions,
    };
    const scores = runOnWorker<BatchScores>(this.threads - 1, 'scores', task);
    // Awaited in order by drain(); marked handled now so a failure while earlier batches are consumed is not unhandled.
    scores.catch(() => undefined);
    this.queue.push({ batch, scores });
  }

  /** Consumes finished batches in order: down to `depth` in flight, or all of them. */
  async drain(all: boolean): Promise<void> {
    while (this.queue.length > (all ? 0 : this.depth)) {
      const head = this.queue.shift()!;
      this.consume(head.batch, await head.scores);
    }
  }
}
