import type { Dataset } from '../data/encode.ts';
import { FedmarkError } from '../errors.ts';
import type { LabelledDpEvent } from '../privacy/dp-event.ts';
import type { JobManifest } from './manifest.ts';

/**
 * The workload seam: what a federated job computes, round by round. Everything else — the round
 * machine, the coordinator's engine and store, the update codec, the aggregation scheme, the partner
 * runtime, the owner node and simulate() — is generic over it. Logistic/MLP training with (DP-)SGD is
 * the first workload (./workloads/sgd/); see docs/ADDING-A-WORKLOAD.md for adding another.
 *
 * Three rules every workload keeps:
 * - A round's plan follows from the manifest alone. The coordinator validates uploads with it and
 *   holds no key; partners know what they will release (and what it costs) before a round runs.
 * - `apply` is deterministic: every key holder reaches the same state from the same sums, and the
 *   coordinator checks that by the hash each reports (model-hash agreement).
 * - Everything derived from customer rows that leaves a partner is a part of the plan, and is a
 *   public constant or the output of a Gaussian release the plan declares (charged before it leaves).
 */

/** Part names travel in update envelopes and URLs. */
export const PART_NAME = /^[a-z][a-z0-9-]{0,31}$/;

export interface PartSpec {
  name: string;
  /** Number of values; from the manifest alone. */
  length: number;
  /** Reals (model deltas, noisy statistics) or non-negative counts (histograms): encoders choose their representation by it, and decrypted sums are rounded by it (counts to integers, reals to the release grid). */
  domain: 'real' | 'count';
  /** In a `count` part, [start, end) ranges of slots that hold reals (e.g. Σ log loss next to the histograms). */
  realSlots?: readonly (readonly [number, number])[];
  /** Largest |value| one partner contributes per slot, when the manifest bounds it (null: not bounded, e.g. row-weighted). */
  bound: number | null;
  /** `state`: key holders need it to apply the round; `report`: only read by the owner (e.g. evaluation histograms). */
  use: 'state' | 'report';
}

/**
 * The stages of a round, in order; each collects one kind of message from the selected partners.
 * `upload`: the encrypted parts, summed by the coordinator. `relay`: point-to-point messages the
 * coordinator stores and forwards unopened (vertical learning; `RoundPlan.relay` says who sends what
 * to whom). Multi-stage aggregation (pairwise masking: keys → shares → masked upload → unmask) adds
 * stages here and their rules in round-machine.ts; see docs/ARCHITECTURE.md.
 */
export type StageName = 'upload' | 'relay';
export const SUPPORTED_STAGES: readonly StageName[] = ['upload', 'relay'];

/** Stands for the coordinator as sender or recipient of a relayed message. */
export const COORDINATOR = 'coordinator';

/**
 * A relay round: every message it carries (sender → recipient, partner key ids or COORDINATOR), the
 * largest accepted message, and the labelled releases a sender makes in it, which the coordinator
 * records from the sender's attested statement before it relays that sender's messages.
 */
export interface RelayPlan {
  messages: { from: string; to: string }[];
  maxBytes: number;
  releases: { keyId: string; events: LabelledDpEvent[] }[];
}

export interface RoundPlan {
  /** The workload's name for this round (e.g. `train`, `evaluate`); uploads must say it. */
  kind: string;
  stages: readonly StageName[];
  parts: PartSpec[];
  /** `sample`: partnersPerRound of the eligible partners, seeded by the manifest; `all`: every eligible partner. */
  selection: 'sample' | 'all';
  /** What each selected partner releases this round (beyond public constants), charged before its upload leaves. */
  releases: LabelledDpEvent[];
  /** The round changes the public state: key holders apply it and report its hash; the next round waits for agreement. */
  updatesState: boolean;
  /**
   * Labels of the workload's job releases (`Workload.jobReleases`) this round's upload carries: a
   * partner makes (and is charged for) each once, with its first upload that carries it, and reuses
   * the released value afterwards.
   */
  uses?: readonly string[];
  /** Stage `relay` only: the messages the round relays (selection: every sender, no quorum). */
  relay?: RelayPlan;
}

/**
 * The training round whose model a state holds as the job's model, once the workload has chosen it
 * (model selection on the federated validation metrics); `stopped`: training ended early, and the
 * state-changing rounds still planned are skipped — the job goes on with its last round.
 */
export interface ModelSelection {
  round: number;
  stopped: boolean;
}

/** A job's DP parameters as every party resolves them from the manifest (σ after calibration). */
export interface PrivacyPlan {
  targetEpsilon: number;
  delta: number;
  noiseMultiplier: number;
  /** The L2 sensitivity each release is calibrated to (DP-SGD: the clip norm C). */
  clipNorm: number;
}

