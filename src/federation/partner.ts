import type { Dataset } from '../data/encode.ts';
import { initParameters, predictProba } from '../model/params.ts';
import { trainLocal } from '../train/local.ts';
import { buildEvalHistograms, histogramLayout, type HistogramLayout } from '../metrics/histogram.ts';
import { FedmarkError } from '../errors.ts';
import { deriveSeed } from '../util/rng.ts';
import { hashParameters } from '../util/hash.ts';
import type { JobManifest } from './manifest.ts';
import type { SecureSumScheme, VectorCipher } from './secure-sum.ts';
import { encodeUpdate, type DpReport, type UpdateMeta } from './update-codec.ts';
import { FederatedStrategy, weightedUpdateVector, type GlobalModelState } from './strategy.ts';
import { planDp, type DpPlan } from './dp-plan.ts';

import type { DpEvent } from '../privacy/accountant.ts';

/**
 * The partner's own budget enforcement. `authorize` runs before any training for a round; it must
 * refuse when the ε after the round would break the partner's policy. `charge` records the spend
 * before anything leaves the partner (idempotent per job/round/attempt).
 */
export interface BudgetGuard {
  authorize(
    jobId: string,
    round: number,
    attempt: number,
    event: DpEvent,
    delta: number,
  ): { ok: true; epsilonAfter: number } | { ok: false; reason: string; requestedEpsilon: number; remainingEpsilon: number };
  charge(jobId: string, round: number, attempt: number, event: DpEvent, delta: number): { epsilonBefore: number; epsilonAfter: number };
  /** ε this job has cost the partner so far. */
  spent(jobId: string, delta: number): number;
}

export interface PartnerOptions {
  manifest: JobManifest;
  keyId: string;
  train: Dataset;
  test: Dataset;
  scheme: SecureSumScheme;
  secretKey: Uint8Array | null;
  budget?: BudgetGuard;
}

export type SubmissionResult =
  | { status: 'submitted'; body: Uint8Array; meta: Omit<UpdateMeta, 'parts'>; update?: Float64Array; evaluation: Float64Array }
  | { status: 'refused'; reason: string; requestedEpsilon: number; remainingEpsilon: number };

export class PartnerRuntime {
  readonly manifest: JobManifest;
  readonly keyId: string;
  readonly dpPlan: DpPlan | null;
  readonly tracker: ModelTracker;
  private readonly d: number;

  /**
   * Replaces the local rows (same features), e.g. after consent withdrawals: later rounds train and
   * evaluate without the withdrawn customers.
   */
  replaceData(train: Dataset, test: Dataset): void {
    if (train.d !== this.d || test.d !== this.d) throw new FedmarkError('SCHEMA_MISMATCH', `replacement data has ${train.d} features, the job declares ${this.d}`);
    this.opts.train = train;
    this.opts.test = test;
  }

  constructor(private readonly opts: PartnerOptions) {
    this.manifest = opts.manifest;
    this.keyId = opts.keyId;
    this.d = opts.manifest.dataset.featureNames.length;
    if (opts.train.d !== this.d) {
      throw new FedmarkError('SCHEMA_MISMATCH', `partner data has ${opts.train.d} features but the job declares ${this.d}`);
    }
    this.dpPlan = planDp(opts.manifest);
    if (this.dpPlan && !opts.budget) throw new FedmarkError('DP_NO_BUDGET', 'a DP job needs the partner\'s budget guard');
    this.tracker = new ModelTracker(opts.manifest, opts.scheme, opts.secretKey);
  }

  /** Scores the local hold-out with the current global model as fixed-bin histograms (encrypted before sending). */
  evaluationVector(): Float64Array {
    const { test } = this.opts;
    const scores = predictProba(this.manifest.model, this.d, this.state.params, test.X, test.n);
    const declared = this.manifest.evaluation.segments;
    const segments = Object.fromEntries(Object.entries(test.sensitive).filter(([name]) => name in declared));
    return buildEvalHistograms(scores, test.y, segments, this.tracker.layout);
  }

