/**
 * The one shared setup of the attack tests (test/attacks/README.md): a real coordinator with a lying
 * proxy in front of it, partner CSVs and identity files, and the real partner node — the
 * `fedmark client` CLI process, wired exactly as a partner deploys it (policy file, persisted
 * privacy budget, its own signed ledger). Tests observe only what an attacker or auditor can see:
 * bytes on the wire (the proxy's records), files, ledgers, exit codes and HTTP statuses.
 *
 * Everything that names the layout lives here: the nodes in partner/ and owner/, `fedmark partner`,
 * the manifest's `partners`.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runJobOwner, type OwnerResult } from '../../owner/node.ts';
import { manifestLedgerEntry } from '../../owner/genesis.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { publicIdentity, type Identity } from '../../src/crypto/identity.ts';
import type { Dataset } from '../../src/data/encode.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest, signManifest, type JobManifest, type SignedManifest } from '../../src/federation/manifest.ts';
import { parsePolicy } from '../../src/privacy/policy.ts';
import { attestPayload, signerFromSecretKey } from '../../src/privacy/ledger/signing.ts';
import { openJobKey } from '../../src/crypto/key-ceremony.ts';
import { PartnerRuntime } from '../../src/federation/partner-runtime.ts';
import { sgdWorkload, type SgdState } from '../../src/federation/workloads/sgd/index.ts';
import { decodePart, wireLength } from '../../src/federation/part-encoding.ts';
import { planOf } from '../../src/federation/workload.ts';
import { MemoryBudgetGuard } from '../../src/privacy/budget/memory-guard.ts';
import { openSecureSum, type SecureSumScheme, type VectorCipher } from '../../src/federation/secure-sum.ts';
import { decodeUpdate } from '../../src/federation/update-codec.ts';
import { loadPartnerData } from '../../cli/partner-data.ts';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { LyingProxy } from '../helpers/lying-proxy.ts';
import { acceptances, uploads } from './evidence.ts';
import { silentLog } from '../helpers/partners.ts';
import { CLI_MAIN, HOLDOUT, NodeProcess, SPLIT_SEED, finalLine, prepareFixture, type ChaosFixture, type ChaosPartner } from '../chaos/helpers.ts';

export { CLI_MAIN };
export * from './evidence.ts';

/** The partner node's CLI command (`client` is kept as an alias). */
export const PARTNER_COMMAND = 'partner';
/**
 * How often every node in these tests polls: short, so that attacks play out in seconds, but each
 * poll costs an Ed25519 signature and its verification (tens of ms of CPU on a busy machine), and a
 * test runs several nodes at once.
 */
export const POLL_MS = 200;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exec = promisify(execFile);

/**
 * Polls `pred` until it returns a truthy value; fails naming `what` after `timeoutMs`. Local checks
 * (the proxy's records, files) are cheap; pass `everyMs: POLL_MS` when `pred` asks the coordinator.
 */
export async function waitFor<T>(pred: () => T | Promise<T>, what: string, timeoutMs = 30_000, everyMs = 50): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The world: coordinator, proxy, partners' files

export interface AttackWorld {
  dir: string;
  coordinator: TestCoordinator;
  /** Nodes are pointed at this URL; it forwards to the real coordinator unless a rule says otherwise. */
  proxy: LyingProxy;
  fixture: ChaosFixture;
  owner: Identity;
  /** Key id of the real coordinator's signing identity (partners pin it). */
  coordinatorKeyId: string;
  partners: ChaosPartner[];
  keyIdOf(i: number): string;
  /** A partner's rows exactly as its node splits them (training rows, hold-out rows, customer ids). */
  partnerData(i: number): Promise<{ all: Dataset; train: Dataset; test: Dataset }>;
  /** Aborts owners, kills node processes, stops proxy and coordinator, removes the directory. */
  close(): Promise<void>;
  /** Registered for cleanup by the helpers below. */
  readonly cleanups: (() => unknown)[];
}

