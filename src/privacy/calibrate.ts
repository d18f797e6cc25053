/**
 * Noise calibration: the smallest noise multiplier σ whose ε (at δ, for `steps` steps at sampling
 * rate q) does not exceed a target — Opacus `get_noise_multiplier` semantics. ε is monotone
 * decreasing in σ for the subsampled Gaussian (Mironov, Talwar, Zhang 2019), so bisection applies;
 * the returned σ is always the *upper* end of the bracket, whose ε was evaluated and is ≤ target.
 */
import { FedmarkError } from '../errors.ts';
import { epsilonFor, type AccountantKind } from './accountant.ts';

/** Beyond this σ the target is treated as unreachable (no useful model trains at such noise). */
export const MAX_NOISE_MULTIPLIER = 1e4;

export interface CalibrateArgs {
  targetEpsilon: number;
  delta: number;
  samplingRate: number;
  steps: number;
  accountant?: AccountantKind;
  /** Stop once target − ε(σ) ≤ tolerance (default 0.01, as in Opacus). */
  tolerance?: number;
}

export function calibrateNoiseMultiplier(args: CalibrateArgs): number {
  const { targetEpsilon, delta, samplingRate, steps } = args;
  const accountant = args.accountant ?? 'rdp';
  const tolerance = args.tolerance ?? 0.01;
  if (!(typeof targetEpsilon === 'number' && targetEpsilon > 0 && Number.isFinite(targetEpsilon)))
    throw new FedmarkError(
      'DP_TARGET_UNREACHABLE',
      `target epsilon must be a finite number > 0, got ${String(targetEpsilon)}`,
    );
  if (!(typeof delta === 'number' && delta > 0 && delta < 1))
    throw new FedmarkError('DP_TARGET_UNREACHABLE', `delta must be in (0, 1), got ${String(delta)}`);
  if (!(samplingRate > 0 && samplingRate <= 1))
    throw new FedmarkError('DP_BAD_EVENT', `samplingRate must be in (0, 1], got ${String(samplingRate)}`);
  if (!(Number.isInteger(steps) && steps >= 1))
    throw new FedmarkError('DP_BAD_EVENT', `steps must be an integer >= 1, got ${String(steps)}`);
  if (!(tolerance > 0))
    throw new FedmarkError('DP_BAD_ARGUMENT', `tolerance must be > 0, got ${String(tolerance)}`);

  const eps = (sigma: number) =>
    epsilonFor({ samplingRate, noiseMultiplier: sigma, steps, delta, accountant });

  // Bracket: double σ until ε(σ) ≤ target. For PLD start from the (cheap) RDP answer, which is
  // almost always already feasible since PLD is the tighter bound.
  let sigmaLow = 0;
  let sigmaHigh = accountant === 'pld'
    ? calibrateNoiseMultiplier({ ...args, accountant: 'rdp' })
    : 1;
  let epsHigh = eps(sigmaHigh);
  while (!(epsHigh <= targetEpsilon)) {
    sigmaLow = sigmaHigh;
    sigmaHigh *= 2;
    if (sigmaHigh > MAX_NOISE_MULTIPLIER)
      throw new FedmarkError(
        'DP_TARGET_UNREACHABLE',
        `epsilon ${targetEpsilon} at delta ${delta} needs a noise multiplier above ${MAX_NOISE_MULTIPLIER} ` +
          `(q=${samplingRate}, steps=${steps})`,
        { targetEpsilon, delta, samplingRate, steps },
      );
    epsHigh = eps(sigmaHigh);
  }
  // Bisection; the iteration cap only guards against an ε curve that is flat within tolerance.
  for (let it = 0; it < 200 && targetEpsilon - epsHigh > tolerance; it++) {
    const mid = (sigmaLow + sigmaHigh) / 2;
    if (!(mid > sigmaLow && mid < sigmaHigh)) break;
    const e = eps(mid);
    if (e <= targetEpsilon) {
      sigmaHigh = mid;
      epsHigh = e;
    } else {
      sigmaLow = mid;
    }
  }
  return sigmaHigh;
}
