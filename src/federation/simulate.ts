import { createHash } from 'node:crypto';
import { identityFromSeed, publicIdentity, type Identity } from '../crypto/identity.ts';
import type { Dataset } from '../data/encode.ts';
import type { FederatedEvalMetrics } from '../metrics/histogram.ts';
import { initBackend } from '../model/backend.ts';
import { MemoryBudgetGuard } from '../privacy/budget/memory-guard.ts';
import { FedmarkError } from '../errors.ts';
import { accumulate } from './aggregation.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest, signManifest, verifySignedManifest, type JobManifest } from './manifest.ts';
import { PartnerRuntime } from './partner-runtime.ts';
import { MAX_ATTEMPTS, roundRules, transition, type Effect, type HashReport, type JobView, type RoundEvent, type StopCause } from './round-machine.ts';
import { openSecureSum, type SecureSumScheme } from './secure-sum.ts';
import { StateTracker } from './state-tracker.ts';
import { checkSubmission } from './submission-check.ts';
import { decodeUpdate } from './update-codec.ts';
import type { RoundContents } from './submission-record.ts';
import { signerFromSecretKey } from '../privacy/ledger/signing.ts';
import { builtinWorkloads } from './workloads/index.ts';
import type { ModelSelection, Workload, WorkloadRegistry } from './workload.ts';
import type { SgdState } from './workloads/sgd/index.ts';

/**
 * In-process federation for data scientists: the same partner runtime, round machine, aggregation,
 * encryption and server step as the real nodes, with the transport replaced by function calls.
 */

export interface SimulationPartner {
  name: string;
  train: Dataset;
  test: Dataset;
  /** The most ε this partner's policy lets the job spend (default: the job's target ε). */
  maxEpsilon?: number;
}

/** A manifest without the identities, which the simulation creates itself. */
export type SimulationJob = Omit<JobManifest, 'owner' | 'partners' | 'schemaVersion' | 'createdAt' | 'workload'> & {
  createdAt?: string;
  workload?: JobManifest['workload'];
};

export interface SimulationRound<R = FederatedEvalMetrics> {
  round: number;
  kind: string;
  /** Names of the partners whose uploads were summed. */
  partners: string[];
  declined: { name: string; reason: string }[];
  /** Names of the partners whose signed submission record is in the round's published contents (what the coordinator's ledger records for the round). */
  recorded: string[];
  /** What the owner read from the round's sums (SGD: metrics of the model that entered the round). */
  metrics: R;
  /** Cumulative ε per partner after the round (DP jobs). */
  epsilon: Record<string, number>;
  modelHash: string;
  /** The model selection the state recorded after this round (early stopping), if it made one. */
  selection?: ModelSelection;
}

export interface SimulationResult<S = SgdState, R = FederatedEvalMetrics> {
  manifest: JobManifest;
  /** The final public state (SGD: the model parameters and the server optimizer's state). */
  state: S;
  /** SGD: the final model's parameters (`state.params`). */
  params: S extends SgdState ? Float64Array : undefined;
  modelHash: string;
  rounds: SimulationRound<R>[];
  /** The report of the last round (SGD: the final model's metrics on every hold-out). */
  finalMetrics: R;
  /** The training round whose model was released, when the workload selected one (early stopping); null otherwise. */
  selection: ModelSelection | null;
  epsilon: Record<string, number>;
  noiseMultiplier: number | null;
  /** Bytes of the largest state part one partner uploads (SGD: the `update` part), and per value. */
  wireBytes: { update: number; perParameter: number };
  wallSeconds: number;
}

const STOP_CODES: Record<StopCause, string> = {
  'quorum-missed': 'ROUND_FAILED',
  'hashes-disagree': 'MODEL_DIVERGED',
  'too-few-accepted': 'SIM_STOPPED',
  halted: 'SIM_STOPPED',
};