export async function startWorld(o: { name: string; partners?: number; rowsPerPartner?: number; seed?: number }): Promise<AttackWorld> {
  const dir = mkdtempSync(join(tmpdir(), `fedmark-attack-${o.name}-`));
  const cleanups: (() => unknown)[] = [];
  let coordinator: TestCoordinator | null = null;
  let proxy: LyingProxy | null = null;
  try {
    const fixture = await prepareFixture(dir, { partners: o.partners ?? 2, rowsPerPartner: o.rowsPerPartner ?? 300, seed: o.seed ?? 5 });
    coordinator = await startTestCoordinator({ logLevel: 'warn' });
    proxy = await LyingProxy.start(coordinator.url);
    const coordinatorKeyId = (await new CoordinatorClient(coordinator.url, fixture.owner).coordinatorIdentity()).keyId;
    const data = new Map<number, Promise<{ all: Dataset; train: Dataset; test: Dataset }>>();
    const world: AttackWorld = {
      dir,
      coordinator,
      proxy,
      fixture,
      owner: fixture.owner,
      coordinatorKeyId,
      partners: fixture.partners,
      keyIdOf: (i) => publicIdentity(fixture.partners[i].identity).keyId,
      partnerData: (i) => {
        if (!data.has(i)) data.set(i, loadPartnerData(fixture.partners[i].csv, fixture.schema, HOLDOUT, SPLIT_SEED));
        return data.get(i)!;
      },
      cleanups,
      close: async () => {
        for (const c of [...cleanups].reverse()) await Promise.resolve(c()).catch(() => undefined);
        await proxy?.close();
        await coordinator?.stop();
        if (!process.env.FEDMARK_KEEP_TEST_DIR) rmSync(dir, { recursive: true, force: true });
      },
    };
    return world;
  } catch (err) {
    await proxy?.close();
    await coordinator?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs

export interface JobOptions {
  jobId: string;
  rounds?: number;
  /** Target ε per partner; null: a job without differential privacy. Default 3. */
  epsilon?: number | null;
  purpose?: string;
  /** Who signs the manifest as owner (default: the world's owner). */
  owner?: Identity;
  /** Which of the world's partners take part (default: all). */
  partners?: number[];
  /** Any manifest field to override (encryption, quorum, roundDeadlineSeconds, localTraining…). */
  overrides?: Record<string, unknown>;
}

export const DEFAULT_PURPOSE = 'churn-model';

/** A signed manifest from the job preset: CKKS, quorum = number of partners, every other check satisfied. */
export function defineJob(world: AttackWorld, o: JobOptions): { manifest: JobManifest; signed: SignedManifest } {
  const which = o.partners ?? world.partners.map((_, i) => i);
  const owner = o.owner ?? world.owner;
  const preset = jobPreset({
    jobId: o.jobId,
    purpose: o.purpose ?? DEFAULT_PURPOSE,
    schema: world.fixture.schema,
    partners: which.length,
    rounds: o.rounds ?? 1,
    epsilon: o.epsilon === undefined ? 3 : o.epsilon,
    seed: 7,
  });
  const manifest = parseManifest({
    ...preset,
    quorum: which.length,
    ...o.overrides,
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: new Date().toISOString(),
    owner: publicIdentity(owner),
    partners: which.map((i) => publicIdentity(world.partners[i].identity)),
  });
  return { manifest, signed: signManifest(manifest, owner) };
}

/**
 * The job owner's real node (in-process): registers the job, runs the key ceremony and follows the
 * job to its end. Connects to the coordinator directly unless `url` says otherwise.
 */
export function startOwner(
  world: AttackWorld,
  signed: SignedManifest,
  o: { identity?: Identity; url?: string } = {},
): { result: Promise<OwnerResult>; abort(): void } {
  const ac = new AbortController();
  const result = runJobOwner({
    coordinatorUrl: o.url ?? world.coordinator.url,
    identity: o.identity ?? world.owner,
    signed,
    log: silentLog,
    pollMs: POLL_MS,
    signal: ac.signal,
  });
  result.catch(() => undefined);
  world.cleanups.push(() => ac.abort());
  return { result, abort: () => ac.abort() };
}

/** Registers a job (manifest + owner-signed ledger genesis) without running an owner node. */
export async function registerJob(url: string, signed: SignedManifest, owner: Identity): Promise<void> {
  const client = new CoordinatorClient(url, owner);
  await client.createJob(signed, manifestLedgerEntry(signed.manifest, owner, await client.coordinatorIdentity(), sgdWorkload.privacy(signed.manifest), null));
}

// ---------------------------------------------------------------------------------------------
// The partner's policy and node

export interface PolicyOptions {
  /**
   * Policy fields beyond today's schema (issue 11 item 3), written only if this build's policy schema
   * knows them. Default: `trustedOwnerKeyIds` = [the world's owner], as a careful partner sets it.
   */
  extra?: Record<string, unknown>;
  allowedPurposes?: string[];
  allowedColumns?: string[];
  allowNonPrivateJobs?: boolean;
  maxEpsilonPerJob?: number;
  lifetimeEpsilon?: number;
  file?: string;
}

const warned = new Set<string>();
function note(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  process.stderr.write(`[attack harness] ${message}\n`);
}

/**
 * Writes partner i's policy: today's fields allow exactly the job's purpose and columns, per-job ε 3,
 * lifetime ε 30, δ ≤ 1e-5. Extra fields are kept only if `parsePolicy` accepts them: on a build that
 * does not know a field, the test then runs the attack without that defence (and fails because the
 * attack succeeds) instead of failing on an unknown policy field.
 */
export function writePolicy(world: AttackWorld, i: number, manifest: Pick<JobManifest, 'purpose' | 'dataset'>, o: PolicyOptions = {}): string {
  const p = world.partners[i];
  const base: Record<string, unknown> = {
    partner: p.name,
    datasetId: `telco-churn:${p.name}`,
    maxEpsilonPerJob: o.maxEpsilonPerJob ?? 3,
    lifetimeEpsilon: o.lifetimeEpsilon ?? 30,
    maxDelta: 1e-5,
    allowedColumns: o.allowedColumns ?? manifest.dataset.columns,
    allowedPurposes: o.allowedPurposes ?? [manifest.purpose],
    ...(o.allowNonPrivateJobs !== undefined ? { allowNonPrivateJobs: o.allowNonPrivateJobs } : {}),
  };
  const policy = { ...base };
  for (const [k, v] of Object.entries(o.extra ?? { trustedOwnerKeyIds: [publicIdentity(world.owner).keyId] })) {
    try {
      parsePolicy({ ...base, [k]: v });
      policy[k] = v;
    } catch {
      note(`this build's policy schema does not accept "${k}": the partner runs without it`);
    }
  }
  const file = o.file ?? join(world.dir, `policy-${p.name}-${Math.random().toString(36).slice(2, 8)}.json`);
  writeFileSync(file, JSON.stringify(policy, null, 2));
  return file;
}

let helpText: Promise<string> | null = null;
/** Whether this build's partner command knows `flag` (read once from its --help). */
export async function partnerSupportsFlag(flag: string): Promise<boolean> {
  helpText ??= exec(process.execPath, ['--import', 'tsx', CLI_MAIN, PARTNER_COMMAND, '--help'], { cwd: join(CLI_MAIN, '..', '..') }).then((r) => r.stdout);
  return (await helpText).includes(flag);
}

export interface PartnerNode {
  proc: NodeProcess;
  index: number;
  keyId: string;
  stateDir: string;
  /** The partner's own signed ledger. */
  ledgerPath: string;
  /** The partner's persisted privacy budget. */
  budgetPath: string;
  /** Resolves when the process exits, with its exit code and final JSON line (if any). */
  exit(timeoutMs?: number): Promise<{ code: number | null; final: { state: string; rounds: number; modelHash: string | null } | null; tail: string[] }>;
  kill(): Promise<void>;
}

export interface PartnerOptions {
  jobId: string;
  policyFile: string;
  /** Default: the proxy. */
  url?: string;
  stateDir?: string;
  /**
   * Flags beyond today's CLI (issue 11 item 3), passed only if this build's partner command knows
   * them. Default: `--owner-key-id` and `--coordinator-key-id` pinned to the world's real owner and
   * coordinator, as a careful partner starts its node.
   */
  flags?: Record<string, string>;
  /** Customer ids whose consent was withdrawn (the node re-reads the file before every round). */
  withdrawnFile?: string;
}

/** Starts partner i's real node: `fedmark client` as its own OS process. */
export async function startPartner(world: AttackWorld, i: number, o: PartnerOptions): Promise<PartnerNode> {
  const p = world.partners[i];
  const stateDir = o.stateDir ?? join(world.dir, 'state', o.jobId, p.name);
  mkdirSync(stateDir, { recursive: true });
  const args = [
    PARTNER_COMMAND,
    '--coordinator',
    o.url ?? world.proxy.url,
    '--job',
    o.jobId,
    '--data',
    p.csv,
    '--schema',
    world.fixture.schemaFile,
    '--identity',
    p.identityFile,
    '--policy',
    o.policyFile,
    '--state-dir',
    stateDir,
    '--holdout',
    String(HOLDOUT),
    '--split-seed',
    String(SPLIT_SEED),
    '--poll-ms',
    String(POLL_MS),
    '--log-level',
    'info',
  ];
  if (o.withdrawnFile) args.push('--withdrawn', o.withdrawnFile);
  const flags = o.flags ?? { '--owner-key-id': publicIdentity(world.owner).keyId, '--coordinator-key-id': world.coordinatorKeyId };
  for (const [flag, value] of Object.entries(flags)) {
    if (await partnerSupportsFlag(flag)) args.push(flag, value);
    else note(`this build's \`fedmark ${PARTNER_COMMAND}\` has no ${flag}: the partner runs without it`);
  }
  const proc = new NodeProcess(`${p.name}-${o.jobId}`, CLI_MAIN, args, join(world.dir, 'logs', `${p.name}-${o.jobId}-${Date.now()}.log`));
  proc.start();
  world.cleanups.push(() => proc.close());
  return {
    proc,
    index: i,
    keyId: world.keyIdOf(i),
    stateDir,
    ledgerPath: join(stateDir, `${p.identity.name}.ledger.jsonl`),
    budgetPath: join(stateDir, 'privacy-budget.json'),
    async exit(timeoutMs = 120_000) {
      let timer: NodeJS.Timeout | undefined;
      const rec = await Promise.race([
        proc.waitExit(),
        new Promise<never>((_, rej) => {
          timer = setTimeout(() => rej(new Error(`${proc.name} did not exit within ${timeoutMs} ms; see ${proc.logPath}`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
      return { code: rec.code, final: finalLine(proc), tail: rec.tail };
    },
    async kill() {
      await proc.kill();
    },
  };
}

/** The attested acceptance a partner node sends (the coordinator records it only with the partner's signature). */
async function acceptAs(
  url: string,
  identity: Identity,
  jobId: string,
): Promise<{ client: CoordinatorClient; signed: SignedManifest & { ledgerManifestHash: string } }> {
  const client = new CoordinatorClient(url, identity);
  const signed = await waitFor(() => client.manifest(jobId).catch(() => null), `job ${jobId} to be registered`, 30_000, POLL_MS);
  const m = signed.manifest;
  const statement = attestPayload(
    {
      jobId,
      partner: publicIdentity(identity).keyId,
      manifestHash: signed.ledgerManifestHash,
      policy: { maxEpsilon: m.dp?.targetEpsilon ?? 1e9, maxDelta: m.dp?.delta ?? 0.5 },
    },
    signerFromSecretKey(identity.signSecretKey),
  );
  await client.accept(jobId, { accepted: true, statement });
  return { client, signed };
}

/** A partner that accepts the job and then never does anything else (it keeps rounds from closing). */
export async function acceptOnly(world: AttackWorld, i: number, jobId: string, url = world.coordinator.url): Promise<void> {
  await acceptAs(url, world.partners[i].identity, jobId);
}

/**
 * A key-holding partner driven step by step by the test: it accepts, unseals its job key and builds
 * honest submissions with the library's partner runtime — and then, being curious, decrypts whatever
 * it can with its key. Its own contribution it reads back by decrypting its own ciphertexts.
 */
export class CuriousPartner {
  private constructor(
    readonly client: CoordinatorClient,
    readonly manifest: JobManifest,
    readonly runtime: PartnerRuntime<SgdState>,
    private readonly scheme: SecureSumScheme,
    private readonly cipher: VectorCipher,
  ) {}

  static async join(world: AttackWorld, i: number, jobId: string, url = world.coordinator.url): Promise<CuriousPartner> {
    const identity = world.partners[i].identity;
    const { client, signed } = await acceptAs(url, identity, jobId);
    const manifest = signed.manifest;
    const sealed = await waitFor(() => client.sealedKey(jobId).catch(() => null), 'the sealed job key', 30_000, POLL_MS);
    const secretKey = openJobKey(jobId, sealed, Buffer.from(manifest.owner.boxPublicKey, 'base64'), identity);
    const scheme = await openSecureSum(manifest.encryption);
    const d = await world.partnerData(i);
    const runtime = new PartnerRuntime<SgdState>({
      manifest,
      workload: sgdWorkload,
      keyId: publicIdentity(identity).keyId,
      signer: signerFromSecretKey(identity.signSecretKey),
      train: d.train,
      test: d.test,
      scheme,
      secretKey,
      budget: new MemoryBudgetGuard(1e9),
    });
    const p = new CuriousPartner(client, manifest, runtime, scheme, scheme.cipher(secretKey));
    world.cleanups.push(() => p.dispose());
    return p;
  }

  /** Builds and uploads this partner's honest submission for `round` (attempt 0); returns the envelope. The round's kind comes from the plan. */
  async submit(round: number, _kind?: 'train' | 'evaluate'): Promise<Uint8Array> {
    const r = await this.runtime.buildSubmission(round, 0);
    if (r.status !== 'submitted') throw new Error(`curious partner: round ${round} refused: ${r.reason}`);
    await this.client.submit(this.manifest.jobId, round, r.body);
    this.runtime.acknowledged(round, 0);
    return r.body;
  }

  /** Decrypts one of its own ciphertext parts (from an envelope it built). */
  decryptOwn(envelope: Uint8Array, part: string, length: number): Float64Array {
    const { meta, parts } = decodeUpdate(envelope);
    return this.decode(meta.round, part, parts[part], length);
  }

  /** Decrypts and decodes a part as key holders do (it travels scaled to its declared bound: part-encoding.ts). */
  private decode(round: number, part: string, blob: Uint8Array, length: number): Float64Array {
    const spec = planOf(sgdWorkload, this.manifest, round).parts.find((p) => p.name === part);
    if (!spec || spec.length !== length) return this.cipher.decrypt(blob, length);
    return decodePart(spec, this.cipher.decrypt(blob, wireLength(spec, this.scheme.maxAbsInput)), this.scheme.maxAbsInput);
  }

  /** Decrypts a published sum, or returns null when the coordinator publishes no such part. */
  async decryptPublished(round: number, part: 'update' | 'evaluation', length: number): Promise<Float64Array | null> {
    const blob = await this.client.aggregate(this.manifest.jobId, round, part).catch(() => null);
    return blob ? this.decode(round, part, blob, length) : null;
  }

  /** Applies the round's published sum like an honest partner (checking its signed contents) and reports the model hash. */
  async follow(round: number): Promise<void> {
    const { jobId } = this.manifest;
    const hash = await this.runtime.applyAggregate(
      round,
      { update: await this.client.aggregate(jobId, round, 'update') },
      await this.client.contents(jobId, round),
    );
    await this.client.reportModelHash(this.manifest.jobId, round, hash);
  }

  dispose(): void {
    this.cipher.dispose();
    this.runtime.dispose();
    this.scheme.dispose();
  }
}

/**
 * Watches a partner node's answer to a job: resolves as soon as it accepts (the node is then killed
 * unless `keepRunning`) or exits. `uploaded` counts its update uploads so far.
 */
export async function verdictOf(
  world: AttackWorld,
  node: PartnerNode,
  jobId: string,
  o: { proxy?: LyingProxy; timeoutMs?: number; keepRunning?: boolean } = {},
): Promise<{ accepted: boolean; answers: boolean[]; uploaded: number; exit: { code: number | null; tail: string[] } | null }> {
  const proxy = o.proxy ?? world.proxy;
  const answers = () => acceptances(world, node.keyId, jobId, proxy);
  await waitFor(() => answers().includes(true) || !node.proc.running, `${node.proc.name} to accept or exit`, o.timeoutMs ?? 120_000);
  const accepted = answers().includes(true);
  if (accepted && !o.keepRunning) await node.kill();
  const exit = node.proc.exits.at(-1) ?? null;
  return { accepted, answers: answers(), uploaded: uploads(world, node.keyId, proxy).length, exit: exit && { code: exit.code, tail: exit.tail } };
}