/** A partner's own rows: training rows and its hold-out. */
export interface PartnerRows {
  train: Dataset;
  test: Dataset;
}

export interface LocalContext<S> {
  manifest: JobManifest;
  round: number;
  attempt: number;
  /** The partner's key id (seeds its local randomness, so seeded runs replay). */
  keyId: string;
  plan: RoundPlan;
  /** The public state entering the round. */
  state: S;
  data: PartnerRows;
  /** The job releases this partner has made (by label; already charged): post-processing may use them freely. */
  released: Readonly<Record<string, Float64Array>>;
}

export interface LocalResult {
  /** One vector per part of the plan, of the plan's length. */
  parts: Record<string, Float64Array>;
  /** The releases as they ran (e.g. DP-SGD's actual step count); default: the plan's. Same labels as the plan. */
  releases?: LabelledDpEvent[];
}

export interface Workload<S = unknown, R = unknown> {
  /** The manifest's `workload.kind`. */
  readonly kind: string;
  /** Cross-field checks of the manifest for this workload (throw MANIFEST_INVALID naming the problem). */
  validate(manifest: JobManifest): void;
  /** Rounds of the job, evaluation-only rounds included. */
  totalRounds(manifest: JobManifest): number;
  plan(manifest: JobManifest, round: number): RoundPlan;
  /** DP parameters of the job, null for a job without differential privacy. */
  privacy(manifest: JobManifest): PrivacyPlan | null;
  /**
   * Releases each partner makes at most once per job, with its first upload that carries them (see
   * `RoundPlan.uses`), and reuses in later rounds as post-processing — e.g. SGD's noisy row count.
   * From the manifest alone, like `plan`; `[]` (or absent) when there are none.
   */
  jobReleases?(manifest: JobManifest): LabelledDpEvent[];
  /** Computes the job releases `labels` from the partner's rows, noise included: one vector per label. */
  releaseOnce?(ctx: { manifest: JobManifest; keyId: string; labels: readonly string[]; data: PartnerRows }): Record<string, Float64Array>;
  /** The public state before round 1 (seeded from the manifest). */
  initialState(manifest: JobManifest): S;
  /** SHA-256 (64 lower-case hex) of a state, for model-hash agreement. Equal states hash equally on every machine. */
  hash(state: S): string;
  /** The partner's step for a round, from the public state and its own rows (the runtime has authorized the releases). */
  local(ctx: LocalContext<S>): Promise<LocalResult>;
  /** The server step, run by every key holder on the decrypted sums of a round whose plan updates the state. */
  apply(manifest: JobManifest, state: S, round: number, sums: Record<string, Float64Array>): S;
  /** What the owner reads from a round's sums besides the state (e.g. federated evaluation metrics); null when nothing. */
  report(manifest: JobManifest, round: number, sums: Record<string, Float64Array>): R | null;
  /**
   * The selection a state records, if any (null: none made yet). Every key holder reports it with
   * the state's hash; the coordinator requires them to agree and, when `stopped`, opens the job's
   * last round next. Absent: the workload never selects, every planned round runs.
   */
  selection?(manifest: JobManifest, state: S): ModelSelection | null;
  /** False when the job needs no shared key (relay workloads: each party keeps its own): round 1 does not wait for a key ceremony. */
  readonly sharedKey?: boolean;
}

/** A workload whose state and report types do not matter to the caller. */
export type AnyWorkload = Workload<unknown, unknown>;

/** The plan of `round`, checked: in range, valid part names, stages this build runs, releases with distinct labels. */
export function planOf(workload: AnyWorkload, manifest: JobManifest, round: number): RoundPlan {
  const total = workload.totalRounds(manifest);
  if (!Number.isInteger(round) || round < 1 || round > total) throw new FedmarkError('ROUND_OUT_OF_RANGE', `round ${round} is outside 1..${total}`);
  const plan = workload.plan(manifest, round);
  const bad = (why: string) => new FedmarkError('WORKLOAD_PLAN_INVALID', `workload ${workload.kind}, round ${round}: ${why}`);
  if (plan.stages.includes('relay')) return checkRelayPlan(plan, bad);
  if (plan.parts.length === 0) throw bad('a round must upload at least one part');
  const names = new Set<string>();
  for (const p of plan.parts) {
    if (!PART_NAME.test(p.name)) throw bad(`part name "${p.name}" is not 1–32 chars of a-z, 0-9, "-"`);
    if (names.has(p.name)) throw bad(`part "${p.name}" appears twice`);
    if (!(Number.isInteger(p.length) && p.length > 0)) throw bad(`part "${p.name}" has length ${p.length}`);
    names.add(p.name);
  }
  if (plan.stages.length === 0 || plan.stages.some((s) => !SUPPORTED_STAGES.includes(s)))
    throw bad(`stages ${plan.stages.join(', ')}: this build runs ${SUPPORTED_STAGES.join(', ')}`);
  const once = new Set((workload.jobReleases?.(manifest) ?? []).map((r) => r.label));
  for (const u of plan.uses ?? []) if (!once.has(u)) throw bad(`the round uses job release "${u}", which the workload does not declare`);
  // The budget charges and the ledgers record each release by (round, attempt, label).
  const labels = new Set<string>(once);
  for (const r of plan.releases) {
    if (!/^[a-z][a-z0-9-]{0,63}$/.test(r.label)) throw bad(`release label "${r.label}" is not 1–64 chars of a-z, 0-9, "-"`);
    if (labels.has(r.label)) throw bad(`release "${r.label}" appears twice (in the round or among the job releases)`);
    labels.add(r.label);
  }
  return plan;
}

