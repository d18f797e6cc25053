import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { keyId as keyIdOf, type Identity } from '../src/crypto/identity.ts';
import type { Dataset } from '../src/data/encode.ts';
import type { JobManifest } from '../src/federation/manifest.ts';
import { PartnerRuntime } from '../src/federation/partner-runtime.ts';
import { CoordinatorClient } from '../src/federation/protocol/client.ts';
import type { JobStatus } from '../src/federation/protocol/schemas.ts';
import { StatusWatcher } from '../src/federation/protocol/status-watcher.ts';
import { openSecureSum } from '../src/federation/secure-sum.ts';
import type { WorkloadRegistry } from '../src/federation/workload.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import { acceptanceProblems } from '../src/federation/part-encoding.ts';
import { initBackend } from '../src/model/backend.ts';
import type { BudgetGuard } from '../src/privacy/budget/guard.ts';
import type { PolicyLimits } from '../src/privacy/ledger/entries.ts';
import { PartnerLedger, type ConsentCounts } from './ledger.ts';
import { signerFromSecretKey } from '../src/privacy/ledger/signing.ts';
import { UploadLog } from './upload-log.ts';
import { catchUp } from './steps/catch-up.ts';
import type { PartnerContext } from './steps/context.ts';
import { joinJob } from './steps/join.ts';
import { fetchJobKey } from './steps/keys.ts';
import { runRound } from './steps/round-runner.ts';
import { runMaskedRound, type MaskedRounds } from './steps/masked-round.ts';
import { SecaggStateDir } from './secagg-state.ts';
import type { SecureSumScheme } from '../src/federation/secure-sum.ts';
import { witnessHead } from './steps/witness.ts';

export interface PartnerNodeOptions {
  coordinatorUrl: string;
  identity: Identity;
  jobId: string;
  train: Dataset;
  test: Dataset;
  /** sha256 of the local dataset schema; must equal the manifest's. */
  schemaHash: string;
  stateDir: string;
  /** Local policy check before accepting (returns reasons to refuse, empty to accept). */
  reviewJob: (manifest: JobManifest) => string[];
  budget: BudgetGuard | undefined;
  /** The limits this partner declares with its acceptance (recorded in both ledgers); default: the job's own DP target. */
  policyLimits?: (manifest: JobManifest) => PolicyLimits;
  /** The partner's own ledger file (hash-chained, signed by this node); default <stateDir>/partner.ledger.jsonl. */
  ledgerPath?: string;
  /** Rows used and excluded, and the ids of the rows used (kept local, hashed with a local salt); default: from the datasets. */
  consent?: ConsentCounts;
  log: Logger;
  /** Interval polling (`--poll-ms`): how often to read the job status from a coordinator without the long-poll route, and while joining. */
  pollMs?: number;
  /** How long one long-poll of the job status may be held (default 20 s, capped by the coordinator); 0: interval polling only. */
  longPollMs?: number;
  recordBodies?: boolean;
  /** Stops the loop early (tests and signals). */
  signal?: AbortSignal;
  onRound?: (info: { round: number; modelHash: string }) => void;
  /** How long to wait for the coordinator and for the job to be registered there (default 10 minutes). */
  joinTimeoutMs?: number;
  /** What the node is waiting for, in words, with the time elapsed (the CLI prints it on the terminal). */
  onWaiting?: (message: string) => void;
  /** The owner this node works for in this job (`--owner-key-id`): a job signed by another owner is refused. */
  ownerKeyId?: string;
  /** The coordinator this node works with (`--coordinator-key-id`): any other, even one that copies its public identity, is refused. */
  coordinatorKeyId?: string;
  /** Customer ids whose consent was withdrawn; read before every round, their rows leave every later round. */
  withdrawnIds?: () => ReadonlySet<string>;
  /** Workloads beyond the built-in ones; a job naming a workload this node does not run is refused. */
  workloads?: WorkloadRegistry;
  /** How long the node rides out a coordinator it cannot reach, mid-job, before it stops (default 10 minutes). */
  outageLimitMs?: number;
  /** How long to wait for the job key from the owner's key ceremony (default 30 minutes). */
  keyTimeoutMs?: number;
  /**
   * When `signal` stops the node mid-job (SIGTERM/SIGINT in the CLI), tell the coordinator it left
   * for good (an attested `partner.leave`), so rounds stop waiting for it. Off: a stop is a pause
   * (the node is expected back, e.g. a supervisor restart) and rounds wait out their deadline.
   */
  leaveOnStop?: boolean;
}

export const DEFAULT_OUTAGE_LIMIT_MS = 10 * 60_000;
export const DEFAULT_KEY_TIMEOUT_MS = 30 * 60_000;

