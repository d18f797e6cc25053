import { initBackend } from '../../src/model/backend.ts';
import { join } from 'node:path';
import pino from 'pino';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { hasCode } from '../../src/federation/protocol/errors.ts';
import { runPartnerNode, type PartnerNodeOptions, type PartnerNodeResult } from '../../partner/node.ts';
import { runJobOwner, type OwnerResult } from '../../owner/node.ts';
import type { FederatedEvalMetrics } from '../../src/metrics/histogram.ts';
import type { WorkloadRegistry } from '../../src/federation/workload.ts';
import type { JobStatus } from '../../src/federation/protocol/schemas.ts';
import { publicIdentity, generateIdentity, type Identity } from '../../src/crypto/identity.ts';
import { openJobKey } from '../../src/crypto/key-ceremony.ts';
import { loadBundled } from '../../src/data/bundled.ts';
import { subsetDataset, type Dataset } from '../../src/data/encode.ts';
import { partitionIid } from '../../src/data/partition.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import { jobPreset, schemaHash } from '../../src/federation/job-presets.ts';
import {
  parseManifest,
  signManifest,
  verifySignedManifest,
  type EncryptionSpec,
  type JobManifest,
  type SignedManifest,
  MANIFEST_SCHEMA_VERSION,
} from '../../src/federation/manifest.ts';
import { PartnerRuntime } from '../../src/federation/partner-runtime.ts';
import { decodeUpdate } from '../../src/federation/update-codec.ts';
import { recordHash } from '../../src/federation/submission-record.ts';
import { sgdWorkload, type SgdState } from '../../src/federation/workloads/sgd/index.ts';
import { openSecureSum, type SecureSumScheme } from '../../src/federation/secure-sum.ts';
import { attestPayload, signerFromSecretKey } from '../../src/privacy/ledger/signing.ts';
import { splitPartnerData } from '../../cli/partner-data.ts';
import type { BudgetGuard } from '../../src/privacy/budget/guard.ts';

export { deterministicIdentity } from './identities.ts';

export const silentLog = pino({ level: 'silent' });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Poll interval of every loop in these helpers. Coordinator, owner and partners share one thread in a
 * test, and each poll costs an Ed25519 signature and its verification (~20 ms of tweetnacl together):
 * at 50 ms four pollers alone would saturate the CPU and slow the job they wait for.
 */
export const TEST_POLL_MS = Number(process.env.FEDMARK_TEST_POLL_MS ?? 150);

export interface PartnerData {
  name: string;
  all: Dataset;
  train: Dataset;
  test: Dataset;
}

let telco: ReturnType<typeof loadBundled> | null = null;

/**
 * IID shares of the first `partners × rowsPerPartner` rows of the bundled telco data, each split
 * into training rows and the partner's own 25 % hold-out. Deterministic for a given seed.
 */
export async function telcoPartners(o: { partners: number; rowsPerPartner: number; seed?: number }): Promise<{
  schema: DatasetSchema;
  schemaHash: string;
  parts: PartnerData[];
}> {
  telco ??= loadBundled('telco-churn');
  const { schema, dataset } = await telco;
  const rows = o.partners * o.rowsPerPartner;
  if (rows > dataset.n) throw new Error(`telco holds ${dataset.n} rows, asked for ${rows}`);
  const sample = subsetDataset(
    dataset,
    Array.from({ length: rows }, (_, i) => i),
  );
  const parts = partitionIid(sample.n, o.partners, o.seed ?? 5).map((idx, i) => {
    const all = subsetDataset(sample, idx);
    return { name: `partner-${i}`, all, ...splitPartnerData(all, 0.25, 3) };
  });
  return { schema, schemaHash: schemaHash(schema), parts };
}

export function makeIdentities(names: string[]): Identity[] {
  return names.map((n) => generateIdentity(n));
}

/** The manifest of a preset (any workload's) for this owner and these partners, and its owner-signed form. */
export function signJob(
  preset: Omit<JobManifest, 'owner' | 'partners' | 'schemaVersion' | 'createdAt'>,
  owner: Identity,
  partners: Identity[],
): { manifest: JobManifest; signed: SignedManifest } {
  const manifest = parseManifest({
    ...preset,
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: new Date().toISOString(),
    owner: publicIdentity(owner),
    partners: partners.map(publicIdentity),
  });
  return { manifest, signed: signManifest(manifest, owner) };
}

/** A signed manifest from the job preset (non-DP unless `epsilon` is given). */
export function makeJob(o: {
  jobId: string;
  schema: DatasetSchema;
  owner: Identity;
  partners: Identity[];
  rounds: number;
  encryption?: EncryptionSpec;
  seed?: number;
  epsilon?: number | null;
  /** Local training other than the preset's. */
  localTraining?: JobManifest['localTraining'];
}): { manifest: JobManifest; signed: SignedManifest } {
  const preset = jobPreset({
    jobId: o.jobId,
    schema: o.schema,
    partners: o.partners.length,
    rounds: o.rounds,
    epsilon: o.epsilon ?? null,
    encryption: o.encryption,
    seed: o.seed ?? 11,
  });
  return signJob({ ...preset, ...(o.localTraining ? { localTraining: o.localTraining } : {}) }, o.owner, o.partners);
}

