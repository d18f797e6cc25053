/**
 * The budget store against the partner's own signed ledger. The store is a plain file; deleting it,
 * or replacing it with a valid empty (or edited, re-checksummed) store, would hand the spent ε out
 * again. The ledger is hash-chained and signed by the node's key, and every charge the node records
 * there was charged to the store first (charge, then release, then record). So on open every DP
 * event the ledger records must be in the store; a store that lacks one was reset or edited, and the
 * node must not start on it.
 *
 * The ledger's charged events are read by field name, not by entry type: any object (at any depth)
 * of one of the node's own entries for a job that carries a numeric `noiseMultiplier` is one charged
 * event, its `round`, `attempt` and `label` taken from the object or the nearest enclosing one. So a
 * record type that carries several releases per round is read without a change here.
 */
import { FedmarkError } from '../../errors.ts';
import type { LedgerEntry } from '../ledger/entries.ts';
import type { DpEvent } from '../dp-event.ts';
import type { BudgetStore } from './store.ts';

/** One charged DP event a ledger records. */
export interface LedgerCharge extends DpEvent {
  jobId: string;
  round: number;
  /** Absent when the record does not say (then any attempt of the round matches). */
  attempt?: number;
  /** Absent when the record does not say (then any release of the round with this event matches). */
  label?: string;
  delta?: number;
  /** The ledger entry that records it. */
  seq: number;
}

interface Context {
  round?: number;
  attempt?: number;
  label?: string;
  delta?: number;
}

