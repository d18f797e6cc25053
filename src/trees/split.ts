/**
 * Split choice from a node's summed G/H histograms: XGBoost's gain
 *   GL²/(HL+λ) + GR²/(HR+λ) − (GL+GR)²/(HL+HR+λ)
 * (Chen & Guestrin 2016, eq. 7, without the ½ and γ, as XGBoost reports `loss_chg`), both children at
 * least `minChildWeight` of hessian, and a gain above max(minSplitGain, 1e-6) as XGBoost requires.
 *
 * Every key holder runs this on the same decrypted sums and must pick the same split. Candidates are
 * scanned in (feature, bin) order and a later candidate replaces the best only when its gain is larger by
 * more than a relative 1e-6: exact ties, and near-ties that differ only by the rounding of a different
 * summation order (a pooled trainer against summed partner histograms), go to the lowest feature, then
 * the lowest bin. The minimum child weight is compared with the same relative slack.
 *
 * The slack (1e-6) covers more than summation order: decrypted HE sums carry an encoding error of about
 * 2e-9 × heUnit per value, and exact ties are common in real data — two columns that partition a node's
 * rows identically (telco's "no internet service" appears in six columns), a categorical with two
 * filled slots (mirror splits), a cut after a bin without rows. The pooled trainer sees those ties
 * exactly; the key holders see them up to the HE error; both must pick the same split.
 */
import type { BinEdges } from './edges.ts';
import { xgbGain } from './heap-tree.ts';
import type { BinLayout, FeatureLayout } from './layout.ts';
import type { GbdtParams } from './params.ts';

export interface SplitChoice {
  group: number;
  /** Numeric/binary: the cut index k (left = bins ≤ k). Categorical: the slot that goes right. */
  cut: number;
  gain: number;
  GL: number;
  HL: number;
  GR: number;
  HR: number;
}

const TIE = 1e-6;
/**
 * A bin whose summed |G| and |H| are both below this holds no rows of the node: a cut after it splits
 * the rows exactly like the cut before it, so only the first is a candidate (as for repeated cuts).
 * In the pooled trainer such bins are exactly 0; decrypted HE sums carry ~1e-9 × heUnit of encoding
 * error, which must not turn one cut of an exact tie into the winner.
 */
export const EMPTY_BIN = 1e-5;
/** XGBoost's kRtEps: a split must reduce the loss by more than this. */
const MIN_GAIN = 1e-6;

type SplitParams = Pick<GbdtParams, 'lambda' | 'minChildWeight' | 'minSplitGain'>;

/**
 * Keeps the best of the candidates it is shown. With noise variances (DP) the gain is corrected:
 * E[(G + noise)²] = G² + var, so uncorrected noisy gains favour children with little hessian; and a
 * child must clear minChildWeight by two noise standard deviations.
 */
class SplitScorer {
  best: SplitChoice | null = null;
  private readonly lambda: number;
  private readonly minChildWeight: number;
  private readonly floor: number;
  private parentTerm = 0;

  constructor(
    params: SplitParams,
    private readonly gradVar: number,
    private readonly hessVar: number,
  ) {
    this.lambda = params.lambda;
    // Hessian sums are often exact multiples (p = ½ gives h = ¼ in the first tree): a child at exactly
    // minChildWeight must pass whichever order the sums were added in.
    this.minChildWeight = params.minChildWeight * (1 - TIE) - TIE;
    this.floor = Math.max(params.minSplitGain, MIN_GAIN);
  }

  /** The parent's (G, H), summed over `values` noisy values. */
  parent(G: number, H: number, values: number): void {
    this.parentTerm = (G * G - values * this.gradVar) / (H + this.lambda);
  }

  consider(group: number, cut: number, GL: number, HL: number, GR: number, HR: number, valuesL: number, valuesR: number): void {
    const { lambda, gradVar, hessVar } = this;
    const slackL = hessVar === 0 ? 0 : 2 * Math.sqrt(valuesL * hessVar);
    const slackR = hessVar === 0 ? 0 : 2 * Math.sqrt(valuesR * hessVar);
    if (!(HL - slackL >= this.minChildWeight && HR - slackR >= this.minChildWeight && HL + lambda > 0 && HR + lambda > 0)) return;
    const gain =
      gradVar === 0
        ? xgbGain(GL, HL, GR, HR, lambda)
        : (GL * GL - valuesL * gradVar) / (HL + lambda) + (GR * GR - valuesR * gradVar) / (HR + lambda) - this.parentTerm;
    if (!(gain > this.floor)) return;
    const best = this.best;
    if (best === null || gain > best.gain + TIE * Math.max(1, Math.abs(best.gain))) this.best = { group, cut, gain, GL, HL, GR, HR };
  }
}

/** Best split of a node from its histograms at `base` (bins per group as in `bins`). */
export function bestSplit(
  layout: FeatureLayout,
  bins: BinLayout,
  edges: BinEdges,
  params: SplitParams,
  grad: ArrayLike<number>,
  hess: ArrayLike<number>,
  base: number,
  /** Noise variance of each summed gradient / hessian bin (0 without DP). */
  gradVar = 0,
  hessVar = 0,
): SplitChoice | null {
  const scorer = new SplitScorer(params, gradVar, hessVar);
  bins.groups.forEach((gi, k) => {
    const g = layout.groups[gi];
    const off = base + bins.offsets[k];
    const size = bins.sizes[k];
    let Gt = 0;
    let Ht = 0;
    for (let b = 0; b < size; b++) {
      Gt += grad[off + b];
      Ht += hess[off + b];
    }
    scorer.parent(Gt, Ht, size);
    if (g.kind === 'categorical') {
      if (size < 2) return;
      const empty = (v: number) => Math.abs(grad[off + v]) < EMPTY_BIN && Math.abs(hess[off + v]) < EMPTY_BIN;
      let filled = 0;
      for (let v = 0; v < size; v++) if (!empty(v)) filled++;
      let seen = 0;
      for (let v = 0; v < size; v++) {
        // A slot without rows is no split; with two slots holding rows, the second is the mirror of the first.
        if (empty(v) || (filled === 2 && seen++ > 0)) continue;
        const GR = grad[off + v];
        const HR = hess[off + v];
        scorer.consider(gi, v, Gt - GR, Ht - HR, GR, HR, size - 1, 1);
      }
      return;
    }
    const cuts = edges.cuts[gi];
    let GL = 0;
    let HL = 0;
    for (let k = 0; k + 1 < size; k++) {
      GL += grad[off + k];
      HL += hess[off + k];
      // A repeated cut, or one after a bin without rows, splits the rows exactly as the previous one: only the first is a candidate.
      if (k > 0 && (cuts[k] === cuts[k - 1] || (Math.abs(grad[off + k]) < EMPTY_BIN && Math.abs(hess[off + k]) < EMPTY_BIN))) continue;
      scorer.consider(gi, k, GL, HL, Gt - GL, Ht - HL, k + 1, size - k - 1);
    }
  });
  return scorer.best;
}

/** Leaf weight w = −η·G/(H+λ), H floored at 0 (noise can push it below), |G/(H+λ)| ≤ maxDeltaStep when set; float32. */
export function leafWeight(G: number, H: number, params: Pick<GbdtParams, 'lambda' | 'learningRate' | 'maxDeltaStep'>): number {
  const denom = Math.max(H, 0) + params.lambda;
  if (!(denom > 0) || !Number.isFinite(G)) return 0;
  let w = -G / denom;
  if (params.maxDeltaStep > 0) w = Math.max(-params.maxDeltaStep, Math.min(params.maxDeltaStep, w));
  return Math.fround(params.learningRate * w);
}
