import type { Dataset } from '../data/encode.ts';
import { FedmarkError } from '../errors.ts';
import type { BudgetGuard } from '../privacy/budget/guard.ts';
import type { JobManifest } from './manifest.ts';
import type { SecureSumScheme } from './secure-sum.ts';
import { StateTracker } from './state-tracker.ts';
import { decodeUpdate, encodeUpdate, type DpReport, type UpdateMeta } from './update-codec.ts';
import { MAX_ATTEMPTS } from './round-machine.ts';
import { attemptReleases } from './release-records.ts';
import { MemoryReleaseStore, type ReleaseStore } from './release-store.ts';
import type { AttemptReleases } from '../privacy/ledger/entries.ts';
import { sha256Hex } from '../util/hash.ts';
import type { LedgerSigner } from '../privacy/ledger/signing.ts';
import { recordHash, signSubmissionRecord, type RoundContents, type SubmissionRecord } from './submission-record.ts';
import type { AnyWorkload, PartSpec, PrivacyPlan, Workload } from './workload.ts';
import { encodePart, partProblems, rowsProblem } from './part-encoding.ts';

export interface PartnerOptions<S = unknown> {
  manifest: JobManifest;
  workload: Workload<S, unknown>;
  keyId: string;
  train: Dataset;
  test: Dataset;
  scheme: SecureSumScheme;
  secretKey: Uint8Array | null;
  /** Required for a job with differential privacy: where the partner's releases are authorized and charged. */
  budget?: BudgetGuard;
  /** Signs this partner's submission records (its identity's key; key id = `keyId`). */
  signer: LedgerSigner;
  /** What this partner built and released (default: in memory). The partner node persists it. */
  releases?: ReleaseStore;
  /** Called with what an attempt releases after it is charged and before its envelope is kept or sent (the node's ledger record). */
  onRelease?: (r: { round: number; kind: string; released: AttemptReleases }) => void;
  /** Masked aggregation: the coordinator's signing key (base64), whose signatures every attempt's evidence must carry. */
  coordinatorSignPublicKey?: string;
}

/** Masked aggregation: turns a round's parts into the one masked, encrypted part it uploads (partner/steps/secagg.ts). */
export type PartSealer = (parts: Record<string, Float64Array>) => { name: string; length: number; bytes: Uint8Array }[];

export type SubmissionResult =
  /** `resent`: the bytes built for this attempt before (its release was charged then). */
  | { status: 'submitted'; resent: boolean; body: Uint8Array; meta: Omit<UpdateMeta, 'parts'>; plain?: Record<string, Float64Array> }
  /** The budget guard refused: nothing was computed or charged. */
  | { status: 'refused'; reason: string; requestedEpsilon: number; remainingEpsilon: number }
  /** The attempt may not be (re)computed: nothing is sent, nothing charged. */
  | { status: 'withheld'; reason: string };

/**
 * What a partner does in a round, for any workload and both drivers (the partner node and
 * simulate()): authorize the round's releases with its own budget guard → the workload's local step
 * → charge the releases → encrypt the parts → the envelope. Nothing leaves before the charge is
 * recorded; the caller persists the envelope before sending it, so a retry re-sends the same bytes.
 */
export class PartnerRuntime<S = unknown> {
  readonly manifest: JobManifest;
  readonly keyId: string;
  readonly privacy: PrivacyPlan | null;
  readonly tracker: StateTracker<S, unknown>;
  private train: Dataset;
  private test: Dataset;
  private readonly store: ReleaseStore;

