/**
 * A partner's persisted privacy spend.
 *
 * - One JSON file, replaced atomically on every change (write a temp file in the same directory,
 *   fsync it, rename over the store, fsync the directory), so a crash or kill mid-write leaves
 *   either the old or the new store — never a truncated one, never a reset.
 * - The file carries a SHA-256 checksum of its canonical content; a file that does not parse,
 *   does not match the schema or fails the checksum is refused with BUDGET_STORE_CORRUPT. It is
 *   never silently replaced by an empty store (that would hand out the whole budget again).
 * - Every charge records the DP event (q, σ, steps) of one release of one round of one job, keyed by
 *   (jobId, round, attempt, label): re-charging the same release with the same event is a no-op, which
 *   is what a node recovering from a crash needs ("did my charge before the upload persist?"). A
 *   charge written before labels existed is an `update` (DP-SGD was the only release then).
 * - A job's ε composes its events with the RDP accountant (RDP adds per order — Mironov 2017),
 *   not by adding ε's. Lifetime ε of a dataset is the SUM of its jobs' ε's: basic sequential
 *   composition across jobs (Dwork & Roth 2014, Thm 3.16). That is looser than composing every
 *   job's events jointly, but it keeps each job's reported ε meaningful on its own and never
 *   under-counts. Both are evaluated at the δ the caller passes.
 *
 * Single writer: one node process owns a store file at a time.
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../ledger/canonical.ts';
import { writeFileAtomic } from '../../util/atomic-file.ts';
import { RdpAccountant, validateDelta } from '../accountant.ts';
import { dpEventSchema, validateDpEvent, type DpEvent } from '../dp-event.ts';

const FORMAT = 'fedmark-budget-store';
const VERSION = 1;

const chargeSchema = dpEventSchema.extend({
  round: z.number().int().min(0),
  /** A retried round (quorum missed) is a new release: each attempt is charged on its own. */
  attempt: z.number().int().min(0).default(0),
  /** What the charge bought (`update`, `moments`, …); absent in stores written before labels: `update`. */
  label: z.string().min(1).optional(),
  delta: z.number().gt(0).lt(1),
  chargedAt: z.string(),
});

const jobSchema = z.object({
  datasetId: z.string().min(1),
  charges: z.array(chargeSchema),
});

const contentSchema = z
  .object({
    format: z.literal(FORMAT),
    version: z.literal(VERSION),
    jobs: z.record(z.string(), jobSchema),
  })
  .strict();

type Content = z.infer<typeof contentSchema>;
type Charge = z.infer<typeof chargeSchema>;

/** Canonical JSON (RFC 8785, the ledger's), so the checksum does not depend on key order. */
function checksumOf(content: Content): string {
  return sha256Canonical(content);
}

const DEFAULT_LABEL = 'update';
const labelOf = (c: { label?: string }): string => c.label ?? DEFAULT_LABEL;

function sameEvent(a: DpEvent, b: DpEvent): boolean {
  return a.samplingRate === b.samplingRate && a.noiseMultiplier === b.noiseMultiplier && a.steps === b.steps;
}

function requireId(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new FedmarkError('BUDGET_BAD_ARGUMENT', `${what} must be a non-empty string`);
  return value;
}

export interface Spend {
  jobEpsilon: number;
  lifetimeEpsilon: number;
}

export class BudgetStore {
  private constructor(
    readonly path: string,
    private content: Content,
  ) {}

  /**
   * Opens the store at `path`, creating (and persisting) an empty one if the file does not exist.
   * Throws BUDGET_STORE_CORRUPT for anything unreadable — never resets.
   */
  static open(path: string): BudgetStore {
    if (!existsSync(path)) {
      const store = new BudgetStore(path, { format: FORMAT, version: VERSION, jobs: {} });
      store.persist();
      return store;
    }
    const corrupt = (why: string) =>
      new FedmarkError(
        'BUDGET_STORE_CORRUPT',
        `${path}: privacy budget store is corrupt (${why}); refusing to continue — restore it from a ` +
          'backup or the privacy ledger; it is never reset automatically',
        { path },
      );
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw corrupt(`not valid JSON: ${(err as Error).message}`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt('not a JSON object');
    const { checksum, ...rest } = raw as Record<string, unknown>;
    const parsed = contentSchema.safeParse(rest);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw corrupt(`field "${issue?.path.join('.') ?? ''}": ${issue?.message ?? 'invalid'}`);
    }
    if (typeof checksum !== 'string' || checksum !== checksumOf(parsed.data)) throw corrupt('checksum mismatch — the file was edited or damaged');
    for (const [jobId, job] of Object.entries(parsed.data.jobs)) {
      const releases = new Set(job.charges.map((c) => `${c.round}.${c.attempt}.${labelOf(c)}`));
      if (releases.size !== job.charges.length) throw corrupt(`job "${jobId}" has a release charged twice`);
    }
    return new BudgetStore(path, parsed.data);
  }

