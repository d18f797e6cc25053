import { mkdirSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Identity } from '../src/crypto/identity.ts';
import { keyId as keyIdOf } from '../src/crypto/identity.ts';
import { openJobKey } from '../src/crypto/key-ceremony.ts';
import { subsetDataset, type Dataset } from '../src/data/encode.ts';
import { FedmarkError } from '../src/errors.ts';
import { verifySignedManifest, type JobManifest } from '../src/federation/manifest.ts';
import { PartnerRuntime, type BudgetGuard } from '../src/federation/partner.ts';
import { openSecureSum } from '../src/federation/secure-sum.ts';
import { roundKind } from '../src/federation/rounds.ts';
import { initBackend } from '../src/model/backend.ts';
import { CoordinatorClient, CoordinatorError } from '../src/federation/protocol/client.ts';
import { hasCode } from '../src/federation/protocol/errors.ts';
import { PartnerLedger, type ConsentCounts } from './ledger.ts';
import type { PolicyLimits } from '../src/privacy/ledger/entries.ts';
import { decodeUpdate } from '../src/federation/update-codec.ts';
import { sha256Hex } from '../src/util/hash.ts';
import { writeFileAtomic } from '../src/util/atomic-file.ts';

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
  pollMs?: number;
  recordBodies?: boolean;
  /** Stops the loop early (tests and signals). */
  signal?: AbortSignal;
  onRound?: (info: { round: number; modelHash: string }) => void;
  /** How long to wait for the job to be registered at the coordinator (default 10 minutes). */
  joinTimeoutMs?: number;
  /** Customer ids whose consent was withdrawn; read before every round, their rows leave every later round. */
  withdrawnIds?: () => ReadonlySet<string>;
}

export interface PartnerNodeResult {
  state: string;
  reason: string | null;
  rounds: number;
  modelHash: string | null;
  params: Float64Array | null;
  manifest: JobManifest;
  sentBodies: Uint8Array[] | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A node may start before the job owner registers the job: wait for it rather than fail. */
async function waitForJob(client: CoordinatorClient, jobId: string, pollMs: number, timeoutMs: number, signal?: AbortSignal) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await client.manifest(jobId);
    } catch (err) {
      const unknown = hasCode(err, 'UNKNOWN_JOB', 'COORDINATOR_UNREACHABLE');
      if (!unknown || Date.now() > end) throw err;
    }
    await sleep(pollMs);
  }
}

/**
 * A data partner's node. Raw rows stay in this process: only encrypted vectors, signed protocol
 * messages and the partner's own DP report leave it. The loop is restartable: it replays the
 * published aggregates to catch up and resends a persisted pending submission instead of training
 * (and spending privacy budget) again.
 */