  constructor(private readonly opts: PartnerOptions<S>) {
    if (opts.signer.keyId !== opts.keyId) throw new FedmarkError('RECORD_SIGNER', `partner ${opts.keyId} was given the signing key of ${opts.signer.keyId}`);
    this.store = opts.releases ?? new MemoryReleaseStore();
    this.manifest = opts.manifest;
    this.keyId = opts.keyId;
    this.checkShape(opts.train, opts.test, 'partner data');
    // The declared sizes must fit the encoding before anything is authorized or charged.
    const tooMany = rowsProblem(opts.manifest, opts.train.n + opts.test.n);
    const problems = [...partProblems(opts.workload as AnyWorkload, opts.manifest, opts.scheme.maxAbsInput), ...(tooMany ? [tooMany] : [])];
    if (problems.length) throw new FedmarkError('JOB_DOES_NOT_FIT', `job ${opts.manifest.jobId}: ${problems.join('; ')}`, { problems });
    this.train = opts.train;
    this.test = opts.test;
    this.privacy = opts.workload.privacy(opts.manifest);
    if (this.privacy && !opts.budget) throw new FedmarkError('DP_NO_BUDGET', "a DP job needs the partner's budget guard");
    this.tracker = new StateTracker(opts.manifest, opts.workload, opts.scheme, opts.secretKey, opts.coordinatorSignPublicKey ?? null);
  }

  private checkShape(train: Dataset, test: Dataset, what: string): void {
    const d = this.manifest.dataset.featureNames.length;
    for (const ds of [train, test]) if (ds.d !== d) throw new FedmarkError('SCHEMA_MISMATCH', `${what} has ${ds.d} features, the job declares ${d}`);
  }

  /**
   * Replaces the local rows (same features), e.g. after consent withdrawals: later rounds train and
   * evaluate without the withdrawn customers.
   */
  replaceData(train: Dataset, test: Dataset): void {
    this.checkShape(train, test, 'replacement data');
    this.train = train;
    this.test = test;
  }