  private persist(): void {
    const doc = { ...this.content, checksum: checksumOf(this.content) };
    writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`);
  }

  private static epsilonOf(events: DpEvent[], delta: number): number {
    if (events.length === 0) return 0;
    const acc = new RdpAccountant();
    for (const e of events) acc.step(e);
    return acc.getEpsilon(delta).epsilon;
  }

  private eventsOf(jobId: string): DpEvent[] {
    const job = this.content.jobs[jobId];
    if (!job) return [];
    return job.charges.map((c) => ({ samplingRate: c.samplingRate, noiseMultiplier: c.noiseMultiplier, steps: c.steps }));
  }

  /** Job ids recorded for a dataset. */
  jobsFor(datasetId: string): string[] {
    return Object.entries(this.content.jobs)
      .filter(([, j]) => j.datasetId === datasetId)
      .map(([id]) => id);
  }

  /** The recorded charges of a job (copies), in charge order. */
  charges(jobId: string): (DpEvent & { round: number; attempt: number; label: string; delta: number; chargedAt: string })[] {
    return (this.content.jobs[jobId]?.charges ?? []).map((c) => ({ ...c, label: labelOf(c) }));
  }

  /** ε of the job so far: its events composed with the RDP accountant (0 for an unknown job). */
  jobEpsilon(jobId: string, delta: number): number {
    validateDelta(delta);
    return BudgetStore.epsilonOf(this.eventsOf(jobId), delta);
  }

  /** Σ over the dataset's jobs of each job's ε (basic composition across jobs). */
  lifetimeEpsilon(datasetId: string, delta: number): number {
    validateDelta(delta);
    let total = 0;
    for (const jobId of this.jobsFor(datasetId)) total += this.jobEpsilon(jobId, delta);
    return total;
  }

  /**
   * What job and lifetime ε would be after charging `event` (or several) to `jobId` — without
   * charging. For a job the store has not seen yet, pass its `datasetId`.
   */
  wouldSpend(jobId: string, event: DpEvent | readonly DpEvent[], delta: number, datasetId?: string): Spend {
    requireId(jobId, 'jobId');
    const added = (Array.isArray(event) ? event : [event as DpEvent]).map(validateDpEvent);
    validateDelta(delta);
    const known = this.content.jobs[jobId]?.datasetId;
    if (known !== undefined && datasetId !== undefined && known !== datasetId)
      throw new FedmarkError('BUDGET_DATASET_MISMATCH', `job "${jobId}" is recorded against dataset "${known}", not "${datasetId}"`);
    const ds = known ?? datasetId;
    if (ds === undefined) throw new FedmarkError('BUDGET_UNKNOWN_JOB', `job "${jobId}" has no charges yet; pass its datasetId`);
    const jobEps = BudgetStore.epsilonOf([...this.eventsOf(jobId), ...added], delta);
    let others = 0;
    for (const other of this.jobsFor(ds)) if (other !== jobId) others += this.jobEpsilon(other, delta);
    return { jobEpsilon: jobEps, lifetimeEpsilon: others + jobEps };
  }

  /**
   * Records the DP event of one release (`label`) of `round` of `jobId` (persisted before returning)
   * and returns the new job and lifetime ε. Idempotent per (jobId, round, attempt, label): the same
   * event again changes nothing; a different event for an already charged release is refused
   * (BUDGET_ROUND_CONFLICT).
   */
  charge(jobId: string, datasetId: string, round: number, event: DpEvent, delta: number, attempt = 0, label: string = DEFAULT_LABEL): Spend {
    requireId(jobId, 'jobId');
    requireId(datasetId, 'datasetId');
    if (!(Number.isInteger(round) && round >= 0)) throw new FedmarkError('BUDGET_BAD_ARGUMENT', `round must be a non-negative integer, got ${String(round)}`);
    const e = validateDpEvent(event);
    validateDelta(delta);
    const job = this.content.jobs[jobId];
    if (job && job.datasetId !== datasetId)
      throw new FedmarkError('BUDGET_DATASET_MISMATCH', `job "${jobId}" is recorded against dataset "${job.datasetId}", not "${datasetId}"`);
    if (!(Number.isInteger(attempt) && attempt >= 0))
      throw new FedmarkError('BUDGET_BAD_ARGUMENT', `attempt must be a non-negative integer, got ${String(attempt)}`);
    requireId(label, 'label');
    const existing = job?.charges.find((c) => c.round === round && c.attempt === attempt && labelOf(c) === label);
    if (existing) {
      if (!sameEvent(existing, e))
        throw new FedmarkError(
          'BUDGET_ROUND_CONFLICT',
          `round ${round} (attempt ${attempt}) of job "${jobId}" was already charged for "${label}" with a different DP event ` +
            `(q=${existing.samplingRate}, σ=${existing.noiseMultiplier}, steps=${existing.steps})`,
        );
    } else {
      const charge: Charge = { ...e, round, attempt, label, delta, chargedAt: new Date().toISOString() };
      const next: Content = {
        ...this.content,
        jobs: {
          ...this.content.jobs,
          [jobId]: { datasetId, charges: [...(job?.charges ?? []), charge] },
        },
      };
      const previous = this.content;
      this.content = next;
      try {
        this.persist();
      } catch (err) {
        // Keep memory equal to disk: a charge that did not persist did not happen.
        this.content = previous;
        throw err;
      }
    }
    return { jobEpsilon: this.jobEpsilon(jobId, delta), lifetimeEpsilon: this.lifetimeEpsilon(datasetId, delta) };
  }
}
