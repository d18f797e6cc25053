import { z } from 'zod';
import { FedmarkError } from '../errors.ts';

/**
 * Server-side optimizers. Every partner applies the same optimizer to the same decrypted average
 * update, so all arithmetic is plain float64 in a fixed order and the state is JSON (arrays of
 * numbers round-trip exactly through JSON.stringify/parse): partners that persist and reload the
 * state still compute bit-identical global models.
 */
export type AdaptiveKind = 'fedadam' | 'fedyogi' | 'fedadagrad';

export type ServerOptimizerState =
  | { kind: 'fedavg' }
  | { kind: 'fedavgm'; round: number; velocity: number[] }
  | { [K in AdaptiveKind]: { kind: K; round: number; m: number[]; v: number[] } }[AdaptiveKind];

export interface ServerOptimizerResult {
  params: Float64Array;
  state: ServerOptimizerState | null;
}

export interface ServerOptimizer {
  readonly name: string;
  /** For FedProx: the μ that local training must use (proximalMu); undefined otherwise. */
  readonly proximalMu?: number;
  /**
   * New global parameters from the current ones and the weighted average update
   * Δ̄ = Σ wᵢΔᵢ / Σ wᵢ, Δᵢ = localᵢ − global. Pure: inputs are not modified.
   */
  apply(global: Float64Array, avgDelta: Float64Array, state: ServerOptimizerState | null): ServerOptimizerResult;
}

function checkShapes(global: Float64Array, avgDelta: Float64Array): void {
  if (global.length !== avgDelta.length) {
    throw new FedmarkError('PARAM_LENGTH_MISMATCH', `average update has ${avgDelta.length} values but the global model has ${global.length}`);
  }
  for (let i = 0; i < avgDelta.length; i++) {
    if (!Number.isFinite(avgDelta[i])) {
      throw new FedmarkError('INVALID_UPDATE', `average update coordinate ${i} is not finite (${avgDelta[i]})`);
    }
  }
}

function positive(name: string, v: number): void {
  if (!(v > 0) || !Number.isFinite(v)) throw new FedmarkError('INVALID_SERVER_OPTIMIZER', `${name} must be a positive finite number, got ${v}`);
}

/** FedAvg (McMahan et al. 2017): w ← w + η_s·Δ̄; η_s = 1 is plain model averaging. */
export function fedAvg({ serverLr = 1 }: { serverLr?: number } = {}): ServerOptimizer {
  positive('serverLr', serverLr);
  return {
    name: 'fedavg',
    apply(global, avgDelta) {
      checkShapes(global, avgDelta);
      const params = new Float64Array(global.length);
      for (let i = 0; i < global.length; i++) params[i] = global[i] + serverLr * avgDelta[i];
      return { params, state: null };
    },
  };
}

/**
 * FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks"): the server step is
 * FedAvg; the method lives in local training's proximal term (μ/2)‖w − w_global‖², exposed here as
 * proximalMu for the strategy to pass on.
 */
export function fedProx({ mu, serverLr = 1 }: { mu: number; serverLr?: number }): ServerOptimizer {
  if (!(mu >= 0) || !Number.isFinite(mu)) throw new FedmarkError('INVALID_SERVER_OPTIMIZER', `FedProx mu must be a finite number ≥ 0, got ${mu}`);
  const avg = fedAvg({ serverLr });
  return { name: 'fedprox', proximalMu: mu, apply: avg.apply };
}

/**
 * FedAvgM (Hsu, Qi & Brown 2019, "Measuring the Effects of Non-Identical Data Distribution for
 * Federated Visual Classification"): server momentum on the average update,
 * u ← βu + Δ̄, w ← w + η_s·u (u starts at 0, so round 1 is FedAvg's step).
 */
export function fedAvgM({ serverLr = 1, momentum = 0.9 }: { serverLr?: number; momentum?: number } = {}): ServerOptimizer {
  positive('serverLr', serverLr);
  if (!(momentum >= 0 && momentum < 1)) throw new FedmarkError('INVALID_SERVER_OPTIMIZER', `momentum must be in [0, 1), got ${momentum}`);
  return {
    name: 'fedavgm',
    apply(global, avgDelta, state) {
      checkShapes(global, avgDelta);
      const P = global.length;
      let velocity: number[];
      let round = 0;
      if (state === null) velocity = new Array<number>(P).fill(0);
      else {
        if (state.kind !== 'fedavgm' || state.velocity.length !== P) {
          throw new FedmarkError('INVALID_OPTIMIZER_STATE', `FedAvgM state does not match a model of ${P} parameters`);
        }
        velocity = state.velocity.slice();
        round = state.round;
      }
      const params = new Float64Array(P);
      for (let i = 0; i < P; i++) {
        velocity[i] = momentum * velocity[i] + avgDelta[i];
        params[i] = global[i] + serverLr * velocity[i];
      }
      return { params, state: { kind: 'fedavgm', round: round + 1, velocity } };
    },
  };
}

/**
 * The adaptive server optimizers of Reddi et al. 2021, "Adaptive Federated Optimization"
 * (Algorithm 2), treating −Δ̄ as the pseudo-gradient:
 *   m ← β₁m + (1−β₁)Δ̄
 *   FedAdagrad: v ← v + Δ̄²
 *   FedYogi:    v ← v − (1−β₂)Δ̄²·sign(v − Δ̄²)
 *   FedAdam:    v ← β₂v + (1−β₂)Δ̄²
 *   w ← w + η·m/(√v + τ)
 * As in the paper there is no bias correction and τ bounds the adaptivity. m and v start at 0 (the
 * paper allows v₋₁ ≥ τ²; 0 keeps FedAdam's recorded runs and makes round 1 of Adam and Yogi equal).
 */