export async function runPartnerNode(o: PartnerNodeOptions): Promise<PartnerNodeResult> {
  const client = new CoordinatorClient(o.coordinatorUrl, o.identity, { recordBodies: o.recordBodies, signal: o.signal });
  const myKeyId = keyIdOf(o.identity.signPublicKey);
  const pollMs = o.pollMs ?? 200;
  mkdirSync(o.stateDir, { recursive: true });
  const ledger = PartnerLedger.open(o.ledgerPath ?? join(o.stateDir, 'partner.ledger.jsonl'), o.identity, o.stateDir);
  const consent: ConsentCounts = o.consent ?? {
    rowsUsed: o.train.n + o.test.n,
    rowsExcludedNoConsent: o.train.stats.excludedNoConsent,
    rowsExcludedWithdrawn: o.train.stats.excludedWithdrawn,
    ids: o.train.ids && o.test.ids ? [...o.train.ids, ...o.test.ids] : null,
  };

  const signed = await waitForJob(client, o.jobId, pollMs, o.joinTimeoutMs ?? 10 * 60_000, o.signal);
  const manifest = verifySignedManifest(signed);
  if (!manifest.partners.some((p) => p.keyId === myKeyId)) {
    throw new FedmarkError('NOT_PARTNER', `job ${o.jobId} does not list this node's key ${myKeyId} as a partner`);
  }
  const log = o.log.child({ jobId: o.jobId, node: o.identity.name });

  let status = await client.status(o.jobId);
  const me = status.partners.find((p) => p.keyId === myKeyId)!;
  if (me.status === 'invited') {
    const reasons = [...o.reviewJob(manifest)];
    if (manifest.dataset.schemaHash !== o.schemaHash) reasons.unshift('the job was defined for a different dataset schema than this node holds');
    const limits: PolicyLimits = o.policyLimits?.(manifest) ?? { maxEpsilon: manifest.dp?.targetEpsilon ?? Number.MAX_VALUE, maxDelta: manifest.dp?.delta ?? 0.5 };
    if (reasons.length) {
      const statement = ledger.refusal(o.jobId, signed.ledgerManifestHash, reasons.join('; '), limits);
      await client.accept(o.jobId, { accepted: false, reason: reasons.join('; '), statement });
      log.warn({ reasons }, 'job refused by local policy');
      return { state: 'refused', reason: reasons.join('; '), rounds: 0, modelHash: null, params: null, manifest, sentBodies: client.sentBodies };
    }
    const statement = ledger.acceptance(o.jobId, signed.ledgerManifestHash, limits);
    await client.accept(o.jobId, { accepted: true, statement });
    ledger.consentUsage(o.jobId, consent);
    log.info('job accepted');
  } else if (me.status !== 'accepted') {
    return { state: me.status, reason: `this node is ${me.status} for the job`, rounds: 0, modelHash: null, params: null, manifest, sentBodies: client.sentBodies };
  }

  const backend = await initBackend({ log: (m) => log.info(m) });
  log.info({ backend }, 'tfjs backend chosen');
  const scheme = await openSecureSum(manifest.encryption);
  let secretKey: Uint8Array | null = null;
  if (scheme.scheme === 'ckks') {
    for (;;) {
      o.signal?.throwIfAborted();
      try {
        const sealed = await client.sealedKey(o.jobId);
        secretKey = openJobKey(o.jobId, sealed, Buffer.from(manifest.owner.boxPublicKey, 'base64'), o.identity);
        break;
      } catch (err) {
        if (hasCode(err, 'NO_SEALED_KEY')) {
          // not uploaded yet: keep polling
        } else if (err instanceof CoordinatorError) {
          throw new FedmarkError('KEY_CEREMONY', `fetching the sealed job key failed: ${err.message}`);
        } else throw err;
      }
      await sleep(pollMs);
    }
  } else {
    log.warn('INSECURE: this job aggregates PLAINTEXT updates; the coordinator can read every update');
  }

  let train = o.train;
  let test = o.test;
  let totalWithdrawn = 0;
  const runtime = new PartnerRuntime({ manifest, keyId: myKeyId, train: o.train, test: o.test, scheme, secretKey, budget: o.budget });
  const pendingPath = join(o.stateDir, `${o.jobId}.pending-submission`);
  // DP reports of rounds this node submitted to, until their aggregate is applied and recorded.
  const submittedPath = join(o.stateDir, `${o.jobId}.submitted.json`);
  type Submitted = { dp: NonNullable<import('../src/federation/update-codec.ts').DpReport>; ciphertextHashes: string[] };
  const submitted = new Map<number, Submitted>(existsSync(submittedPath) ? (JSON.parse(readFileSync(submittedPath, 'utf8')) as [number, Submitted][]) : []);
  const saveSubmitted = () => {
    writeFileAtomic(submittedPath, JSON.stringify([...submitted]));
  };
  try {
    for (;;) {
      o.signal?.throwIfAborted();
      status = await client.status(o.jobId);
      // Catch up: apply every published training aggregate we have not applied yet.
      const lastTrainClosed = Math.max(0, ...status.closedRounds.filter((r) => r <= manifest.rounds));
      while (runtime.state.round < lastTrainClosed) {
        const round = runtime.state.round + 1;
        const agg = await client.aggregate(o.jobId, round, 'update');
        const next = runtime.applyAggregate(round, agg);
        await client.reportModelHash(o.jobId, round, next.hash).catch((err: unknown) => {
          if (!hasCode(err, 'JOB_CLOSED', 'HASH_CHANGED')) throw err;
        });
        const mine = submitted.get(round);
        if (mine) {
          ledger.round(o.jobId, round, { ...mine, rowsUsed: train.n, globalModelHash: next.hash, coordinatorHead: await client.ledgerHead(o.jobId) });
          submitted.delete(round);
          saveSubmitted();
        }
        o.onRound?.({ round, modelHash: next.hash });
      }
      if (status.state !== 'running' && status.state !== 'awaiting-keys') break;
      if (status.partners.find((p) => p.keyId === myKeyId)?.status === 'withdrawn') {
        log.warn('this node has withdrawn from the job: stopping');
        break;
      }
      const selected = status.selected.includes(myKeyId);
      const done = status.submitted.includes(myKeyId);
      if (status.roundState === 'open' && selected && !done && runtime.state.round === status.round - 1) {
        await submitRound(status.round, status.attempt);
      }
      await sleep(pollMs);
    }
  } finally {
    runtime.dispose();
    scheme.dispose();
  }
  if (status.state === 'completed') ledger.finalModel(o.jobId, runtime.state.hash, runtime.state.round, runtime.dpPlan ? { epsilon: o.budget!.spent(o.jobId, runtime.dpPlan.delta), delta: runtime.dpPlan.delta } : null);
  ledger.close();
  log.info({ state: status.state, rounds: runtime.state.round }, 'job finished');
  return {
    state: status.state,
    reason: status.reason,
    rounds: runtime.state.round,
    modelHash: runtime.state.hash,
    params: runtime.state.params,
    manifest,
    sentBodies: client.sentBodies,
  };

  /** Drops rows of customers who withdrew consent since the last round, and records it. */
  function applyWithdrawals(): void {
    const withdrawn = o.withdrawnIds?.();
    if (!withdrawn || withdrawn.size === 0 || !train.ids || !test.ids) return;
    const keep = (ds: Dataset) => {
      const idx: number[] = [];
      const gone: string[] = [];
      ds.ids!.forEach((id, i) => (withdrawn.has(id) ? gone.push(id) : idx.push(i)));
      return { ds: gone.length ? subsetDataset(ds, idx) : ds, gone };
    };
    const a = keep(train);
    const b = keep(test);
    const gone = [...a.gone, ...b.gone];
    if (!gone.length) return;
    train = a.ds;
    test = b.ds;
    totalWithdrawn += gone.length;
    runtime.replaceData(train, test);
    ledger.consentWithdrawal(gone, totalWithdrawn);
    log.warn({ rows: gone.length, totalWithdrawn }, 'consent withdrawn: rows excluded from this round on');
  }

  async function submitRound(round: number, attempt: number): Promise<void> {
    const tag = `${round}.${attempt}`;
    let body: Uint8Array | null = null;
    if (existsSync(pendingPath)) {
      const pending = JSON.parse(readFileSync(pendingPath, 'utf8')) as { tag: string; body: string };
      if (pending.tag === tag) body = Buffer.from(pending.body, 'base64');
    }
    if (!body) {
      applyWithdrawals();
      const kind = roundKind(manifest, round);
      const result = await runtime.buildSubmission(round, attempt, kind);
      if (result.status === 'refused') {
        log.warn({ round, reason: result.reason }, 'round declined: privacy budget');
        ledger.budgetRefusal(o.jobId, round, result.requestedEpsilon, result.remainingEpsilon, result.reason);
        await client.decline(o.jobId, round, { attempt, reason: result.reason, requestedEpsilon: result.requestedEpsilon, remainingEpsilon: result.remainingEpsilon }).catch((err: unknown) => {
          if (!hasCode(err, 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED')) throw err;
        });
        return;
      }
      body = result.body;
      // Persist before sending: after a crash the same bytes are resent, never a fresh (uncharged) release.
      writeFileAtomic(pendingPath, JSON.stringify({ tag, body: Buffer.from(body).toString('base64') }));
      if (result.meta.dp) {
        const parts = decodeUpdate(body);
        submitted.set(round, { dp: result.meta.dp, ciphertextHashes: parts.meta.parts.map((p) => sha256Hex(parts.parts[p.name])) });
        saveSubmitted();
      }
    }
    try {
      const res = await client.submit(o.jobId, round, body);
      log.info({ round, attempt, bytes: body.length, duplicate: res.duplicate }, 'update submitted');
    } catch (err) {
      if (hasCode(err, 'ROUND_CLOSED', 'ROUND_DEADLINE', 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED')) log.warn({ round, err: err.message }, "submission not taken (round or job closed meanwhile)");
      else throw err;
    }
    rmSync(pendingPath, { force: true });
  }
}