export async function simulate<S = SgdState, R = FederatedEvalMetrics>(opts: {
  job: SimulationJob;
  partners: SimulationPartner[];
  onRound?: (r: SimulationRound<R>) => void;
  /** Workloads beyond the built-in ones (the job's `workload.kind` picks one). */
  workloads?: WorkloadRegistry;
}): Promise<SimulationResult<S, R>> {
  const started = performance.now();
  await initBackend();
  if (opts.partners.length === 0) throw new FedmarkError('SIM_NO_PARTNERS', 'simulate() needs at least one partner');
  // Keys derived from the job seed: training seeds depend on key ids, so a seeded simulation replays exactly.
  const simKey = (role: string) => createHash('sha256').update(`fedmark-simulation|${opts.job.seed}|${role}`).digest();
  const owner = identityFromSeed('owner', simKey('owner'));
  const ids: Identity[] = opts.partners.map((p, i) => identityFromSeed(p.name, simKey(`partner|${i}|${p.name}`)));
  const manifest = parseManifest({
    ...opts.job,
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: opts.job.createdAt ?? new Date().toISOString(),
    owner: publicIdentity(owner),
    partners: ids.map(publicIdentity),
  });
  verifySignedManifest(signManifest(manifest, owner));
  const workload = (opts.workloads ?? builtinWorkloads).resolve(manifest) as unknown as Workload<S, R>;
  const rules = roundRules(manifest, workload);
  // The in-process run has no transport for the masking stages (crypto/secagg/driver.ts runs them in memory for tests).
  if (manifest.encryption.scheme === 'secagg-bfv')
    throw new FedmarkError('SIM_SCHEME', 'simulate() aggregates under CKKS or in plaintext; masked aggregation (secagg-bfv) runs in the nodes');
  const scheme: SecureSumScheme = await openSecureSum(manifest.encryption);
  const secretKey = scheme.scheme === 'ckks' ? scheme.generateSecretKey() : null;
  const privacy = workload.privacy(manifest);
  const guards = opts.partners.map((p) => new MemoryBudgetGuard(p.maxEpsilon ?? privacy?.targetEpsilon ?? Infinity));
  const keyIds = manifest.partners.map((p) => p.keyId);
  const runtimes = opts.partners.map(
    (p, i) =>
      new PartnerRuntime<S>({
        manifest,
        workload,
        keyId: keyIds[i],
        signer: signerFromSecretKey(ids[i].signSecretKey),
        train: p.train,
        test: p.test,
        scheme,
        secretKey,
        budget: privacy ? guards[i] : undefined,
      }),
  );
  const indexOf = new Map(keyIds.map((k, i) => [k, i]));
  const ownerTracker = new StateTracker<S, R>(manifest, workload, scheme, secretKey);
  const epsilonNow = () => (privacy ? Object.fromEntries(opts.partners.map((p, i) => [p.name, guards[i].spent(manifest.jobId, privacy.delta)])) : {});

  const rounds: SimulationRound<R>[] = [];
  let updateBytes = 0;
  let updateValues = 1;
  // Everything about the open attempt that the round machine does not hold: its sums and why partners declined.
  let sums: Record<string, Uint8Array> = {};
  let contents: RoundContents = { round: 1, attempt: 0, records: [] };
  let declined: { name: string; reason: string }[] = [];

  // A virtual clock that never moves: every selected partner answers, so no deadline applies, and the run replays exactly.
  const NOW = 0;
  let view: JobView = {
    state: 'awaiting-keys',
    reason: null,
    createdAt: NOW,
    keysReady: true,
    partners: keyIds.map((keyId) => ({ keyId, status: 'accepted' })),
    current: null,
    afterRound: 0,
  };
  const queue: Effect[] = [];
  const send = (event: RoundEvent) => {
    const next = transition(view, event, rules, NOW);
    view = next.view;
    queue.push(...next.effects);
  };

  const runAttempt = async (round: number, attempt: number, selected: string[]) => {
    sums = {};
    contents = { round, attempt, records: [] };
    declined = [];
    const plan = rules.plan(round);
    for (const keyId of selected) {
      const i = indexOf.get(keyId)!;
      const res = await runtimes[i].buildSubmission(round, attempt);
      if (res.status === 'withheld')
        throw new FedmarkError('SIM_WITHHELD', `${opts.partners[i].name} withheld round ${round} attempt ${attempt}: ${res.reason}`);
      if (res.status === 'refused') {
        declined.push({ name: opts.partners[i].name, reason: res.reason });
        send({ type: 'declined', keyId, round, attempt });
        continue;
      }
      const decoded = decodeUpdate(res.body);
      checkSubmission(plan, scheme, { jobId: manifest.jobId, round, attempt, baseModelHash: view.current!.baseHash, manifest, partner: keyId }, decoded);
      sums = accumulate(scheme, plan, sums, decoded.parts);
      // What the coordinator publishes with the sums, and the partner's acknowledgement of its upload.
      contents.records.push(decoded.meta.record);
      runtimes[i].acknowledged(round, attempt);
      const statePart = plan.parts.find((p) => p.use === 'state');
      if (statePart) {
        updateBytes = decoded.parts[statePart.name].length;
        updateValues = statePart.length;
      }
      send({ type: 'uploaded', keyId, round, attempt });
    }
  };

  const closeRound = async (round: number, attempt: number) => {
    const plan = rules.plan(round);
    const opened = await ownerTracker.open(round, sums, contents);
    const report = ownerTracker.report(round, opened);
    ownerTracker.apply(round, opened);
    const submitted = view.current!.submitted.map((k) => opts.partners[indexOf.get(k)!].name);
    const names = declined;
    if (plan.updatesState) {
      // Every key holder follows every round and reports its state hash, as the nodes do.
      const hashes: HashReport[] = [];
      for (const [i, rt] of runtimes.entries()) {
        hashes.push({ keyId: keyIds[i], hash: await rt.applyAggregate(round, sums, contents), selection: rt.tracker.selection });
        send({ type: 'hash-reported', keyId: keyIds[i], round, attempt, hashes: hashes.map((h) => ({ ...h })) });
      }
      if (hashes.some((h) => h.hash !== ownerTracker.hash)) throw new FedmarkError('MODEL_DIVERGED', `partner model hash differs after round ${round}`);
    }
    const r: SimulationRound<R> = {
      round,
      kind: plan.kind,
      partners: submitted,
      declined: names,
      recorded: contents.records.map((rec) => opts.partners[indexOf.get(rec.partner)!].name),
      metrics: report as R,
      epsilon: epsilonNow(),
      modelHash: ownerTracker.hash,
      ...(plan.updatesState && ownerTracker.selection ? { selection: ownerTracker.selection } : {}),
    };
    rounds.push(r);
    opts.onRound?.(r);
  };

  try {
    send({ type: 'tick' });
    while (queue.length) {
      const e = queue.shift()!;
      if (e.type === 'open-round') await runAttempt(e.round, e.attempt, e.selected);
      else if (e.type === 'close-round') await closeRound(e.round, e.attempt);
      else if (e.type === 'stop') {
        const why =
          e.cause === 'quorum-missed' ? `round ${view.current!.round} missed its quorum of ${manifest.quorum} ${MAX_ATTEMPTS} times (${e.reason})` : e.reason;
        throw new FedmarkError(STOP_CODES[e.cause], `simulation stopped: ${why}`);
      }
    }
    if (view.state !== 'completed') throw new FedmarkError('SIM_STOPPED', `simulation ended ${view.state}${view.reason ? `: ${view.reason}` : ''}`);
    const state = ownerTracker.state;
    return {
      manifest,
      state,
      params: (state as { params?: Float64Array }).params as SimulationResult<S, R>['params'],
      modelHash: ownerTracker.hash,
      rounds,
      finalMetrics: rounds[rounds.length - 1].metrics,
      selection: ownerTracker.selection,
      epsilon: epsilonNow(),
      noiseMultiplier: privacy?.noiseMultiplier ?? null,
      wireBytes: { update: updateBytes, perParameter: updateBytes / updateValues },
      wallSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const rt of runtimes) rt.dispose();
    ownerTracker.dispose();
    scheme.dispose();
  }
}
