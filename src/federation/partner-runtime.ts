import type { Dataset } from '../data/encode.ts';
import { FedmarkError } from '../errors.ts';
import type { BudgetGuard } from '../privacy/budget/guard.ts';
import type { JobManifest } from './manifest.ts';
import type { SecureSumScheme } from './secure-sum.ts';
import { StateTracker } from './state-tracker.ts';
import { encodeUpdate, type DpReport, type UpdateMeta } from './update-codec.ts';
import type { PrivacyPlan, Workload } from './workload.ts';

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
}

export type SubmissionResult =
  | { status: 'submitted'; body: Uint8Array; meta: Omit<UpdateMeta, 'parts'>; plain?: Record<string, Float64Array> }
  | { status: 'refused'; reason: string; requestedEpsilon: number; remainingEpsilon: number };

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

  constructor(private readonly opts: PartnerOptions<S>) {
    this.manifest = opts.manifest;
    this.keyId = opts.keyId;
    this.checkShape(opts.train, opts.test, 'partner data');
    this.train = opts.train;
    this.test = opts.test;
    this.privacy = opts.workload.privacy(opts.manifest);
    if (this.privacy && !opts.budget) throw new FedmarkError('DP_NO_BUDGET', "a DP job needs the partner's budget guard");
    this.tracker = new StateTracker(opts.manifest, opts.workload, opts.scheme, opts.secretKey);
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
   * Runs the round's local step and returns the encrypted envelope ready to upload, or the budget
   * guard's refusal. `keepPlain` exposes the plaintext parts to in-process tests and simulations;
   * nodes never send them.
   */
  async buildSubmission(round: number, attempt: number, keepPlain = false): Promise<SubmissionResult> {
    if (!this.tracker.readyFor(round)) {
      throw new FedmarkError('OUT_OF_STEP', `partner holds the model after round ${this.tracker.round}, cannot submit for round ${round}`);
    }
    const plan = this.tracker.plan(round);
    const { jobId } = this.manifest;
    if (plan.releases.length) {
      if (!this.privacy) throw new FedmarkError('DP_PLAN_MISSING', `round ${round} releases ${plan.releases.map((r) => r.label).join(', ')} but the job has no DP parameters`);
      const verdict = this.opts.budget!.authorize(jobId, round, attempt, plan.releases, this.privacy.delta);
      if (!verdict.ok) return { status: 'refused', reason: verdict.reason, requestedEpsilon: verdict.requestedEpsilon, remainingEpsilon: verdict.remainingEpsilon };
    }
    const local = await this.opts.workload.local({ manifest: this.manifest, round, attempt, keyId: this.keyId, plan, state: this.tracker.state, data: { train: this.train, test: this.test } });
    let dp: DpReport | null = null;
    if (plan.releases.length) {
      const ran = local.releases ?? plan.releases;
      if (ran.map((r) => r.label).join() !== plan.releases.map((r) => r.label).join()) {
        throw new FedmarkError('WORKLOAD_RELEASES', `round ${round}: the local step ran releases ${ran.map((r) => r.label).join(', ')}, the plan declares ${plan.releases.map((r) => r.label).join(', ')}`);
      }
      // Charged before any part is encrypted or sent: a crash after this point never under-counts.
      const charged = this.opts.budget!.charge(jobId, round, attempt, ran, this.privacy!.delta);
      const [release] = ran;
      dp = {
        samplingRate: release.samplingRate,
        noiseMultiplier: release.noiseMultiplier,
        clipNorm: release.sensitivity,
        steps: release.steps,
        delta: this.privacy!.delta,
        epsilonSpent: Math.max(0, charged.epsilonAfter - charged.epsilonBefore),
        epsilonAfterRound: charged.epsilonAfter,
      };
    }
    const parts = plan.parts.map((spec) => {
      const values = local.parts[spec.name];
      if (!values || values.length !== spec.length) {
        throw new FedmarkError('WORKLOAD_PART', `round ${round}: the local step produced ${values ? `${values.length} values` : 'nothing'} for part "${spec.name}", the plan needs ${spec.length}`);
      }
      return { name: spec.name, length: spec.length, bytes: this.tracker.encrypt(values) };
    });
    const scheme = this.opts.scheme.scheme;
    if (scheme === 'none') throw new FedmarkError('NO_AGGREGATION', `job ${jobId} sums nothing at the coordinator: it has no update to send`);
    const meta: Omit<UpdateMeta, 'parts'> = {
      jobId,
      round,
      attempt,
      kind: plan.kind,
      scheme,
      paramsId: this.opts.scheme.paramsId,
      baseModelHash: this.tracker.hash,
      dp,
    };
    return { status: 'submitted', body: encodeUpdate(meta, parts), meta, plain: keepPlain ? local.parts : undefined };
  }

  /** Decrypts a round's published sums (the parts the state needs) and applies the server step; returns the new state hash. */
  applyAggregate(round: number, blobs: Readonly<Record<string, Uint8Array>>): string {
    this.tracker.apply(round, this.tracker.open(round, blobs, 'state'));
    return this.tracker.hash;
  }

  /** The parts of `round` that applying it needs (what a node downloads to catch up). */
  stateParts(round: number): string[] {
    return this.tracker
      .plan(round)
      .parts.filter((p) => p.use === 'state')
      .map((p) => p.name);
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
