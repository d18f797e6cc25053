import { createServerOptimizer, type ServerOptimizer, type ServerOptimizerState } from '../../../train/server-optimizers.ts';
import { FedmarkError } from '../../../errors.ts';
import { scheduleFactor } from '../../../train/lr-schedules.ts';
import { toGrid, toGridInPlace } from '../../release-grid.ts';
import type { JobManifest } from '../../manifest.ts';
import type { SelectionState } from './selection.ts';

/**
 * Weights travel inside the encrypted vector as rows / WEIGHT_UNIT, so encrypted values stay small
 * (CKKS headroom). In a DP job `rows` is the partner's released noisy row count, never the exact one.
 */
export const WEIGHT_UNIT = 10_000;

/** The vector a partner encrypts: [w·Δ₁ … w·Δ_P, w], with w = rows / WEIGHT_UNIT on the release grid (the same w every round). */
export function weightedUpdateVector(global: Float64Array, local: Float64Array, rows: number): Float64Array {
  if (global.length !== local.length) throw new FedmarkError('UPDATE_SHAPE', `update has ${local.length} parameters, model has ${global.length}`);
  if (!(rows > 0 && Number.isFinite(rows))) throw new FedmarkError('UPDATE_WEIGHT', `aggregation weight ${rows} rows: must be a positive number`);
  const w = toGrid(rows / WEIGHT_UNIT);
  const out = new Float64Array(global.length + 1);
  for (let i = 0; i < global.length; i++) out[i] = w * (local[i] - global[i]);
  out[global.length] = w;
  return out;
}

/** The public state of an SGD job: the global model's flat parameters and the server optimizer's state. */
export interface SgdState {
  params: Float64Array;
  optimizerState: ServerOptimizerState | null;
  /** With `evaluation.earlyStopping`: the checkpoints scored so far and the selection (selection.ts). */
  selection?: SelectionState;
}

/**
 * The server step of the SGD workload, run by every key holder (partners and the job owner) on the
 * decrypted sum: divide by the summed weight, then the server optimizer. It is deterministic, so
 * every honest party arrives at the same model hash — which the coordinator checks.
 */
export class FederatedStrategy {
  constructor(readonly manifest: JobManifest) {
    // Built once here so a bad strategy is refused when the job is resolved, not at round 1's end.
    this.optimizerAt(1);
  }

  /** FedProx's proximal term is a client-side change; the rest is the server optimizer. */
  get proximalMu(): number | undefined {
    return this.manifest.strategy.name === 'fedprox' ? this.manifest.strategy.mu : undefined;
  }

  /** The server optimizer of a training round: the manifest's, its learning rate times the schedule's factor. */
  optimizerAt(round: number): ServerOptimizer {
    const s = this.manifest.strategy;
    const lr = s.schedule === undefined ? s.serverLr : s.serverLr * scheduleFactor(s.schedule, round, Math.max(round, this.manifest.rounds));
    switch (s.name) {
      case 'fedavg':
        return createServerOptimizer({ name: 'fedavg', serverLr: lr });
      case 'fedprox':
        return createServerOptimizer({ name: 'fedprox', mu: s.mu, serverLr: lr });
      case 'fedavgm':
        return createServerOptimizer({ name: 'fedavgm', serverLr: lr, momentum: s.momentum });
      default:
        return createServerOptimizer({ name: s.name, lr, beta1: s.beta1, beta2: s.beta2, tau: s.tau });
    }
  }

  /** The step of training round `round` (1-based; it picks the schedule's factor) on the decrypted sum. */
  apply(state: SgdState, summed: Float64Array, round = 1): SgdState {
    const p = state.params.length;
    if (summed.length !== p + 1) throw new FedmarkError('AGGREGATE_SHAPE', `aggregate has ${summed.length} values, expected ${p + 1}`);
    const totalWeight = summed[p];
    if (!(totalWeight > 0)) throw new FedmarkError('AGGREGATE_EMPTY', `aggregate total weight is ${totalWeight}; no partner contributed`);
    const avgDelta = new Float64Array(p);
    for (let i = 0; i < p; i++) avgDelta[i] = summed[i] / totalWeight;
    const next = this.optimizerAt(round).apply(state.params, avgDelta, state.optimizerState);
    // The released model carries no more precision than the release grid (src/federation/release-grid.ts).
    return { params: toGridInPlace(next.params), optimizerState: next.state };
  }
}
