import { FedmarkError } from '../errors.ts';
import { openSums } from './aggregation.ts';
import type { JobManifest } from './manifest.ts';
import type { SecureSumScheme, VectorCipher } from './secure-sum.ts';
import type { RoundContents, SubmissionRecord } from './submission-record.ts';
import { planOf, type ModelSelection, type PartSpec, type RoundPlan, type Workload } from './workload.ts';
import { encodePart } from './part-encoding.ts';
import { openMaskedSums } from './secagg/open.ts';
import { MASKED_PART } from './secagg/round-config.ts';

/**
 * A key holder's copy of the job's public state, followed from the published sums: partners run one
 * inside their runtime, the owner node runs one to obtain the final state (the model) and the
 * reports (the metrics). The coordinator runs none: it has no key.
 */
export class StateTracker<S = unknown, R = unknown> {
  /** The last round applied (0: the initial state). */
  round = 0;
  state: S;
  hash: string;
  private readonly cipher: VectorCipher;

  constructor(
    readonly manifest: JobManifest,
    readonly workload: Workload<S, R>,
    private readonly scheme: SecureSumScheme,
    secretKey: Uint8Array | null,
    /** Masked aggregation: the coordinator key whose signatures the attempts' evidence must carry. */
    private readonly coordinatorSignPublicKey: string | null = null,
  ) {
    this.cipher = scheme.cipher(secretKey);
    this.state = workload.initialState(manifest);
    this.hash = workload.hash(this.state);
  }

  plan(round: number): RoundPlan {
    return planOf(this.workload, this.manifest, round);
  }

  /** Rounds after the last applied one, up to `upTo`, that change the state (what a node must catch up on); none before the last round once training stopped early. */
  pending(upTo: number): number[] {
    const out: number[] = [];
    const total = this.workload.totalRounds(this.manifest);
    const from = this.selection?.stopped ? Math.max(this.round + 1, total) : this.round + 1;
    for (let r = from; r <= Math.min(upTo, total); r++) if (this.plan(r).updatesState) out.push(r);
    return out;
  }

  /** The workload's model selection in the state held (null: none made, or the workload never selects). */
  get selection(): ModelSelection | null {
    return this.workload.selection?.(this.manifest, this.state) ?? null;
  }

  /** True when the state entering `round` is the one held: every state-changing round before it is applied. */
  readyFor(round: number): boolean {
    return this.pending(round - 1).length === 0 && this.round < round;
  }

  /** One part of an upload: checked against its declared bound and scaled to fit the slots (part-encoding.ts), then encrypted. */
  encryptPart(spec: PartSpec, values: Float64Array): Uint8Array {
    return this.cipher.encrypt(encodePart(spec, values, this.scheme.maxAbsInput));
  }

  /**
   * Decrypts a round's published sums after checking them against their signed records (`own`: this
   * key holder's record when it uploaded to that attempt); `state` opens only what `apply` needs.
   * Async: unmasking a masked round recombines Shamir shares.
   */
  async open(
    round: number,
    blobs: Readonly<Record<string, Uint8Array>>,
    contents: RoundContents,
    own: SubmissionRecord | null = null,
    use: 'state' | 'all' = 'all',
  ): Promise<Record<string, Float64Array>> {
    if (this.scheme.scheme === 'secagg-bfv') {
      if (!this.coordinatorSignPublicKey)
        throw new FedmarkError('SECAGG_NO_COORDINATOR', 'a masked round is opened against the coordinator key it was run with: none given');
      return openMaskedSums(this.scheme, this.cipher, this.coordinatorSignPublicKey, this.manifest, this.plan(round), round, blobs, contents, own, use);
    }
    return Promise.resolve(openSums(this.scheme, this.cipher, this.manifest, this.plan(round), round, blobs, contents, own, use));
  }

  /** The published sums a key holder downloads to open `round` (`state`: only what applying it needs). */
  blobParts(round: number, use: 'state' | 'all' = 'all'): string[] {
    if (this.scheme.scheme === 'secagg-bfv') return [MASKED_PART];
    return this.plan(round)
      .parts.filter((p) => use === 'all' || p.use === 'state')
      .map((p) => p.name);
  }

  /** Applies a round's decrypted sums (the server step; a no-op for rounds that do not change the state). */
  apply(round: number, sums: Record<string, Float64Array>): void {
    if (!this.readyFor(round)) {
      throw new FedmarkError('OUT_OF_STEP', `aggregate of round ${round} cannot follow the model of round ${this.round}`);
    }
    if (this.plan(round).updatesState) {
      this.state = this.workload.apply(this.manifest, this.state, round, sums);
      this.hash = this.workload.hash(this.state);
    }
    this.round = round;
  }

  report(round: number, sums: Record<string, Float64Array>): R | null {
    return this.workload.report(this.manifest, round, sums);
  }

  dispose(): void {
    this.cipher.dispose();
  }
}