export function adaptiveOptimizer(
  kind: AdaptiveKind,
  { lr, beta1 = 0.9, beta2 = 0.99, tau = 1e-3 }: { lr: number; beta1?: number; beta2?: number; tau?: number },
): ServerOptimizer {
  positive('lr', lr);
  positive('tau', tau);
  for (const [name, b] of [
    ['beta1', beta1],
    ['beta2', beta2],
  ] as const) {
    if (!(b >= 0 && b < 1)) throw new FedmarkError('INVALID_SERVER_OPTIMIZER', `${name} must be in [0, 1), got ${b}`);
  }
  const label = { fedadam: 'FedAdam', fedyogi: 'FedYogi', fedadagrad: 'FedAdagrad' }[kind];
  return {
    name: kind,
    apply(global, avgDelta, state) {
      checkShapes(global, avgDelta);
      const P = global.length;
      let m: number[];
      let v: number[];
      let round: number;
      if (state === null) {
        m = new Array<number>(P).fill(0);
        v = new Array<number>(P).fill(0);
        round = 0;
      } else {
        if (state.kind !== kind || state.m.length !== P || state.v.length !== P) {
          throw new FedmarkError('INVALID_OPTIMIZER_STATE', `${label} state does not match a model of ${P} parameters`);
        }
        m = state.m.slice();
        v = state.v.slice();
        round = state.round;
      }
      const params = new Float64Array(P);
      for (let i = 0; i < P; i++) {
        const g = avgDelta[i];
        const g2 = g * g;
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        if (kind === 'fedadam') v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        else if (kind === 'fedyogi') v[i] = v[i] - (1 - beta2) * g2 * Math.sign(v[i] - g2);
        else v[i] = v[i] + g2;
        params[i] = global[i] + (lr * m[i]) / (Math.sqrt(v[i]) + tau);
      }
      return { params, state: { kind, round: round + 1, m, v } as ServerOptimizerState };
    },
  };
}

/** FedAdam (Reddi et al. 2021, Algorithm 2): see adaptiveOptimizer. */
export function fedAdam(o: { lr: number; beta1?: number; beta2?: number; tau?: number }): ServerOptimizer {
  return adaptiveOptimizer('fedadam', o);
}

export const serverOptimizerSpecSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('fedavg'), serverLr: z.number().finite().positive().optional() }).strict(),
  z.object({ name: z.literal('fedprox'), mu: z.number().finite().min(0), serverLr: z.number().finite().positive().optional() }).strict(),
  z.object({ name: z.literal('fedavgm'), serverLr: z.number().finite().positive().optional(), momentum: z.number().min(0).lt(1).optional() }).strict(),
  ...(['fedadam', 'fedyogi', 'fedadagrad'] as const).map((kind) =>
    z
      .object({
        name: z.literal(kind),
        lr: z.number().finite().positive(),
        beta1: z.number().min(0).lt(1).optional(),
        beta2: z.number().min(0).lt(1).optional(),
        tau: z.number().finite().positive().optional(),
      })
      .strict(),
  ),
]);

export type ServerOptimizerSpec = z.input<typeof serverOptimizerSpecSchema>;

export function createServerOptimizer(spec: ServerOptimizerSpec): ServerOptimizer {
  const res = serverOptimizerSpecSchema.safeParse(spec);
  if (!res.success) {
    const issue = res.error.issues[0];
    throw new FedmarkError('INVALID_SERVER_OPTIMIZER', `invalid server optimizer at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const s = res.data;
  switch (s.name) {
    case 'fedavg':
      return fedAvg({ serverLr: s.serverLr });
    case 'fedprox':
      return fedProx({ mu: s.mu, serverLr: s.serverLr });
    case 'fedavgm':
      return fedAvgM({ serverLr: s.serverLr, momentum: s.momentum });
    case 'fedadam':
    case 'fedyogi':
    case 'fedadagrad':
      return adaptiveOptimizer(s.name, { lr: s.lr, beta1: s.beta1, beta2: s.beta2, tau: s.tau });
  }
}

/**
 * Δ̄ = Σ wᵢΔᵢ / Σ wᵢ for plaintext updates (simulation, tests); the encrypted path computes the same
 * sums homomorphically. Summation runs in the given order, so callers must order partners
 * canonically for bit-identical results.
 */
export function weightedAverageDelta(deltas: readonly Float64Array[], weights: readonly number[]): Float64Array {
  if (deltas.length === 0 || deltas.length !== weights.length) {
    throw new FedmarkError('INVALID_UPDATE', `need one weight per update and at least one update (got ${deltas.length} updates, ${weights.length} weights)`);
  }
  const P = deltas[0].length;
  const acc = new Float64Array(P);
  let total = 0;
  deltas.forEach((delta, k) => {
    const w = weights[k];
    if (!(w > 0) || !Number.isFinite(w)) throw new FedmarkError('INVALID_UPDATE', `update ${k} has weight ${w}; weights must be positive`);
    if (delta.length !== P) throw new FedmarkError('PARAM_LENGTH_MISMATCH', `update ${k} has ${delta.length} values, expected ${P}`);
    for (let i = 0; i < P; i++) acc[i] += w * delta[i];
    total += w;
  });
  for (let i = 0; i < P; i++) acc[i] /= total;
  return acc;
}