  /**
   * The envelope this partner sends for (round, attempt), or why it sends none. An attempt it built
   * before gets the same bytes again — never a second release for one charge; an attempt it began
   * but did not keep (a crash before persisting: no byte of it left) is computed again under its
   * one charge unless its release may already be in the ledger, then it is withheld;
   * attempts beyond the round machine's MAX_ATTEMPTS and (round, attempt)s before the latest one
   * it began are refused. Otherwise: authorize every release (the round's and the job releases
   * first carried now) with the budget guard → mark the attempt begun → the local step → charge →
   * encrypt → `onRelease` (the node's ledger record) → persist → return. `keepPlain` exposes the
   * plaintext parts to in-process tests and simulations; nodes never send them.
   */
  async buildSubmission(round: number, attempt: number, keepPlain = false, seal?: PartSealer): Promise<SubmissionResult> {
    const kept = this.store.envelope(round, attempt);
    if (kept) return { status: 'submitted', resent: true, body: kept, meta: metaOf(kept) };
    // Begun but never kept: a crash came before the bytes could leave (they leave only once kept).
    // If its release may already be in the ledger, the attempt is withheld; otherwise nothing of it
    // left this node or reached a record, and it is computed now under the same (idempotent) charge.
    if (this.store.begun(round, attempt) && this.store.recorded(round, attempt)) {
      return {
        status: 'withheld',
        reason: `round ${round} attempt ${attempt} was recorded in this partner's ledger before a crash but its envelope was never kept: it is not computed a second time`,
      };
    }
    const why = this.outOfOrder(round, attempt);
    if (why) return { status: 'withheld', reason: why };
    if (!this.tracker.readyFor(round)) {
      throw new FedmarkError('OUT_OF_STEP', `partner holds the model after round ${this.tracker.round}, cannot submit for round ${round}`);
    }
    const plan = this.tracker.plan(round);
    const stopped = this.tracker.selection?.stopped;
    if (stopped && plan.updatesState)
      return {
        status: 'withheld',
        reason: `training stopped early (the state selected round ${this.tracker.selection!.round}): round ${round} is not computed`,
      };
    const { jobId } = this.manifest;
    const stored = this.store.jobValues();
    const due = (this.opts.workload.jobReleases?.(this.manifest) ?? []).filter((r) => plan.uses?.includes(r.label) && !stored[r.label]);
    const releases = [...due, ...plan.releases];
    if (releases.length) {
      if (!this.privacy)
        throw new FedmarkError('DP_PLAN_MISSING', `round ${round} releases ${releases.map((r) => r.label).join(', ')} but the job has no DP parameters`);
      const verdict = this.opts.budget!.authorize(jobId, round, attempt, releases, this.privacy.delta);
      if (!verdict.ok)
        return { status: 'refused', reason: verdict.reason, requestedEpsilon: verdict.requestedEpsilon, remainingEpsilon: verdict.remainingEpsilon };
    }
    // From here on the attempt is spent: whatever happens next, it is never computed again.
    this.store.begin(round, attempt);
    const data = { train: this.train, test: this.test };
    const fresh = due.length ? this.opts.workload.releaseOnce!({ manifest: this.manifest, keyId: this.keyId, labels: due.map((r) => r.label), data }) : {};
    const local = await this.opts.workload.local({
      manifest: this.manifest,
      round,
      attempt,
      keyId: this.keyId,
      plan,
      state: this.tracker.state,
      data,
      released: { ...stored, ...fresh },
    });
    let dp: DpReport | null = null;
    if (releases.length) {
      const ran = local.releases ?? plan.releases;
      if (ran.map((r) => r.label).join() !== plan.releases.map((r) => r.label).join()) {
        throw new FedmarkError(
          'WORKLOAD_RELEASES',
          `round ${round}: the local step ran releases ${ran.map((r) => r.label).join(', ')}, the plan declares ${plan.releases.map((r) => r.label).join(', ')}`,
        );
      }
      const charged = [...due, ...ran];
      // Charged before any part is encrypted or sent: a crash after this point never under-counts.
      const spend = this.opts.budget!.charge(jobId, round, attempt, charged, this.privacy!.delta);
      dp = {
        releases: charged.map((r) => ({
          label: r.label,
          samplingRate: r.samplingRate,
          noiseMultiplier: r.noiseMultiplier,
          steps: r.steps,
          sensitivity: r.sensitivity,
        })),
        delta: this.privacy!.delta,
        epsilonSpent: Math.max(0, spend.epsilonAfter - spend.epsilonBefore),
        epsilonAfterRound: spend.epsilonAfter,
      };
    }
    const scheme = this.opts.scheme.scheme;
    if (scheme === 'none') throw new FedmarkError('NO_AGGREGATION', `job ${jobId} sums nothing at the coordinator: it has no update to send`);
    let parts: { name: string; length: number; bytes: Uint8Array }[];
    try {
      if (seal) for (const spec of plan.parts) checkPartBound(spec, local.parts[spec.name], round);
      parts = seal
        ? seal(local.parts)
        : plan.parts.map((spec) => {
            const values = local.parts[spec.name];
            if (!values || values.length !== spec.length) {
              throw new FedmarkError(
                'WORKLOAD_PART',
                `round ${round}: the local step produced ${values ? `${values.length} values` : 'nothing'} for part "${spec.name}", the plan needs ${spec.length}`,
              );
            }
            return { name: spec.name, length: spec.length, bytes: this.tracker.encryptPart(spec, values) };
          });
    } catch (err) {
      // A value beyond the job's declared bound is not uploaded; the attempt stays begun (and charged): it is never recomputed.
      if (err instanceof FedmarkError && err.code === 'PART_OUT_OF_BOUND')
        return { status: 'withheld', reason: `round ${round} attempt ${attempt}: ${err.message}` };
      throw err;
    }
    const hashes = parts.map((p) => ({ name: p.name, sha256: sha256Hex(p.bytes) }));
    const record = signSubmissionRecord(
      { jobId, round, attempt, kind: plan.kind, partner: this.keyId, baseModelHash: this.tracker.hash, parts: hashes },
      this.opts.signer,
    );
    const meta: Omit<UpdateMeta, 'parts'> = {
      jobId,
      round,
      attempt,
      kind: plan.kind,
      scheme,
      paramsId: this.opts.scheme.paramsId,
      baseModelHash: this.tracker.hash,
      dp,
      record,
    };
    const body = encodeUpdate(meta, parts);
    const released = dp
      ? attemptReleases(
          this.keyId,
          attempt,
          dp,
          hashes.map((h) => h.sha256),
        )
      : null;
    if (released) {
      this.store.recording(round, attempt);
      this.opts.onRelease?.({ round, kind: plan.kind, released });
    }
    this.store.built(round, attempt, body, released, fresh, record);
    return { status: 'submitted', resent: false, body, meta, plain: keepPlain ? local.parts : undefined };
  }

