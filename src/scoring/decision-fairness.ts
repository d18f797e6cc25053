/**
 * Fairness of the decision, not only of the score.
 *
 * 1. Selection into the top-k early-warning list: per declared sensitive segment, each group's
 *    selection rate (selected ÷ scored) and its disparate-impact ratio (÷ the highest rate in the
 *    segment); a ratio below 0.8 is flagged (the four-fifths screen, 29 C.F.R. § 1607.4(D), as in
 *    src/metrics/fairness.ts). Groups are the schema's declarations, never the data's.
 *
 * 2. "Loyal customers pay more": with an offer column (price, rate or discount offered) and a
 *    tenure column, compare what long-tenure customers are offered with what new customers are
 *    offered *at the same risk*. Rows are stratified by score band (ten fixed bands of width 0.1,
 *    known before any row is read), and in each band with at least two customers of each group the
 *    difference of mean offers d_b = mean_long − mean_new and its variance
 *    v_b = s²_long/n_long + s²_new/n_new (Welch) are computed. The fixed-effect inverse-variance
 *    combination D = Σ d_b/v_b ÷ Σ 1/v_b, SE = (Σ 1/v_b)^-½, z = D/SE is tested one-sided in the
 *    "worse for the loyal" direction. The pattern is flagged when that test rejects at α (default
 *    0.05) *and* the gap is material: |D| ≥ margin (default 5 %) of the new customers' mean offer.
 *    The unstratified difference is reported next to it.
 */
import { DISPARATE_IMPACT_THRESHOLD } from '../metrics/fairness.ts';
import { RunningMoments, normalCdf } from './stats.ts';

export interface SelectionGroup {
  group: string;
  scored: number;
  selected: number;
  /** selected ÷ scored; null for an empty group. */
  selectionRate: number | null;
  /** selectionRate ÷ the highest selection rate in the segment; null when undefined. */
  disparateImpact: number | null;
  flagged: boolean;
}

export interface SelectionSegment {
  segment: string;
  referenceGroup: string | null;
  groups: SelectionGroup[];
  /** Lowest disparate-impact ratio in the segment. */
  minRatio: number | null;
  flagged: boolean;
}

export class SelectionCounter {
  private readonly scored = new Map<string, Map<string, number>>();
  private readonly selected = new Map<string, Map<string, number>>();

  constructor(private readonly declared: Record<string, readonly string[]>) {
    for (const [seg, groups] of Object.entries(declared)) {
      this.scored.set(seg, new Map(groups.map((g) => [g, 0])));
      this.selected.set(seg, new Map(groups.map((g) => [g, 0])));
    }
  }

  private bump(m: Map<string, Map<string, number>>, segment: string, group: string, count: number): void {
    const s = m.get(segment);
    if (!s) return;
    s.set(group, (s.get(group) ?? 0) + count);
  }

  addScored(segment: string, group: string, count = 1): void {
    this.bump(this.scored, segment, group, count);
  }

  addSelected(segment: string, group: string): void {
    this.bump(this.selected, segment, group, 1);
  }

  result(): SelectionSegment[] {
    return Object.keys(this.declared)
      .sort()
      .map((segment) => {
        const scored = this.scored.get(segment)!;
        const selected = this.selected.get(segment)!;
        const groups = [...scored.keys()].map((group) => {
          const n = scored.get(group) ?? 0;
          const k = selected.get(group) ?? 0;
          return { group, scored: n, selected: k, selectionRate: n > 0 ? k / n : null };
        });
        let best = -1;
        let referenceGroup: string | null = null;
        for (const g of groups)
          if (g.selectionRate !== null && g.selectionRate > best) {
            best = g.selectionRate;
            referenceGroup = g.group;
          }
        const out: SelectionGroup[] = groups.map((g) => {
          const di = best > 0 && g.selectionRate !== null ? g.selectionRate / best : null;
          return { ...g, disparateImpact: di, flagged: di !== null && di < DISPARATE_IMPACT_THRESHOLD };
        });
        const ratios = out.map((g) => g.disparateImpact).filter((x): x is number => x !== null);
        return {
          segment,
          referenceGroup: best > 0 ? referenceGroup : null,
          groups: out,
          minRatio: ratios.length ? Math.min(...ratios) : null,
          flagged: out.some((g) => g.flagged),
        };
      });
  }
}

export interface LoyaltyOptions {
  offerColumn: string;
  tenureColumn: string;
  /** Tenure at or below this is "new". */
  newMax: number;
  /** Tenure at or above this is "long". */
  longMin: number;
  /** Which direction of the offer is worse for the customer: a higher price, or a lower discount. */
  worse: 'higher' | 'lower';
  alpha?: number;
  margin?: number;
}

