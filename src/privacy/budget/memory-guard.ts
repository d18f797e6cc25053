import { composedEpsilon } from '../accountant.ts';
import { dpEventOf, type DpEvent, type LabelledDpEvent } from '../dp-event.ts';
import type { BudgetGuard, BudgetVerdict } from './guard.ts';

/** The simulation's guard: the same accountant and rules as the partner node's, held in memory, with one ε limit. */
export class MemoryBudgetGuard implements BudgetGuard {
  private readonly events = new Map<string, DpEvent>();

  constructor(private readonly maxEpsilon: number) {}

  private epsilonWith(extra: readonly DpEvent[], delta: number): number {
    const all = [...this.events.values(), ...extra];
    return all.length === 0 ? 0 : composedEpsilon(all, delta);
  }

  private key(round: number, attempt: number, label: string): string {
    return `${round}.${attempt}.${label}`;
  }

  authorize(_jobId: string, round: number, attempt: number, releases: readonly LabelledDpEvent[], delta: number): BudgetVerdict {
    const unpaid = releases.filter((e) => !this.events.has(this.key(round, attempt, e.label))).map(dpEventOf);
    const after = this.epsilonWith(unpaid, delta);
    if (after > this.maxEpsilon) {
      const before = this.epsilonWith([], delta);
      return {
        ok: false,
        reason: `ε after round ${round} would be ${after.toFixed(4)}, above the limit ${this.maxEpsilon}`,
        requestedEpsilon: after - before,
        remainingEpsilon: this.maxEpsilon - before,
      };
    }
    return { ok: true, epsilonAfter: after };
  }

  charge(_jobId: string, round: number, attempt: number, releases: readonly LabelledDpEvent[], delta: number) {
    const epsilonBefore = this.epsilonWith([], delta);
    for (const e of releases) this.events.set(this.key(round, attempt, e.label), dpEventOf(e));
    return { epsilonBefore, epsilonAfter: this.epsilonWith([], delta) };
  }

  spent(_jobId: string, delta: number): number {
    return this.epsilonWith([], delta);
  }
}