  /**
   * Trains on the local rows from the current global model (train rounds) or only scores the
   * hold-out (evaluate rounds), and returns the encrypted envelope ready to upload.
   * `keepPlain` exposes the plaintext vectors to in-process tests and simulations; nodes never send them.
   */
  async buildSubmission(round: number, attempt: number, kind: 'train' | 'evaluate', keepPlain = false): Promise<SubmissionResult> {
    if (this.state.round !== round - 1) {
      throw new FedmarkError('OUT_OF_STEP', `partner holds the model after round ${this.state.round}, cannot submit for round ${round}`);
    }
    const evaluation = this.evaluationVector();
    const parts: { name: 'update' | 'evaluation'; length: number; bytes: Uint8Array }[] = [];
    let dp: DpReport | null = null;
    let update: Float64Array | undefined;
    if (kind === 'train') {
      const plan = this.dpPlan;
      let event: DpEvent | null = null;
      if (plan) {
        event = { samplingRate: plan.samplingRate, noiseMultiplier: plan.noiseMultiplier, steps: plan.stepsPerRound };
        const verdict = this.opts.budget!.authorize(this.manifest.jobId, round, attempt, event, plan.delta);
        if (!verdict.ok) return { status: 'refused', reason: verdict.reason, requestedEpsilon: verdict.requestedEpsilon, remainingEpsilon: verdict.remainingEpsilon };
      }
      const lt = this.manifest.localTraining;
      const result = await trainLocal(this.manifest.model, this.d, this.state.params, this.opts.train, {
        epochs: lt.epochs,
        batchSize: lt.batchSize,
        learningRate: lt.learningRate,
        optimizer: lt.optimizer,
        l2: lt.l2,
        seed: deriveSeed(this.manifest.seed, 'train', this.keyId, round, attempt),
        proximalMu: this.tracker.proximalMu,
        dp: plan ? { noiseMultiplier: plan.noiseMultiplier, clipNorm: plan.clipNorm, samplingRate: plan.samplingRate } : undefined,
      });
      if (plan && event) {
        // Charged before the update is encrypted or sent: a crash after this point never under-counts.
        const charged = this.opts.budget!.charge(this.manifest.jobId, round, attempt, { ...event, steps: result.dp?.steps ?? event.steps }, plan.delta);
        dp = {
          samplingRate: plan.samplingRate,
          noiseMultiplier: plan.noiseMultiplier,
          clipNorm: plan.clipNorm,
          steps: result.dp?.steps ?? event.steps,
          delta: plan.delta,
          epsilonSpent: Math.max(0, charged.epsilonAfter - charged.epsilonBefore),
          epsilonAfterRound: charged.epsilonAfter,
        };
      }
      update = weightedUpdateVector(this.state.params, result.params, this.opts.train.n);
      parts.push({ name: 'update', length: update.length, bytes: this.tracker.encrypt(update) });
    }
    parts.push({ name: 'evaluation', length: evaluation.length, bytes: this.tracker.encrypt(evaluation) });
    const meta: Omit<UpdateMeta, 'parts'> = {
      jobId: this.manifest.jobId,
      round,
      attempt,
      kind,
      scheme: this.opts.scheme.scheme,
      paramsId: this.opts.scheme.paramsId,
      baseModelHash: this.state.hash,
      dp,
    };
    return {
      status: 'submitted',
      body: encodeUpdate(meta, parts),
      meta,
      update: keepPlain ? update : undefined,
      evaluation,
    };
  }

  /** Decrypts a round's published sum and applies the server step; returns the new state. */
  applyAggregate(round: number, aggregate: Uint8Array): GlobalModelState {
    return this.tracker.apply(round, aggregate);
  }

  get state(): GlobalModelState {
    return this.tracker.state;
  }

  dispose(): void {
    this.tracker.dispose();
  }
}

/**
 * Follows the global model from the published aggregates. Every key holder runs one: partners, and
 * the job owner's node, which is how the data scientist gets the final model and the metrics.
 */
export class ModelTracker {
  readonly layout: HistogramLayout;
  private readonly strategy: FederatedStrategy;
  private readonly cipher: VectorCipher;
  state: GlobalModelState;

  constructor(readonly manifest: JobManifest, private readonly scheme: SecureSumScheme, secretKey: Uint8Array | null) {
    this.strategy = new FederatedStrategy(manifest);
    this.cipher = scheme.cipher(secretKey);
    this.layout = histogramLayout(manifest.evaluation.segments, manifest.evaluation.bins);
    this.state = initialModelState(manifest);
  }

  get proximalMu(): number | undefined {
    return this.strategy.proximalMu;
  }

  get updateLength(): number {
    return this.state.params.length + 1;
  }

  encrypt(values: Float64Array): Uint8Array {
    return this.cipher.encrypt(values);
  }

  apply(round: number, aggregate: Uint8Array): GlobalModelState {
    if (round !== this.state.round + 1) {
      throw new FedmarkError('OUT_OF_STEP', `aggregate of round ${round} cannot follow the model of round ${this.state.round}`);
    }
    this.checkSummands(aggregate, this.updateLength, round);
    const summed = this.cipher.decrypt(aggregate, this.updateLength);
    this.state = this.strategy.apply(this.state, summed);
    return this.state;
  }

  decryptEvaluation(aggregate: Uint8Array, round?: number): Float64Array {
    this.checkSummands(aggregate, this.layout.length, round);
    return this.cipher.decrypt(aggregate, this.layout.length);
  }

  /**
   * A "sum" of fewer partners than the quorum could be one partner's own vector passed off as an
   * aggregate by a deviating coordinator: key holders refuse to decrypt it.
   */
  private checkSummands(blob: Uint8Array, length: number, round?: number): void {
    const n = this.scheme.summands(blob, length);
    const min = Math.min(this.manifest.quorum, this.manifest.partners.length);
    if (n !== null && n < min) {
      throw new FedmarkError('AGGREGATE_TOO_FEW', `the published sum${round ? ` of round ${round}` : ''} holds ${n} partner vector(s), fewer than the quorum of ${min}: refusing to decrypt it`);
    }
  }

  dispose(): void {
    this.cipher.dispose();
  }
}

export function initialModelState(manifest: JobManifest): GlobalModelState {
  const params = initParameters(manifest.model, manifest.dataset.featureNames.length, deriveSeed(manifest.seed, 'init'));
  return { round: 0, params, optimizerState: null, hash: hashParameters(params) };
}