/** A relay round is that one stage, relays at least one message, and sums nothing. */
function checkRelayPlan(plan: RoundPlan, bad: (why: string) => FedmarkError): RoundPlan {
  const r = plan.relay;
  if (plan.stages.length !== 1) throw bad('a relay round has the one stage "relay"');
  if (!r || r.messages.length === 0) throw bad('a relay round must relay at least one message');
  if (plan.parts.length !== 0 || plan.updatesState) throw bad('a relay round sums no parts and changes no public state');
  const pairs = new Set<string>();
  for (const m of r.messages) {
    if (m.from === m.to) throw bad(`a message from ${m.from} to itself`);
    const key = `${m.from}>${m.to}`;
    if (pairs.has(key)) throw bad(`two messages from ${m.from} to ${m.to}`);
    pairs.add(key);
  }
  if (!(Number.isInteger(r.maxBytes) && r.maxBytes > 0)) throw bad(`maxBytes ${r.maxBytes}`);
  for (const rel of r.releases) {
    if (!r.messages.some((m) => m.from === rel.keyId)) throw bad(`a release by ${rel.keyId}, who sends nothing in the round`);
  }
  return plan;
}

/** The partners that send in a round: every selected partner for uploads, the senders of a relay round. */
export function relaySenders(plan: RoundPlan): string[] {
  return [...new Set((plan.relay?.messages ?? []).map((m) => m.from).filter((k) => k !== COORDINATOR))].sort();
}

/** Rounds whose plan updates the state: the ones recorded as `round` entries and counted by `model.final`. */
export function stateRounds(workload: AnyWorkload, manifest: JobManifest): number[] {
  const out: number[] = [];
  for (let r = 1; r <= workload.totalRounds(manifest); r++) if (planOf(workload, manifest, r).updatesState) out.push(r);
  return out;
}

/**
 * Every release a partner would make if selected in every round — the worst case DP is calibrated
 * for: the job releases (once each) and each round's releases.
 */
export function releasePlan(
  workload: AnyWorkload,
  manifest: JobManifest,
): { job: LabelledDpEvent[]; rounds: { round: number; releases: LabelledDpEvent[] }[] } {
  const rounds: { round: number; releases: LabelledDpEvent[] }[] = [];
  for (let r = 1; r <= workload.totalRounds(manifest); r++) rounds.push({ round: r, releases: planOf(workload, manifest, r).releases });
  return { job: workload.jobReleases?.(manifest) ?? [], rounds };
}

/** The workloads a process runs, by kind. */
export class WorkloadRegistry {
  private readonly byKind = new Map<string, AnyWorkload>();

  constructor(workloads: readonly AnyWorkload[] = []) {
    for (const w of workloads) this.register(w);
  }

  register(w: AnyWorkload): this {
    if (this.byKind.has(w.kind)) throw new FedmarkError('WORKLOAD_EXISTS', `a workload "${w.kind}" is already registered`);
    this.byKind.set(w.kind, w);
    return this;
  }

  /** A registry with these workloads added (the receiver is unchanged). */
  with(...workloads: AnyWorkload[]): WorkloadRegistry {
    return new WorkloadRegistry([...this.byKind.values(), ...workloads]);
  }

  has(kind: string): boolean {
    return this.byKind.has(kind);
  }

  kinds(): string[] {
    return [...this.byKind.keys()];
  }

  /** The workload a manifest names, after its own checks of the manifest. */
  resolve(manifest: JobManifest): AnyWorkload {
    const w = this.byKind.get(manifest.workload.kind);
    if (!w)
      throw new FedmarkError(
        'UNKNOWN_WORKLOAD',
        `job ${manifest.jobId} runs workload "${manifest.workload.kind}", which this build does not know (it runs ${this.kinds().join(', ')})`,
      );
    w.validate(manifest);
    return w;
  }
}