function collect(value: unknown, ctx: Context, out: Omit<LedgerCharge, 'jobId' | 'seq'>[]): void {
  if (Array.isArray(value)) {
    for (const v of value) collect(v, ctx, out);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  const o = value as Record<string, unknown>;
  const here: Context = {
    round: typeof o.round === 'number' ? o.round : ctx.round,
    attempt: typeof o.attempt === 'number' ? o.attempt : ctx.attempt,
    label: typeof o.label === 'string' ? o.label : ctx.label,
    delta: typeof o.delta === 'number' ? o.delta : ctx.delta,
  };
  if (typeof o.noiseMultiplier === 'number' && typeof o.samplingRate === 'number' && typeof o.steps === 'number' && here.round !== undefined) {
    out.push({
      samplingRate: o.samplingRate,
      noiseMultiplier: o.noiseMultiplier,
      steps: o.steps,
      round: here.round,
      attempt: here.attempt,
      label: here.label,
      delta: here.delta,
    });
  }
  for (const [k, v] of Object.entries(o)) if (k !== 'attestation' && typeof v === 'object') collect(v, here, out);
}

/** Every charged DP event in the entries `self` authored (a node's own ledger), by job. */
export function ledgerCharges(entries: readonly LedgerEntry[], self: string): LedgerCharge[] {
  const out: LedgerCharge[] = [];
  for (const e of entries) {
    if (e.author !== self) continue;
    const p = e.payload as { jobId?: unknown } | null;
    if (!p || typeof p.jobId !== 'string') continue;
    const found: Omit<LedgerCharge, 'jobId' | 'seq'>[] = [];
    collect(p, {}, found);
    for (const c of found) out.push({ ...c, jobId: p.jobId, seq: e.seq });
  }
  return distinctCharges(out);
}

/**
 * A ledger may record one charge more than once: the version-3 `partner.release` of an attempt and
 * the `partner.round` of the same attempt list the same releases, and the round record's top-level
 * fields (no label) repeat its primary one. The store holds each charge once, so the same
 * (job, round, attempt, label, event) counts once, and a record that leaves the attempt or label
 * unsaid counts only when no record of the same round and event says more.
 */
function distinctCharges(charges: LedgerCharge[]): LedgerCharge[] {
  const event = (c: LedgerCharge) => `${c.jobId}|${c.round}|${c.samplingRate}|${c.noiseMultiplier}|${c.steps}`;
  const seen = new Set<string>();
  const exact = charges.filter((c) => {
    const key = `${event(c)}|${c.attempt ?? '?'}|${c.label ?? '?'}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return exact.filter(
    (c) =>
      (c.attempt !== undefined && c.label !== undefined) ||
      !exact.some(
        (d) =>
          d !== c &&
          event(d) === event(c) &&
          (c.attempt === undefined || d.attempt === c.attempt) &&
          (c.label === undefined || d.label === c.label) &&
          ((c.attempt === undefined && d.attempt !== undefined) || (c.label === undefined && d.label !== undefined)),
      ),
  );
}

/**
 * The ledger's charges the store does not hold (empty: the store covers the ledger). A store charge
 * matches a ledger charge of the same job and round with the same DP event, and the same attempt and
 * label where the ledger records them.
 */
export function missingCharges(store: Pick<BudgetStore, 'charges'>, charges: readonly LedgerCharge[]): LedgerCharge[] {
  const used = new Set<string>();
  const missing: LedgerCharge[] = [];
  for (const c of charges) {
    const match = store
      .charges(c.jobId)
      .map((s, i) => ({ s, key: `${c.jobId}#${i}` }))
      .find(
        ({ s, key }) =>
          !used.has(key) &&
          s.round === c.round &&
          (c.attempt === undefined || s.attempt === c.attempt) &&
          (c.label === undefined || s.label === c.label) &&
          s.samplingRate === c.samplingRate &&
          s.noiseMultiplier === c.noiseMultiplier &&
          s.steps === c.steps,
      );
    if (match) used.add(match.key);
    else missing.push(c);
  }
  return missing;
}

/**
 * Refuses to go on with a store that lacks charges the node's own ledger records (it was deleted,
 * replaced or edited), naming them and how to recover: restore the file, or rebuild it from the
 * ledger (which adds what the ledger records and never removes a charge).
 */
export function assertStoreCoversLedger(store: Pick<BudgetStore, 'charges' | 'path'>, entries: readonly LedgerEntry[], self: string, ledgerPath: string): void {
  const missing = missingCharges(store, ledgerCharges(entries, self));
  if (missing.length === 0) return;
  const jobs = [...new Set(missing.map((c) => c.jobId))];
  const sample = missing
    .slice(0, 5)
    .map(
      (c) =>
        `${c.jobId} round ${c.round}${c.attempt === undefined ? '' : `.${c.attempt}`}${c.label ? ` ${c.label}` : ''} (q=${c.samplingRate}, σ=${c.noiseMultiplier}, steps=${c.steps}; ledger seq ${c.seq})`,
    )
    .join('; ');
  throw new FedmarkError(
    'BUDGET_BEHIND_LEDGER',
    `the privacy budget store ${store.path} lacks ${missing.length} charge(s) that this node's own signed ledger ${ledgerPath} records ` +
      `for job(s) ${jobs.join(', ')}: ${sample}${missing.length > 5 ? '; …' : ''}. The store was deleted, replaced or edited, and starting on it would spend that ε again. ` +
      `Restore it from a backup, or rebuild it from the ledger: fedmark privacy rebuild-budget --ledger ${ledgerPath} --budget ${store.path} --policy <policy.json> ` +
      '(it adds every charge the ledger records and never removes one)',
    { missing: missing.length, jobs },
  );
}

/**
 * Adds to the store every charge the ledger records that it lacks (never removing one), charged to
 * `datasetId` at the ledger's δ (or `fallbackDelta`). Returns what it added.
 */
export function rebuildFromLedger(store: BudgetStore, entries: readonly LedgerEntry[], self: string, datasetId: string, fallbackDelta: number): LedgerCharge[] {
  const missing = missingCharges(store, ledgerCharges(entries, self));
  for (const c of missing) {
    // A ledger record without attempt or label says "some release of this round": give it the first free key.
    const taken = store.charges(c.jobId).filter((s) => s.round === c.round);
    let attempt = c.attempt ?? 0;
    const label = c.label ?? 'update';
    while (c.attempt === undefined && taken.some((s) => s.attempt === attempt && s.label === label)) attempt++;
    store.charge(
      c.jobId,
      datasetId,
      c.round,
      { samplingRate: c.samplingRate, noiseMultiplier: c.noiseMultiplier, steps: c.steps },
      c.delta ?? fallbackDelta,
      attempt,
      label,
    );
  }
  return missing;
}
