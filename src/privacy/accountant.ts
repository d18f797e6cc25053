/**
 * Stateful RDP accountant over heterogeneous Poisson-subsampled Gaussian events, and a one-shot
 * ε helper that can use either RDP or PLD.
 *
 * RDP composes additively per order (Mironov 2017, "Rényi Differential Privacy", Prop. 1), so
 * heterogeneous events — e.g. rounds with different sampling rates — are summed order by order
 * before the single conversion to (ε, δ) (Balle et al. 2020, Thm 21). This is tighter than adding
 * per-event ε's and is what Opacus' RDPAccountant does.
 */
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import { dpEventSchema, validateDpEvent, type DpEvent } from './dp-event.ts';
import { computeRdp, DEFAULT_ORDERS, rdpToEpsilon } from './analysis/rdp.ts';
import { epsilonPld } from './analysis/pld.ts';

const accountantJsonSchema = z.object({
  kind: z.literal('rdp'),
  orders: z.array(z.number().gt(1)).min(1),
  history: z.array(dpEventSchema),
});

export type RdpAccountantJson = z.infer<typeof accountantJsonSchema>;

/** Throws DP_BAD_DELTA unless δ ∈ (0, 1). */
export function validateDelta(delta: number): number {
  if (!(typeof delta === 'number' && delta > 0 && delta < 1)) throw new FedmarkError('DP_BAD_DELTA', `delta must be in (0, 1), got ${String(delta)}`);
  return delta;
}

/**
 * A stateful privacy accountant: composes the events it is given and converts to (ε, δ). The RDP
 * accountant is the one fedmark charges with; the math it calls is in ./analysis/ (pure functions).
 */
export interface Accountant {
  step(event: DpEvent): void;
  readonly history: readonly DpEvent[];
  getEpsilon(delta: number): { epsilon: number };
}

export class RdpAccountant implements Accountant {
  readonly orders: readonly number[];
  private readonly events: DpEvent[] = [];

  constructor(orders: readonly number[] = DEFAULT_ORDERS) {
    if (orders.length === 0 || orders.some((a) => !(a > 1))) throw new FedmarkError('DP_BAD_ORDERS', 'RDP orders must be a non-empty list of numbers > 1');
    this.orders = [...orders];
  }

  /** Records one event (validated); events may differ in q, σ and steps. */
  step(event: DpEvent): void {
    this.events.push({ ...validateDpEvent(event) });
  }

  get history(): readonly DpEvent[] {
    return this.events.map((e) => ({ ...e }));
  }

  /** Total RDP per order: the sum over events (NaN/∞ propagate, as in Opacus). */
  totalRdp(): number[] {
    const total = this.orders.map(() => 0);
    for (const e of this.events) {
      const r = computeRdp(e.samplingRate, e.noiseMultiplier, e.steps, this.orders);
      for (let i = 0; i < total.length; i++) total[i] += r[i];
    }
    return total;
  }

  /** (ε, best order) at δ; with no events ε = 0. */
  getEpsilon(delta: number): { epsilon: number; bestOrder: number } {
    validateDelta(delta);
    if (this.events.length === 0) return { epsilon: 0, bestOrder: NaN };
    return rdpToEpsilon(this.orders, this.totalRdp(), delta);
  }

  toJSON(): RdpAccountantJson {
    return { kind: 'rdp', orders: [...this.orders], history: this.events.map((e) => ({ ...e })) };
  }

  static fromJSON(json: unknown): RdpAccountant {
    const r = accountantJsonSchema.safeParse(json);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new FedmarkError('DP_BAD_ACCOUNTANT_STATE', `invalid accountant state at "${issue?.path.join('.') ?? ''}": ${issue?.message ?? 'invalid'}`);
    }
    const acc = new RdpAccountant(r.data.orders);
    for (const e of r.data.history) acc.step(e);
    return acc;
  }
}

export type AccountantKind = 'rdp' | 'pld';

/**
 * ε of `steps` steps of the Poisson-subsampled Gaussian at δ, by RDP (Opacus-equivalent, default
 * orders) or PLD (dp_accounting-equivalent, pessimistic, grid 1e-4). Both are upper bounds; PLD is
 * tighter but slower (up to ~1–2 s at 10,000 steps).
 */
export function epsilonFor(args: DpEvent & { delta: number; accountant?: AccountantKind }): number {
  const event = validateDpEvent(args);
  validateDelta(args.delta);
  const kind = args.accountant ?? 'rdp';
  if (kind === 'pld') return epsilonPld({ ...event, delta: args.delta });
  if (kind !== 'rdp') throw new FedmarkError('DP_BAD_ACCOUNTANT', `accountant must be "rdp" or "pld", got ${String(kind)}`);
  const acc = new RdpAccountant();
  acc.step(event);
  return acc.getEpsilon(args.delta).epsilon;
}

/** ε of a sequence of DP events composed under RDP — the accountant `fedmark audit` recomputes with. */
export function composedEpsilon(events: readonly DpEvent[], delta: number): number {
  const acc = new RdpAccountant();
  for (const e of events) acc.step(e);
  return acc.getEpsilon(delta).epsilon;
}
