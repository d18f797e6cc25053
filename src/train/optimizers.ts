import { FedmarkError } from '../errors.ts';

/** A first-order optimizer for local training; updates params in place from a gradient. */
export interface LocalOptimizer {
  readonly name: 'sgd' | 'momentum' | 'adam';
  step(params: Float64Array, grad: Float64Array): void;
}

function checkLr(lr: number): void {
  if (!(lr > 0) || !Number.isFinite(lr)) {
    throw new FedmarkError('INVALID_TRAIN_CONFIG', `learning rate must be a positive finite number, got ${lr}`);
  }
}

export function sgdOptimizer(learningRate: number): LocalOptimizer {
  checkLr(learningRate);
  return {
    name: 'sgd',
    step(params, grad) {
      for (let i = 0; i < params.length; i++) params[i] -= learningRate * grad[i];
    },
  };
}

/**
 * Heavy-ball momentum (Polyak 1964), in the form PyTorch's SGD uses: `u ← βu + g`, `w ← w − η·u`.
 * The steady-state step is η/(1 − β) times the gradient, so η = 0.05 at β = 0.9 moves as far as plain
 * SGD at 0.5 while averaging the last ≈ 1/(1 − β) gradients — with DP-SGD, their independent noise.
 * Under DP it only reads the already clipped and noised gradients: post-processing, so the
 * accountant's (q, σ, steps) are unchanged. The velocity starts at zero on every trainLocal call
 * (like Adam's moments), so a round's update depends only on the global model and the data.
 */
export function momentumOptimizer(learningRate: number, size: number, momentum: number): LocalOptimizer {
  checkLr(learningRate);
  if (!(momentum >= 0 && momentum < 1)) {
    throw new FedmarkError('INVALID_TRAIN_CONFIG', `momentum must be in [0, 1), got ${momentum}`);
  }
  const u = new Float64Array(size);
  return {
    name: 'momentum',
    step(params, grad) {
      for (let i = 0; i < params.length; i++) {
        u[i] = momentum * u[i] + grad[i];
        params[i] -= learningRate * u[i];
      }
    },
  };
}

/**
 * Adam (Kingma & Ba 2015) with bias correction. Its moments live only for one trainLocal call:
 * each round restarts from fresh moments, so a partner's update depends only on the global model
 * and its data (nothing hidden carries over between rounds).
 */
export function adamOptimizer(
  learningRate: number,
  size: number,
  { beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8 }: { beta1?: number; beta2?: number; epsilon?: number } = {},
): LocalOptimizer {
  checkLr(learningRate);
  const m = new Float64Array(size);
  const v = new Float64Array(size);
  let t = 0;
  return {
    name: 'adam',
    step(params, grad) {
      t++;
      const c1 = 1 - Math.pow(beta1, t);
      const c2 = 1 - Math.pow(beta2, t);
      for (let i = 0; i < params.length; i++) {
        const g = grad[i];
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        params[i] -= (learningRate * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + epsilon);
      }
    },
  };
}