export interface LoyaltyResult {
  offerColumn: string;
  tenureColumn: string;
  worse: 'higher' | 'lower';
  newCustomers: { definition: string; n: number; meanOffer: number | null };
  longTenure: { definition: string; n: number; meanOffer: number | null };
  /** mean_long − mean_new over all scored rows. */
  unstratifiedDifference: number | null;
  /** Risk-stratified (score band) comparison. */
  stratified: { difference: number | null; standardError: number | null; z: number | null; pValue: number | null; bandsUsed: number };
  /** |stratified difference| ÷ new customers' mean offer. */
  relativeGap: number | null;
  alpha: number;
  margin: number;
  flagged: boolean;
  verdict: string;
  rowsWithoutOffer: number;
  rowsMiddleTenure: number;
}

const BANDS = 10;

export class LoyaltyAccumulator {
  private readonly bands = Array.from({ length: BANDS }, () => ({ young: new RunningMoments(), loyal: new RunningMoments() }));
  private readonly young = new RunningMoments();
  private readonly loyal = new RunningMoments();
  private noOffer = 0;
  private middle = 0;

  constructor(private readonly o: LoyaltyOptions) {}

  /** `offer`/`tenure` are null when the cell is blank or not a number. */
  add(probability: number, tenure: number | null, offer: number | null): void {
    if (offer === null || tenure === null) {
      this.noOffer++;
      return;
    }
    const band = Math.min(BANDS - 1, Math.floor(probability * BANDS));
    if (tenure <= this.o.newMax) {
      this.young.add(offer);
      this.bands[band].young.add(offer);
    } else if (tenure >= this.o.longMin) {
      this.loyal.add(offer);
      this.bands[band].loyal.add(offer);
    } else this.middle++;
  }

  result(): LoyaltyResult {
    const alpha = this.o.alpha ?? 0.05;
    const margin = this.o.margin ?? 0.05;
    let sw = 0;
    let swd = 0;
    let used = 0;
    let zeroVarDiff: number | null = null;
    for (const b of this.bands) {
      if (b.young.n < 2 || b.loyal.n < 2) continue;
      const d = b.loyal.mean - b.young.mean;
      const v = b.loyal.variance / b.loyal.n + b.young.variance / b.young.n;
      used++;
      if (v > 0) {
        sw += 1 / v;
        swd += d / v;
      } else if (d !== 0) zeroVarDiff = d; // identical offers within each group yet different between them
    }
    const sign = this.o.worse === 'higher' ? 1 : -1;
    let difference: number | null = null;
    let se: number | null = null;
    let z: number | null = null;
    let p: number | null = null;
    if (sw > 0) {
      difference = swd / sw;
      se = 1 / Math.sqrt(sw);
      z = difference / se;
      p = 1 - normalCdf(sign * z);
    } else if (zeroVarDiff !== null) {
      difference = zeroVarDiff;
      z = sign * zeroVarDiff > 0 ? Infinity : -Infinity;
      p = sign * zeroVarDiff > 0 ? 0 : 1;
    }
    const base = this.young.n ? this.young.mean : null;
    const relativeGap = difference !== null && base !== null && base !== 0 ? Math.abs(difference) / Math.abs(base) : null;
    const worseForLoyal = difference !== null && sign * difference > 0;
    const flagged = worseForLoyal && p !== null && p < alpha && relativeGap !== null && relativeGap >= margin;
    const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));
    let verdict: string;
    if (difference === null) verdict = 'not enough customers in both tenure groups within the same score band to compare';
    else if (flagged)
      verdict = `long-tenure customers are offered ${this.o.worse === 'higher' ? 'higher' : 'lower'} ${this.o.offerColumn} than new customers at the same risk: ${fmt(Math.abs(difference))} (${(relativeGap! * 100).toFixed(1)} %), one-sided p = ${p!.toExponential(2)} — the "loyal customers pay more" pattern`;
    else if (worseForLoyal)
      verdict = `long-tenure customers get slightly worse ${this.o.offerColumn} at the same risk (${fmt(Math.abs(difference))}), below the flag threshold (p ${p === null ? 'n/a' : p.toPrecision(2)}, gap ${relativeGap === null ? 'n/a' : `${(relativeGap * 100).toFixed(1)} %`})`;
    else verdict = `no sign that long-tenure customers are offered worse ${this.o.offerColumn} than new customers at the same risk`;
    return {
      offerColumn: this.o.offerColumn,
      tenureColumn: this.o.tenureColumn,
      worse: this.o.worse,
      newCustomers: { definition: `${this.o.tenureColumn} ≤ ${this.o.newMax}`, n: this.young.n, meanOffer: this.young.n ? this.young.mean : null },
      longTenure: { definition: `${this.o.tenureColumn} ≥ ${this.o.longMin}`, n: this.loyal.n, meanOffer: this.loyal.n ? this.loyal.mean : null },
      unstratifiedDifference: this.young.n && this.loyal.n ? this.loyal.mean - this.young.mean : null,
      stratified: { difference, standardError: se, z, pValue: p, bandsUsed: used },
      relativeGap,
      alpha,
      margin,
      flagged,
      verdict,
      rowsWithoutOffer: this.noOffer,
      rowsMiddleTenure: this.middle,
    };
  }
}
