import { FedmarkError } from '../../../errors.ts';
import type { FederatedEvalMetrics } from '../../../metrics/histogram.ts';
import { canonicalBytes } from '../../../privacy/ledger/canonical.ts';
import { hashParameters, sha256Hex } from '../../../util/hash.ts';
import type { EarlyStopping, JobManifest } from '../../manifest.ts';
import type { ModelSelection } from '../../workload.ts';

/**
 * Model selection on the federated validation metrics (`evaluation.earlyStopping`). The model after
 * every `every`-th training round is a checkpoint: the next round's uploads carry its score
 * histograms on the partners' hold-outs (a charged `evaluation` release, planned in dp-plan.ts),
 * and the server step — run by every key holder on the same decrypted, noisy sums — keeps the best
 * checkpoint so far. The decision is part of the public state and of its hash, so model-hash
 * agreement covers it:
 *
 * - a checkpoint improves when its metric beats the best by more than `minDelta` (the first always
 *   does); `patience` checkpoints in a row without improvement stop training: the state goes back
 *   to the best checkpoint's model, the remaining training rounds are skipped (no release is made
 *   for them) and the job's final evaluation round scores the restored model;
 * - after the last training round, whose model no checkpoint scored, the final model is kept unless
 *   the latest checkpoint already failed to improve on an earlier one (training had stopped helping):
 *   then the best checkpoint's model is released.
 *
 * Noisy metrics are post-processing of released values: deciding on them costs nothing more.
 */
export interface SelectionState {
  /** The best checkpoint so far: its round, metric (higher is better) and model. */
  best: { round: number; metric: number; params: Float64Array } | null;
  /** The latest checkpoint scored. */
  last: { round: number; metric: number } | null;
  /** Checkpoints in a row since the best one that did not improve on it. */
  sinceBest: number;
  /** Once decided: the training round whose model the state holds as the job's model, and whether training stopped early. */
  chosen: ModelSelection | null;
}

export function initialSelection(): SelectionState {
  return { best: null, last: null, sinceBest: 0, chosen: null };
}

/** The checkpoint's score, higher is better; NaN (a class drowned by noise, a single-class hold-out) never improves. */
export function checkpointScore(es: EarlyStopping, metrics: FederatedEvalMetrics): number {
  const v = es.metric === 'auc' ? metrics.auc : -metrics.logLoss;
  return Number.isFinite(v) ? v : Number.NaN;
}

/**
 * One training round's selection step. `entering` is the model entering round `round` (the
 * checkpoint the round's evaluation scored, when `metrics` is given), `trained` the model after it.
 * Returns the selection state after the round and the model the state holds.
 */
export function selectionStep(
  m: JobManifest,
  sel: SelectionState,
  round: number,
  entering: Float64Array,
  trained: Float64Array,
  metrics: FederatedEvalMetrics | null,
): { selection: SelectionState; params: Float64Array } {
  const es = m.evaluation.earlyStopping;
  if (!es) throw new FedmarkError('SELECTION_OFF', `job ${m.jobId} has no evaluation.earlyStopping`);
  if (sel.chosen) throw new FedmarkError('SELECTION_DONE', `job ${m.jobId}: round ${round} follows the selection of round ${sel.chosen.round}`);
  let { best, last, sinceBest } = sel;
  if (metrics) {
    const checkpoint = round - 1;
    const score = checkpointScore(es, metrics);
    if (best === null || score > best.metric + es.minDelta) {
      best = { round: checkpoint, metric: score, params: Float64Array.from(entering) };
      sinceBest = 0;
    } else sinceBest++;
    last = { round: checkpoint, metric: score };
    if (es.patience !== undefined && sinceBest >= es.patience && best && Number.isFinite(best.metric)) {
      return { selection: { best, last, sinceBest, chosen: { round: best.round, stopped: true } }, params: Float64Array.from(best.params) };
    }
  }
  if (round < m.rounds) return { selection: { best, last, sinceBest, chosen: null }, params: trained };
  // The last training round: its own model was never scored.
  const restore = best !== null && last !== null && Number.isFinite(best.metric) && best.round < last.round;
  if (restore) return { selection: { best, last, sinceBest, chosen: { round: best!.round, stopped: false } }, params: Float64Array.from(best!.params) };
  return { selection: { best, last, sinceBest, chosen: { round, stopped: false } }, params: trained };
}

/** The selection's part of the state hash: every field the next decision depends on (metrics as exact doubles). */
export function selectionHash(sel: SelectionState): string {
  const doc = {
    best: sel.best ? { round: sel.best.round, metric: doubleHex(sel.best.metric), params: hashParameters(sel.best.params) } : null,
    last: sel.last ? { round: sel.last.round, metric: doubleHex(sel.last.metric) } : null,
    sinceBest: sel.sinceBest,
    chosen: sel.chosen,
  };
  return sha256Hex(canonicalBytes(doc));
}

/** A double's exact bits (NaN included), so equal states hash equally on every machine. */
function doubleHex(x: number): string {
  return Buffer.from(Float64Array.of(x).buffer).toString('hex');
}
