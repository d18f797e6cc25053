/**
 * Noise calibration: the smallest noise multiplier σ whose ε (at δ, for `steps` steps at sampling
 * rate q) does not exceed a target — Opacus `get_noise_multiplier` semantics. ε is monotone
 * decreasing in σ for the subsampled Gaussian (Mironov, Talwar, Zhang 2019), so bisection applies;
 * the returned σ is always the *upper* end of the bracket, whose ε was evaluated and is ≤ target.
 */
import { FedmarkError } from '../errors.ts';
import { composedEpsilon, epsilonFor, RdpAccountant, type AccountantKind } from './accountant.ts';
import { validateDpEvent, type DpEvent } from './dp-event.ts';
import { computeRdp } from './analysis/rdp.ts';

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
  /**
   * Releases made besides the calibrated one (e.g. a noisy count, noisy histograms), with fixed σ:
   * σ is calibrated so that the composition of all of them — RDP curves added (Mironov 2017) —
   * meets the target. RDP only.
   */
  extra?: readonly DpEvent[];
}

export function calibrateNoiseMultiplier(args: CalibrateArgs): number {
  const { targetEpsilon, delta, samplingRate, steps } = args;
  const accountant = args.accountant ?? 'rdp';
  const tolerance = args.tolerance ?? 0.01;
  if (!(typeof targetEpsilon === 'number' && targetEpsilon > 0 && Number.isFinite(targetEpsilon)))
    throw new FedmarkError('DP_TARGET_UNREACHABLE', `target epsilon must be a finite number > 0, got ${String(targetEpsilon)}`);
  if (!(typeof delta === 'number' && delta > 0 && delta < 1)) throw new FedmarkError('DP_TARGET_UNREACHABLE', `delta must be in (0, 1), got ${String(delta)}`);
  if (!(samplingRate > 0 && samplingRate <= 1)) throw new FedmarkError('DP_BAD_EVENT', `samplingRate must be in (0, 1], got ${String(samplingRate)}`);
  if (!(Number.isInteger(steps) && steps >= 1)) throw new FedmarkError('DP_BAD_EVENT', `steps must be an integer >= 1, got ${String(steps)}`);
  if (!(tolerance > 0)) throw new FedmarkError('DP_BAD_ARGUMENT', `tolerance must be > 0, got ${String(tolerance)}`);
  const extra = (args.extra ?? []).map(validateDpEvent);
  if (extra.length && accountant !== 'rdp')
    throw new FedmarkError('DP_BAD_ARGUMENT', 'calibrating against extra releases composes RDP curves: use the rdp accountant');
  if (extra.length) {
    const floor = composedEpsilon(extra, delta);
    if (!(floor < targetEpsilon))
      throw new FedmarkError(
        'DP_TARGET_UNREACHABLE',
        `the other releases alone cost ε=${floor.toFixed(4)} at δ=${delta}, leaving nothing of the target ${targetEpsilon}`,
        { targetEpsilon, delta },
      );
  }

  const eps = (sigma: number) =>
    extra.length
      ? composedEpsilon([{ samplingRate, noiseMultiplier: sigma, steps }, ...extra], delta)
      : epsilonFor({ samplingRate, noiseMultiplier: sigma, steps, delta, accountant });

  // Bracket: double σ until ε(σ) ≤ target. For PLD start from the (cheap) RDP answer, which is
  // almost always already feasible since PLD is the tighter bound.
  let sigmaLow = 0;
  let sigmaHigh = accountant === 'pld' ? calibrateNoiseMultiplier({ ...args, accountant: 'rdp' }) : 1;
  let epsHigh = eps(sigmaHigh);
  while (!(epsHigh <= targetEpsilon)) {
    sigmaLow = sigmaHigh;
    sigmaHigh *= 2;
    if (sigmaHigh > MAX_NOISE_MULTIPLIER)
      throw new FedmarkError(
        'DP_TARGET_UNREACHABLE',
        `epsilon ${targetEpsilon} at delta ${delta} needs a noise multiplier above ${MAX_NOISE_MULTIPLIER} ` + `(q=${samplingRate}, steps=${steps})`,
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

/**
 * The Rényi-divergence budget at order α that converts to exactly ε at δ (Balle et al. 2020,
 * Thm 21, the conversion `rdpToEpsilon` applies): ρ = ε + (log δ + log α)/(α − 1) − log((α − 1)/α).
 */
export function rdpBudgetAt(order: number, targetEpsilon: number, delta: number): number {
  return targetEpsilon + (Math.log(delta) + Math.log(order)) / (order - 1) - Math.log((order - 1) / order);
}

export interface ShareArgs {
  targetEpsilon: number;
  delta: number;
  /** The calibrated release: DP-SGD's (q, steps). */
  samplingRate: number;
  steps: number;
  /** Plain Gaussian releases (q = 1) besides it: the share of the budget each class gets, and how many releases it makes. */
  shares: readonly { share: number; releases: number }[];
  tolerance?: number;
}

export interface SharePlan {
  /** σ of the calibrated release. */
  noiseMultiplier: number;
  /** σ of each share's releases, in the order given. */
  others: number[];
  /** The RDP order at which the composition of every release meets the target. */
  order: number;
  /** Each class's part of the composed Rényi divergence at that order (training first; they sum to 1). */
  rdpShares: { training: number; others: number[] };
}

/**
 * Splits one ε between DP-SGD and plain Gaussian releases made alongside it (a noisy count, noisy
 * histograms). Under RDP composition (Mironov 2017) the releases' Rényi divergences add at every
 * order and the (ε, δ) conversion happens once, at the order α where the total is smallest; a
 * release's cost is therefore its divergence at that order, α·k/(2σ²) for k Gaussian releases of
 * noise multiplier σ — far less than its ε on its own. So each share is a fraction of the RDP
 * budget ρ(α) at that order: σ = √(α·k / (2·share·ρ(α))); DP-SGD's σ is then calibrated to what
 * the composition of all of them leaves of the target, and α re-read from the composition until it
 * settles. Whatever the shares, the composed ε of every release is ≤ the target (the calibration
 * guarantees it); the shares only choose how noisy each class is.
 */
export function calibrateShares(args: ShareArgs): SharePlan {
  const { targetEpsilon, delta, samplingRate, steps } = args;
  const total = args.shares.reduce((a, s) => a + s.share, 0);
  if (args.shares.some((s) => !(s.share > 0 && s.share < 1) || !(Number.isInteger(s.releases) && s.releases >= 1)) || !(total < 1)) {
    throw new FedmarkError(
      'DP_BAD_ARGUMENT',
      `budget shares must each be in (0, 1) with at least one release, and sum below 1 (got ${args.shares.map((s) => s.share).join(' + ')})`,
    );
  }
  const orderOf = (events: DpEvent[]) => {
    const acc = new RdpAccountant();
    for (const e of events) acc.step(e);
    return acc.getEpsilon(delta).bestOrder;
  };
  const alone = calibrateNoiseMultiplier({ targetEpsilon, delta, samplingRate, steps, tolerance: args.tolerance });
  let order = orderOf([{ samplingRate, noiseMultiplier: alone, steps }]);
  let plan: SharePlan | null = null;
  // A handful of passes: α moves over a discrete grid and settles in one or two.
  for (let pass = 0; pass < 6; pass++) {
    const rho = rdpBudgetAt(order, targetEpsilon, delta);
    if (!(rho > 0)) throw new FedmarkError('DP_TARGET_UNREACHABLE', `ε ${targetEpsilon} at δ ${delta} leaves no Rényi budget at order ${order}`);
    const others = args.shares.map((s) => Math.sqrt((order * s.releases) / (2 * s.share * rho)));
    const extra = others.map((sigma, i) => ({ samplingRate: 1, noiseMultiplier: sigma, steps: args.shares[i].releases }));
    const noiseMultiplier = calibrateNoiseMultiplier({ targetEpsilon, delta, samplingRate, steps, tolerance: args.tolerance, extra });
    const events = [{ samplingRate, noiseMultiplier, steps }, ...extra];
    const next = orderOf(events);
    const parts = events.map((e) => computeRdp(e.samplingRate, e.noiseMultiplier, e.steps, [next])[0]);
    const sum = parts.reduce((a, b) => a + b, 0);
    plan = { noiseMultiplier, others, order: next, rdpShares: { training: parts[0] / sum, others: parts.slice(1).map((p) => p / sum) } };
    if (next === order) break;
    order = next;
  }
  return plan!;
}