/** Polls the job status until `pred` holds; fails with `what` after `timeoutMs`. */
export async function waitForStatus(
  client: CoordinatorClient,
  jobId: string,
  pred: (s: JobStatus) => boolean,
  what: string,
  o: { timeoutMs?: number; pollMs?: number; signal?: AbortSignal } = {},
): Promise<JobStatus> {
  const end = Date.now() + (o.timeoutMs ?? 30_000);
  for (;;) {
    o.signal?.throwIfAborted();
    const s = await client.status(jobId);
    if (pred(s)) return s;
    if (s.state === 'failed' || s.state === 'halted') throw new Error(`job ${jobId} ${s.state} while waiting for ${what}: ${s.reason}`);
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what} (job ${jobId}: ${JSON.stringify({ state: s.state, round: s.round, roundState: s.roundState, submitted: s.submitted.length })})`,
      );
    await sleep(o.pollMs ?? TEST_POLL_MS);
  }
}

/**
 * Starts node i of a job (runPartnerNode on part i, over HTTP) with the tests' defaults: no policy
 * review, a silent log, TEST_POLL_MS, no budget unless `budget` gives one; `extra` on top.
 */
export function partnerNodes(o: {
  url: string;
  identities: Identity[];
  parts: PartnerData[];
  jobId: string;
  schemaHash: string;
  stateDir: (i: number) => string;
  budget?: (i: number) => BudgetGuard | undefined;
  pollMs?: number;
}): (i: number, extra?: Partial<PartnerNodeOptions>) => Promise<PartnerNodeResult> {
  return (i, extra = {}) =>
    runPartnerNode({
      coordinatorUrl: o.url,
      identity: o.identities[i],
      jobId: o.jobId,
      train: o.parts[i].train,
      test: o.parts[i].test,
      schemaHash: o.schemaHash,
      stateDir: o.stateDir(i),
      reviewJob: () => [],
      budget: o.budget?.(i),
      log: silentLog,
      pollMs: o.pollMs ?? TEST_POLL_MS,
      ...extra,
    });
}

/**
 * The job owner plus one partner node per partner, all over HTTP, as in production. Aborts every
 * loop when one of them fails or `timeoutMs` passes, so a broken run fails fast instead of hanging.
 */
export async function runFederation<S = SgdState, R = FederatedEvalMetrics>(o: {
  url: string;
  owner: Identity;
  identities: Identity[];
  signed: SignedManifest;
  parts: PartnerData[];
  schemaHash: string;
  stateDir: string;
  pollMs?: number;
  timeoutMs?: number;
  /** Nodes to start (default: all). Lets a test drive some partners by hand. */
  nodes?: number[];
  /** Stops every loop (e.g. from afterAll when the test failed half way). */
  signal?: AbortSignal;
  /** Workloads beyond the built-in ones, for the owner and (unless `node` says otherwise) every partner. */
  workloads?: WorkloadRegistry;
  /** Options of node i beyond these defaults: its budget guard, its own ledger, the workloads it runs. */
  node?: (i: number) => Partial<Pick<PartnerNodeOptions, 'budget' | 'ledgerPath' | 'workloads'>>;
}): Promise<{ owner: OwnerResult<S, R>; nodes: PartnerNodeResult[] }> {
  const abort = new AbortController();
  o.signal?.addEventListener('abort', () => abort.abort(o.signal!.reason), { once: true });
  const timer = setTimeout(() => abort.abort(new Error(`federation did not finish within ${o.timeoutMs ?? 45_000} ms`)), o.timeoutMs ?? 45_000);
  const guard = <T>(p: Promise<T>) =>
    p.catch((err: unknown) => {
      abort.abort(err);
      throw err;
    });
  try {
    const which = o.nodes ?? o.identities.map((_, i) => i);
    const { jobId } = o.signed.manifest;
    const start = partnerNodes({ ...o, jobId, stateDir: (i) => join(o.stateDir, `${jobId}-${o.identities[i].name}`) });
    const nodes = which.map((i) => guard(start(i, { signal: abort.signal, joinTimeoutMs: o.timeoutMs ?? 45_000, workloads: o.workloads, ...o.node?.(i) })));
    const owner = guard(
      runJobOwner<S, R>({
        coordinatorUrl: o.url,
        identity: o.owner,
        signed: o.signed,
        log: silentLog,
        pollMs: o.pollMs ?? TEST_POLL_MS,
        signal: abort.signal,
        workloads: o.workloads,
      }),
    );
    const [ownerResult, ...nodeResults] = await Promise.all([owner, ...nodes]);
    return { owner: ownerResult, nodes: nodeResults };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A partner driven step by step instead of by runPartnerNode's loop, so a test can hold the plaintext
 * vectors it encrypts, craft bodies, and choose when each request happens.
 */
export class ManualPartner {
  private constructor(
    readonly identity: Identity,
    readonly client: CoordinatorClient,
    readonly manifest: JobManifest,
    readonly runtime: PartnerRuntime<SgdState>,
    readonly scheme: SecureSumScheme,
    readonly secretKey: Uint8Array | null,
  ) {}

  get keyId(): string {
    return publicIdentity(this.identity).keyId;
  }

  /** Waits for the job, accepts it, and (CKKS) waits for and opens its sealed key. */
  static async join(o: {
    url: string;
    identity: Identity;
    jobId: string;
    train: Dataset;
    test: Dataset;
    timeoutMs?: number;
    pollMs?: number;
    signal?: AbortSignal;
  }): Promise<ManualPartner> {
    // It trains in this process: the tensor backend must be ready whatever ran before it.
    await initBackend({ log: () => {} });
    const client = new CoordinatorClient(o.url, o.identity);
    const end = Date.now() + (o.timeoutMs ?? 20_000);
    const pollMs = o.pollMs ?? TEST_POLL_MS;
    let signed: (SignedManifest & { ledgerManifestHash: string }) | null = null;
    while (!signed) {
      o.signal?.throwIfAborted();
      try {
        signed = await client.manifest(o.jobId);
      } catch (err) {
        if (!hasCode(err, 'AUTH_REJECTED') || Date.now() > end) throw err;
        await sleep(pollMs);
      }
    }
    const manifest = verifySignedManifest(signed);
    // The coordinator records acceptances in the job ledger only with the partner's own attestation,
    // built here exactly as runPartnerNode's partner ledger builds it (default limits: the job's own).
    const statement = attestPayload(
      {
        jobId: o.jobId,
        partner: publicIdentity(o.identity).keyId,
        manifestHash: signed.ledgerManifestHash,
        policy: { maxEpsilon: manifest.dp?.targetEpsilon ?? Number.MAX_VALUE, maxDelta: manifest.dp?.delta ?? 0.5 },
      },
      signerFromSecretKey(o.identity.signSecretKey),
    );
    await client.accept(o.jobId, { accepted: true, statement });
    const scheme = await openSecureSum(manifest.encryption);
    let secretKey: Uint8Array | null = null;
    if (scheme.scheme === 'ckks') {
      while (!secretKey) {
        if (o.signal?.aborted) {
          scheme.dispose();
          o.signal.throwIfAborted();
        }
        try {
          secretKey = openJobKey(o.jobId, await client.sealedKey(o.jobId), Buffer.from(manifest.owner.boxPublicKey, 'base64'), o.identity);
          break;
        } catch (err) {
          if (!hasCode(err, 'NO_SEALED_KEY') || Date.now() > end) {
            scheme.dispose();
            throw new Error(`${o.identity.name}: fetching the sealed key failed: ${(err as Error).message}`);
          }
        }
        await sleep(pollMs);
      }
    }
    const keyId = publicIdentity(o.identity).keyId;
    const runtime = new PartnerRuntime<SgdState>({
      manifest,
      workload: sgdWorkload,
      keyId,
      signer: signerFromSecretKey(o.identity.signSecretKey),
      train: o.train,
      test: o.test,
      scheme,
      secretKey,
    });
    return new ManualPartner(o.identity, client, manifest, runtime, scheme, secretKey);
  }

  /** Trains (or evaluates) for a round and returns the envelope together with its plaintext vectors. */
  async build(round: number, attempt = 0): Promise<{ body: Uint8Array; update: Float64Array | undefined; evaluation: Float64Array }> {
    const res = await this.runtime.buildSubmission(round, attempt, true);
    if (res.status !== 'submitted') throw new Error(`${this.identity.name}: round ${round} refused: ${res.reason}`);
    return { body: res.body, update: res.plain!.update, evaluation: res.plain!.evaluation };
  }

  /** Uploads; once the coordinator takes it, that attempt's published sums must list this partner's record (as the node does). */
  async submit(round: number, body: Uint8Array) {
    const res = await this.client.submit(this.manifest.jobId, round, body);
    const { meta } = decodeUpdate(body);
    const own = this.runtime.ownRecord(round, meta.attempt);
    if (own && recordHash(own) === recordHash(meta.record)) this.runtime.acknowledged(round, meta.attempt);
    return res;
  }

  /** Downloads the round's published sum and its signed contents, applies the server step and reports the model hash. */
  async applyRound(round: number): Promise<string> {
    const { jobId } = this.manifest;
    const hash = await this.runtime.applyAggregate(
      round,
      { update: await this.client.aggregate(jobId, round, 'update') },
      await this.client.contents(jobId, round),
    );
    await this.client.reportModelHash(this.manifest.jobId, round, hash);
    return hash;
  }

  dispose(): void {
    this.runtime.dispose();
    this.scheme.dispose();
  }
}