export interface PartnerNodeResult {
  state: string;
  reason: string | null;
  rounds: number;
  modelHash: string | null;
  /** The final public state the node holds (SGD: `{ params, optimizerState }`). */
  finalState: unknown;
  /** SGD jobs: the final model's parameters. */
  params: Float64Array | null;
  manifest: JobManifest;
  sentBodies: Uint8Array[] | null;
}

/**
 * A data partner's node, as named steps: join (review and accept), keys, then a loop of catch-up
 * and round runs until the job ends. Raw rows stay in this process: only encrypted parts, signed
 * protocol messages and the partner's own DP report leave it. The loop is restartable: it replays
 * the published aggregates to catch up and resends a persisted pending upload instead of computing
 * (and spending privacy budget) again.
 */
export async function runPartnerNode(o: PartnerNodeOptions): Promise<PartnerNodeResult> {
  const outageLimitMs = o.outageLimitMs ?? DEFAULT_OUTAGE_LIMIT_MS;
  const client = new CoordinatorClient(o.coordinatorUrl, o.identity, {
    recordBodies: o.recordBodies,
    signal: o.signal,
    unreachableRetryMs: outageLimitMs,
    // Short blips stay quiet; an outage says what the node waits for and until when.
    onUnreachable: ({ downForMs, retryInMs, giveUpInMs, error }) => {
      if (retryInMs < 1000) return;
      o.onWaiting?.(
        `the coordinator at ${o.coordinatorUrl} is unreachable (${error}) for ${Math.round(downForMs / 1000)} s: retrying in ${(retryInMs / 1000).toFixed(1)} s, giving up in ${Math.round(giveUpInMs / 1000)} s (--outage-limit)`,
      );
    },
  });
  const myKeyId = keyIdOf(o.identity.signPublicKey);
  const pollMs = o.pollMs ?? 200;
  const workloads = o.workloads ?? builtinWorkloads;
  mkdirSync(o.stateDir, { recursive: true });
  const ledger = PartnerLedger.open(o.ledgerPath ?? join(o.stateDir, 'partner.ledger.jsonl'), o.identity, o.stateDir);
  const log = o.log.child({ jobId: o.jobId, node: o.identity.name });
  const ended = (manifest: JobManifest, state: string, reason: string | null): PartnerNodeResult => ({
    state,
    reason,
    rounds: 0,
    modelHash: null,
    finalState: null,
    params: null,
    manifest,
    sentBodies: client.sentBodies,
  });

  const joined = await joinJob(o, client, ledger, myKeyId, (m) => acceptanceProblems(workloads, m, o.train.n + o.test.n), log);
  if (!joined.joined) return ended(joined.manifest, joined.state, joined.reason);
  const { manifest, coordinator } = joined;
  if (joined.acceptedNow) ledger.consentUsage(o.jobId, o.consent ?? consentOf(o.train, o.test));

  const backend = await initBackend({ log: (m) => log.info(m) });
  log.info({ backend }, 'tfjs backend chosen');
  const scheme = await openSecureSum(manifest.encryption);
  if (scheme.scheme === 'plain-insecure') log.warn('INSECURE: this job aggregates PLAINTEXT updates; the coordinator can read every update');
  const secretKey = await fetchJobKey({
    client,
    manifest,
    identity: o.identity,
    scheme,
    pollMs,
    signal: o.signal,
    log,
    onWaiting: o.onWaiting,
    timeoutMs: o.keyTimeoutMs ?? DEFAULT_KEY_TIMEOUT_MS,
  });
  const masked = maskedRounds(scheme, secretKey, o.stateDir, o.jobId);
  const runtime = new PartnerRuntime({
    manifest,
    workload: workloads.resolve(manifest),
    keyId: myKeyId,
    signer: signerFromSecretKey(o.identity.signSecretKey),
    train: o.train,
    test: o.test,
    scheme,
    secretKey,
    budget: o.budget,
    releases: new UploadLog(o.stateDir, o.jobId),
    // The node's own record of every release, in its signed ledger before the bytes leave.
    onRelease: (r) => ledger.release(o.jobId, r.round, r.kind, r.released),
    coordinatorSignPublicKey: coordinator.signPublicKey,
  });
  const ctx: PartnerContext = {
    o,
    client,
    ledger,
    log,
    manifest,
    myKeyId,
    coordinator,
    runtime,
    warned: new Set(),
    data: { train: o.train, test: o.test, totalWithdrawn: 0 },
  };
  let status: JobStatus;
  let gone: 'withdrawn' | 'left' | null = null;
  // Long-polls the coordinator (one request held until the job moves), or reads the status every `pollMs` from one without the route.
  const watcher = new StatusWatcher(client, o.jobId, {
    pollMs,
    waitMs: o.longPollMs,
    signal: o.signal,
    onFallback: (why) => log.info(why),
  });
  try {
    for (;;) {
      o.signal?.throwIfAborted();
      status = await watcher.next();
      await catchUp(ctx, status);
      if (status.state !== 'running' && status.state !== 'awaiting-keys') break;
      const mine = status.partners.find((p) => p.keyId === myKeyId)?.status;
      if (mine === 'withdrawn' || mine === 'left') {
        log.warn(`this node has ${mine === 'left' ? 'left' : 'withdrawn from'} the job: stopping`);
        gone = mine;
        break;
      }
      // The status is an unsigned hint: it may say when to act, never what this node already
      // released — that comes from the node's own release store (the runtime re-sends or withholds).
      const selected = status.selected.includes(myKeyId);
      const acknowledged = status.submitted.includes(myKeyId);
      if (masked && status.roundState === 'open' && selected && runtime.tracker.readyFor(status.round)) {
        await runMaskedRound(ctx, masked, status.round, status.attempt, status.selected);
        masked.state.prune(runtime.round);
      } else if (!masked && status.roundState === 'open' && selected && !acknowledged && runtime.tracker.readyFor(status.round))
        await runRound(ctx, status.round, status.attempt);
    }
  } catch (err) {
    if (o.signal?.aborted && o.leaveOnStop)
      await leaveJob(ctx, `stopped by its operator (${String((o.signal.reason as Error | undefined)?.message ?? o.signal.reason)})`);
    throw err;
  } finally {
    runtime.dispose();
    masked?.cipher.dispose();
    scheme.dispose();
  }
  if (status.state === 'completed') {
    ledger.finalModel(
      o.jobId,
      runtime.hash,
      runtime.round,
      runtime.privacy ? { epsilon: o.budget!.spent(o.jobId, runtime.privacy.delta), delta: runtime.privacy.delta } : null,
    );
  }
  // After the final entries: witness the coordinator's signed head, so a later rewrite of its tail shows.
  await witnessHead(ctx)
    .then((head) => ledger.witness(o.jobId, head, status.state))
    .catch((err: unknown) => log.warn({ err: (err as Error).message }, "could not witness the coordinator's final ledger head"));
  ledger.close();
  log.info({ state: status.state, rounds: runtime.round }, 'job finished');
  const params = (runtime.state as { params?: unknown }).params;
  return {
    state: gone ?? status.state,
    reason: gone ? `this node has ${gone === 'left' ? 'left' : 'withdrawn from'} the job` : status.reason,
    rounds: runtime.round,
    modelHash: runtime.hash,
    finalState: runtime.state,
    params: params instanceof Float64Array ? params : null,
    manifest,
    sentBodies: client.sentBodies,
  };
}

