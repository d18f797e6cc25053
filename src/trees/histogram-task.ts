import { levelChunkSums, type HistogramChunkSums, type HistogramTask } from './histograms.ts';

/** Runs in a worker of the shared pool (src/util/worker.mjs): one run of a level pass's chunks. */
export default function histogramTask(t: HistogramTask): HistogramChunkSums {
  return levelChunkSums(t.query, t.data, t.margin, t.y, t.from, t.to);
}