  /** Why (round, attempt) may not be computed: beyond the round machine's attempts, or before the latest attempt begun. */
  private outOfOrder(round: number, attempt: number): string | null {
    if (!(Number.isInteger(attempt) && attempt >= 0 && attempt < MAX_ATTEMPTS))
      return `attempt ${attempt} of round ${round} is beyond the ${MAX_ATTEMPTS} attempts a round has`;
    const last = this.store.latest();
    if (last && (round < last.round || (round === last.round && attempt < last.attempt))) {
      return `round ${round} attempt ${attempt} comes before round ${last.round} attempt ${last.attempt}, which this partner already began: rounds and attempts do not go backwards`;
    }
    return null;
  }

  /** What this partner released in (round, attempt), from its own store (null: nothing built, or no DP). */
  released(round: number, attempt: number): AttemptReleases | null {
    return this.store.released(round, attempt);
  }

  /** The coordinator acknowledged the upload of (round, attempt): from now on that attempt's published sums must list this partner's record. */
  acknowledged(round: number, attempt: number): void {
    if (!this.store.wasSent(round, attempt)) this.store.markSent(round, attempt);
  }

  /**
   * Checks a round's published sums against their signed records (which must include this
   * partner's whenever the coordinator acknowledged its upload to that attempt), decrypts the parts
   * the state needs and applies the server step; returns the new state hash.
   */
  async applyAggregate(round: number, blobs: Readonly<Record<string, Uint8Array>>, contents: RoundContents): Promise<string> {
    const own = this.store.wasSent(round, contents.attempt) ? this.store.record(round, contents.attempt) : null;
    this.tracker.apply(round, await this.tracker.open(round, blobs, contents, own, 'state'));
    this.store.applied(round);
    return this.tracker.hash;
  }

  /** This partner's signed record of its upload of (round, attempt), if it built one. */
  ownRecord(round: number, attempt: number): SubmissionRecord | null {
    return this.store.record(round, attempt);
  }

  /** Whether this partner's own upload is among a round's published contents (what its ledger's round record says it took part in). */
  tookPart(round: number, contents: RoundContents): boolean {
    const own = this.store.record(round, contents.attempt);
    return own !== null && contents.records.some((r) => recordHash(r) === recordHash(own));
  }

  /** The parts of `round` that applying it needs (what a node downloads to catch up). */
  stateParts(round: number): string[] {
    return this.tracker.blobParts(round, 'state');
  }

  get round(): number {
    return this.tracker.round;
  }

  get hash(): string {
    return this.tracker.hash;
  }

  get state(): S {
    return this.tracker.state;
  }

  dispose(): void {
    this.tracker.dispose();
  }
}

function metaOf(body: Uint8Array): Omit<UpdateMeta, 'parts'> {
  const { parts: _parts, ...meta } = decodeUpdate(body).meta;
  return meta;
}

/** The part's values, each within its declared bound (PART_OUT_OF_BOUND otherwise), as every scheme checks before it encodes. */
function checkPartBound(spec: PartSpec, values: Float64Array | undefined, round: number): void {
  if (!values || values.length !== spec.length) {
    throw new FedmarkError(
      'WORKLOAD_PART',
      `round ${round}: the local step produced ${values ? `${values.length} values` : 'nothing'} for part "${spec.name}", the plan needs ${spec.length}`,
    );
  }
  encodePart(spec, values, null);
}