/** A masked job's per-node state (its BFV cipher and its state dir's secagg snapshots); null for other schemes. */
function maskedRounds(scheme: SecureSumScheme, secretKey: Uint8Array | null, stateDir: string, jobId: string): MaskedRounds | null {
  if (!scheme.masking) return null;
  return { state: new SecaggStateDir(stateDir, jobId), cipher: scheme.cipher(secretKey), masking: scheme.masking, finished: new Set() };
}

/** Rows used and excluded, from the datasets themselves. */
function consentOf(train: Dataset, test: Dataset): ConsentCounts {
  return {
    rowsUsed: train.n + test.n,
    rowsExcludedNoConsent: train.stats.excludedNoConsent,
    rowsExcludedWithdrawn: train.stats.excludedWithdrawn,
    ids: train.ids && test.ids ? [...train.ids, ...test.ids] : null,
  };
}

/**
 * The node stops for good: an attested `partner.leave`, recorded in its own ledger and sent once
 * (best effort, a few seconds, on a client the stop signal does not abort) so the coordinator stops
 * waiting for it. A node that cannot say so is simply waited for until each round's deadline.
 */
async function leaveJob(ctx: PartnerContext, reason: string): Promise<void> {
  const { o, ledger, log, runtime } = ctx;
  try {
    const statement = ledger.leave(o.jobId, reason, runtime.round);
    const client = new CoordinatorClient(o.coordinatorUrl, o.identity, { unreachableRetryMs: 5000 });
    await client.leave(o.jobId, reason, statement);
    log.warn({ reason }, 'left the job: rounds no longer wait for this node');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not tell the coordinator that this node leaves the job');
  }
}
