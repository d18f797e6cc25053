import { FedmarkError } from '../errors.ts';

/**
 * A converged pooled logistic regression, the reference federated training is measured against:
 * Newton's method on the L2-penalised log-likelihood (iteratively reweighted least squares; Hastie,
 * Tibshirani & Friedman, "The Elements of Statistical Learning", §4.4.1), the bias unpenalised, as
 * scikit-learn's `LogisticRegression(C = 1/λ)` minimises. Exact up to the stopping tolerance, so a
 * gap to it is the federation's, not the reference's. Dense d×d Hessian: meant for tabular d ≤ a few hundred.
 */
export interface NewtonLrResult {
  /** Weights of the d features. */
  weights: Float64Array;
  bias: number;
  iterations: number;
  /** max |step| of the last Newton step: below the tolerance when converged. */
  lastStep: number;
  converged: boolean;
}

export function fitLogisticNewton(
  X: Float32Array,
  y: ArrayLike<number>,
  n: number,
  d: number,
  { l2 = 1e-4, maxIterations = 100, tolerance = 1e-10 }: { l2?: number; maxIterations?: number; tolerance?: number } = {},
): NewtonLrResult {
  if (X.length !== n * d || y.length !== n || n < 1)
    throw new FedmarkError('DIMENSION_MISMATCH', `fitLogisticNewton: X has ${X.length} values, expected ${n} × ${d}; y has ${y.length}`);
  if (!(l2 >= 0)) throw new FedmarkError('INVALID_TRAIN_CONFIG', `l2 must be ≥ 0, got ${l2}`);
  const p = d + 1; // the bias is coordinate d
  const beta = new Float64Array(p);
  const grad = new Float64Array(p);
  const H = new Float64Array(p * p);
  const row = new Float64Array(p);
  let lastStep = Infinity;
  for (let it = 1; it <= maxIterations; it++) {
    grad.fill(0);
    H.fill(0);
    for (let i = 0; i < n; i++) {
      let z = beta[d];
      for (let j = 0; j < d; j++) {
        row[j] = X[i * d + j];
        z += beta[j] * row[j];
      }
      row[d] = 1;
      const mu = 1 / (1 + Math.exp(-z));
      const r = mu - y[i];
      const w = mu * (1 - mu);
      for (let a = 0; a < p; a++) {
        const ra = row[a];
        if (ra === 0) continue;
        grad[a] += r * ra;
        const wa = w * ra;
        for (let b = 0; b <= a; b++) H[a * p + b] += wa * row[b];
      }
    }
    // Penalty (λ/2)‖w‖² scaled by n, as a mean loss: gradient λn·w, Hessian λn·I on the weights.
    for (let j = 0; j < d; j++) {
      grad[j] += l2 * n * beta[j];
      H[j * p + j] += l2 * n;
    }
    for (let a = 0; a < p; a++) for (let b = 0; b < a; b++) H[b * p + a] = H[a * p + b];
    const step = solveSpd(H, grad, p);
    lastStep = 0;
    for (let a = 0; a < p; a++) {
      beta[a] -= step[a];
      lastStep = Math.max(lastStep, Math.abs(step[a]));
    }
    if (lastStep < tolerance) return { weights: beta.slice(0, d), bias: beta[d], iterations: it, lastStep, converged: true };
  }
  return { weights: beta.slice(0, d), bias: beta[d], iterations: maxIterations, lastStep, converged: false };
}

/** P(y = 1 | x) of every row. */
export function predictLogisticNewton(model: Pick<NewtonLrResult, 'weights' | 'bias'>, X: Float32Array, n: number): Float64Array {
  const d = model.weights.length;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let z = model.bias;
    for (let j = 0; j < d; j++) z += model.weights[j] * X[i * d + j];
    out[i] = 1 / (1 + Math.exp(-z));
  }
  return out;
}

/** Solves A x = b for a symmetric positive definite A (Cholesky); a tiny ridge is added if A is singular (a constant column). */
function solveSpd(A: Float64Array, b: Float64Array, p: number): Float64Array {
  for (let ridge = 0; ridge <= 1e-4; ridge = ridge === 0 ? 1e-12 : ridge * 100) {
    const L = new Float64Array(p * p);
    let ok = true;
    for (let i = 0; i < p && ok; i++) {
      for (let j = 0; j <= i; j++) {
        let s = A[i * p + j] + (i === j ? ridge : 0);
        for (let k = 0; k < j; k++) s -= L[i * p + k] * L[j * p + k];
        if (i === j) {
          if (!(s > 0)) {
            ok = false;
            break;
          }
          L[i * p + i] = Math.sqrt(s);
        } else L[i * p + j] = s / L[j * p + j];
      }
    }
    if (!ok) continue;
    const z = new Float64Array(p);
    for (let i = 0; i < p; i++) {
      let s = b[i];
      for (let k = 0; k < i; k++) s -= L[i * p + k] * z[k];
      z[i] = s / L[i * p + i];
    }
    const x = new Float64Array(p);
    for (let i = p - 1; i >= 0; i--) {
      let s = z[i];
      for (let k = i + 1; k < p; k++) s -= L[k * p + i] * x[k];
      x[i] = s / L[i * p + i];
    }
    return x;
  }
  throw new FedmarkError(
    'SOLVER_SINGULAR',
    'fitLogisticNewton: the Hessian is not positive definite even with a ridge (constant or duplicate columns and l2 = 0?)',
  );
}
