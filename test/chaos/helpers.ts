import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { identityFromSeed, publicIdentity, readIdentityFile, writeIdentityFile, type Identity } from '../../src/crypto/identity.ts';
import { openJobKey } from '../../src/crypto/key-ceremony.ts';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { loadSchema, type DatasetSchema } from '../../src/data/schema.ts';
import { partitionIid } from '../../src/data/partition.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import type { RoundContents, SubmissionRecord } from '../../src/federation/submission-record.ts';
import { MASKED_PART, roundEncoding } from '../../src/federation/secagg/round-config.ts';
import { SecaggStore } from '../../coordinator/secagg-store.ts';
import {
  parseManifest,
  signManifest,
  type EncryptionSpec,
  type JobManifest,
  type SignedManifest,
  MANIFEST_SCHEMA_VERSION,
} from '../../src/federation/manifest.ts';
import { StateTracker } from '../../src/federation/state-tracker.ts';
import { decodePart, wireLength } from '../../src/federation/part-encoding.ts';
import { planOf } from '../../src/federation/workload.ts';
import { openSecureSum } from '../../src/federation/secure-sum.ts';
import { sgdWorkload, updateLength, WEIGHT_UNIT } from '../../src/federation/workloads/sgd/index.ts';
import { loadPartnerData } from '../../cli/partner-data.ts';
import { freePort } from '../../cli/free-port.ts';
import { openStoreDb } from '../../coordinator/sql/open.ts';
export { freePort };

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_MAIN = join(ROOT, 'cli', 'main.ts');
export const PARTNER_ENTRY = join(ROOT, 'test', 'chaos', 'partner-entry.ts');
export const HOLDOUT = 0.2;
export const SPLIT_SEED = 7;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Fixture: partner CSVs, identity files and policies, written once and shared by every run

export interface ChaosPartner {
  name: string;
  identity: Identity;
  identityFile: string;
  csv: string;
  policyFile: string;
  /** Training rows after the node's own hold-out split: the weight it puts into every sum. */
  trainRows: number;
}

export interface ChaosFixture {
  dir: string;
  schema: DatasetSchema;
  schemaFile: string;
  owner: Identity;
  partners: ChaosPartner[];
}

/**
 * Identities are derived from fixed seeds: local training seeds mix in the partner's key id
 * (src/federation/workloads/sgd/index.ts), so two runs reach the same model only with the same keys.
 */
export async function prepareFixture(dir: string, o: { partners: number; rowsPerPartner: number; seed: number }): Promise<ChaosFixture> {
  mkdirSync(dir, { recursive: true });
  const bundled = BUNDLED_DATASETS['telco-churn'];
  const schema = await loadSchema(bundled.schema);
  const text = readFileSync(bundled.csv, 'utf8');
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(eol).filter((l) => l.length > 0);
  const header = lines[0];
  const rows = lines.slice(1, 1 + o.partners * o.rowsPerPartner);
  const parts = partitionIid(rows.length, o.partners, o.seed);
  const seedOf = (label: string) => new Uint8Array(createHash('sha256').update(`fedmark-chaos|${label}`).digest());
  const owner = identityFromSeed('chaos-owner', seedOf('owner'));
  const partners: ChaosPartner[] = [];
  for (const [i, idx] of parts.entries()) {
    const name = `partner-${String.fromCharCode(97 + i)}`;
    const pdir = join(dir, 'fixture', name);
    mkdirSync(pdir, { recursive: true });
    const csv = join(pdir, 'data.csv');
    writeFileSync(csv, [header, ...Array.from(idx, (r) => rows[r])].join(eol) + eol);
    const identity = identityFromSeed(name, seedOf(name));
    const identityFile = join(pdir, 'identity.json');
    writeIdentityFile(identityFile, identity, { force: true });
    const policyFile = join(pdir, 'policy.json');
    const data = await loadPartnerData(csv, schema, HOLDOUT, SPLIT_SEED);
    partners.push({ name, identity, identityFile, csv, policyFile, trainRows: data.train.n });
  }
  return { dir, schema, schemaFile: bundled.schema, owner, partners };
}

/** A partner policy as the demo writes it: the per-job limit is exactly the job's target ε. */
export function writePolicies(f: ChaosFixture, manifest: JobManifest, maxEpsilonPerJob: number): void {
  for (const p of f.partners) {
    writeFileSync(
      p.policyFile,
      JSON.stringify({
        partner: p.name,
        datasetId: `telco-churn:${p.name}`,
        maxEpsilonPerJob,
        lifetimeEpsilon: 10 * maxEpsilonPerJob,
        maxDelta: 1e-5,
        allowedColumns: manifest.dataset.columns,
        allowedPurposes: [manifest.purpose],
        trustedOwnerKeyIds: [manifest.owner.keyId],
      }),
    );
  }
}

export function makeManifest(
  f: ChaosFixture,
  o: { jobId: string; rounds: number; epsilon: number | null; seed: number; encryption?: EncryptionSpec },
): { manifest: JobManifest; signed: SignedManifest } {
  const manifest = parseManifest({
    ...jobPreset({
      jobId: o.jobId,
      purpose: 'churn-model',
      schema: f.schema,
      partners: f.partners.length,
      rounds: o.rounds,
      epsilon: o.epsilon,
      seed: o.seed,
      encryption: o.encryption,
    }),
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: new Date().toISOString(),
    owner: publicIdentity(f.owner),
    partners: f.partners.map((p) => publicIdentity(p.identity)),
  });
  return { manifest, signed: signManifest(manifest, f.owner) };
}

// ---------------------------------------------------------------------------------------------
// Processes

export interface ExitRecord {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** SIGKILLed by the test on purpose (a chaos kill), not a crash of its own. */
  killedByTest: boolean;
  /** Last lines it wrote before exiting (to name the error of an unexpected exit). */
  tail: string[];
  at: number;
}

type LineListener = (line: string, json: Record<string, unknown> | null) => void;

/**
 * One node as a separate OS process, started as `node --import tsx FILE ARGS` (not through the tsx
 * CLI, which runs the program in a grandchild that a SIGKILL of the tsx parent would orphan).
 * stdout and stderr go to a log file that survives restarts; every line is also handed to listeners.
 */
export class NodeProcess {
  child: ChildProcess | null = null;
  readonly exits: ExitRecord[] = [];
  starts = 0;
  private readonly listeners = new Set<LineListener>();
  private readonly log: WriteStream;
  private tail: string[] = [];
  private killing = false;
  private exited: Promise<ExitRecord> | null = null;

  constructor(
    readonly name: string,
    readonly file: string,
    readonly args: string[],
    readonly logPath: string,
  ) {
    mkdirSync(dirname(logPath), { recursive: true });
    this.log = createWriteStream(logPath, { flags: 'a' });
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.starts++;
    this.killing = false;
    this.tail = [];
    this.log.write(`--- start #${this.starts} of ${this.name} at ${new Date().toISOString()}\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', this.file, ...this.args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env },
    });
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        this.log.write(`${line}\n`);
        this.tail.push(line);
        if (this.tail.length > 20) this.tail.shift();
        let json: Record<string, unknown> | null = null;
        if (line.startsWith('{')) {
          try {
            json = JSON.parse(line) as Record<string, unknown>;
          } catch {
            json = null;
          }
        }
        for (const l of [...this.listeners]) l(line, json);
      });
    }
    this.exited = new Promise((res) => {
      child.once('exit', (code, signal) => {
        // Let readline flush the last lines into the tail before recording them.
        setImmediate(() => {
          const rec: ExitRecord = { code, signal, killedByTest: this.killing, tail: [...this.tail], at: Date.now() };
          this.exits.push(rec);
          this.log.write(`--- exit of ${this.name}: code ${code} signal ${signal}${this.killing ? ' (killed by the test)' : ''}\n`);
          res(rec);
        });
      });
    });
  }

  onLine(l: LineListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Resolves with the first line (from now on) for which `pred` holds. */
  waitForLine(pred: (line: string, json: Record<string, unknown> | null) => boolean, timeoutMs: number, what: string): Promise<string> {
    return new Promise((res, rej) => {
      const t = setTimeout(() => {
        off();
        rej(new Error(`${this.name}: no ${what} within ${timeoutMs} ms; see ${this.logPath}`));
      }, timeoutMs);
      const off = this.onLine((line, json) => {
        if (!pred(line, json)) return;
        clearTimeout(t);
        off();
        res(line);
      });
    });
  }

  waitExit(): Promise<ExitRecord> {
    if (!this.exited) throw new Error(`${this.name} was never started`);
    return this.exited;
  }

  /** SIGKILL: no handler runs, nothing is flushed — the process just stops where it is. */
  async kill(): Promise<ExitRecord | null> {
    if (!this.running) return null;
    this.killing = true;
    this.child!.kill('SIGKILL');
    return this.waitExit();
  }

  /** Freezes the process in place (SIGSTOP) so the test can look at its files before killing it. */
  freeze(): boolean {
    if (!this.running) return false;
    this.killing = true;
    return this.child!.kill('SIGSTOP');
  }

  /** Graceful stop (SIGTERM), SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.killing = true;
    const exited = this.waitExit();
    this.child!.kill('SIGTERM');
    const t = setTimeout(() => this.running && this.child!.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }

  close(): void {
    if (this.running) this.child!.kill('SIGKILL');
    this.log.end();
  }
}

/**
 * Restarts a node whenever it exits except on purpose-free success (code 0) or a verdict exit
 * (code 3 = the job ended other than completed). This is what a process supervisor (systemd
 * Restart=on-failure) does. Every exit the test did not cause is kept in `unexpectedExits`.
 */
export class Supervisor {
  readonly unexpectedExits: (ExitRecord & { node: string })[] = [];
  private stopped = false;
  private readonly done = new Map<string, Promise<ExitRecord>>();

  constructor(
    readonly nodes: NodeProcess[],
    private readonly restartDelayMs = 300,
  ) {}

  start(): void {
    for (const n of this.nodes) {
      n.start();
      this.done.set(n.name, this.follow(n));
    }
  }

  private async follow(n: NodeProcess): Promise<ExitRecord> {
    for (;;) {
      const rec = await n.waitExit();
      if (!rec.killedByTest) {
        if (rec.code === 0 || rec.code === 3) return rec;
        this.unexpectedExits.push({ ...rec, node: n.name });
      }
      if (this.stopped) return rec;
      await sleep(this.restartDelayMs);
      if (this.stopped) return rec;
      n.start();
    }
  }

  /** The final exit of every node (code 0 or 3), or an error after `timeoutMs`. */
  async finished(timeoutMs: number): Promise<ExitRecord[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () =>
          rej(
            new Error(
              `nodes did not finish within ${timeoutMs} ms: ${this.nodes.map((n) => `${n.name} (${n.running ? 'running' : 'down'}, ${n.starts} starts)`).join(', ')}`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([Promise.all(this.nodes.map((n) => this.done.get(n.name)!)), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const n of this.nodes) n.close();
  }
}

/** The node's final JSON line ({state, rounds, modelHash}), printed by cli/node-commands.ts. */
export function finalLine(n: NodeProcess): { state: string; rounds: number; modelHash: string | null } | null {
  const last = n.exits[n.exits.length - 1];
  if (!last) return null;
  for (const line of [...last.tail].reverse()) {
    if (!line.startsWith('{"state"')) continue;
    return JSON.parse(line) as { state: string; rounds: number; modelHash: string | null };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// What the coordinator persisted, read back after it has stopped

export interface StoredRound {
  round: number;
  attempt: number;
  kind: string;
  state: string;
  /** rounds.submissions (the counter the coordinator bumps with each accepted submission). */
  counter: number;
  submitters: string[];
  updateSummands: number | null;
  evalSummands: number | null;
  /** Σ of partner weights in the decrypted update sum (train rounds), i.e. Σ rows / WEIGHT_UNIT. */
  decryptedWeight: number | null;
}

export interface StoredJob {
  state: string;
  rounds: StoredRound[];
  /** Rows of the submissions table: one per (round, attempt, partner) by its primary key. */
  submissionRows: { round: number; attempt: number; key_id: string }[];
  /** The global model after each closed training round, replayed from the stored sums. */
  replayed: { round: number; hash: string; params: Float64Array }[];
}

/**
 * Opens the coordinator's store (its data dir's SQLite file, or the PostgreSQL `store` URL) read-only, reads every round's sums and submissions and,
 * with a partner's own sealed copy of the job key, decrypts the sums and replays the server step:
 * the model that the published aggregates define, independent of any node's report. A masked job's
 * rounds are opened as a key holder opens them (secagg/open.ts): the one masked sum with its
 * attempt's evidence from the stage log, checked against the coordinator key in `dataDir`.
 */
export async function readStoredJob(dataDir: string, manifest: JobManifest, partner: Identity, store?: string): Promise<StoredJob> {
  const { db } = openStoreDb(store ?? join(dataDir, 'coordinator.sqlite'), { writer: false });
  const scheme = await openSecureSum(manifest.encryption);
  const masking = scheme.masking ?? null;
  try {
    const jobId = manifest.jobId;
    const job = db.prepare('SELECT state FROM jobs WHERE job_id = ?').get(jobId) as { state: string } | undefined;
    if (!job) throw new Error(`job ${jobId} is not in ${dataDir}`);
    const keyId = publicIdentity(partner).keyId;
    const sealed = db.prepare('SELECT blob FROM sealed_keys WHERE job_id = ? AND key_id = ?').get(jobId, keyId) as { blob: Buffer } | undefined;
    if (!sealed) throw new Error(`no sealed key for ${partner.name}`);
    const sk = openJobKey(jobId, new Uint8Array(sealed.blob), Buffer.from(manifest.owner.boxPublicKey, 'base64'), partner);
    const cipher = scheme.cipher(sk);
    const coordinatorKey = masking ? publicIdentity(readIdentityFile(join(dataDir, 'coordinator.key.json'))).signPublicKey : null;
    const tracker = new StateTracker(manifest, sgdWorkload, scheme, sk, coordinatorKey);
    const secagg = new SecaggStore(db);
    const updateValues = updateLength(manifest);
    const partSum = (round: number, attempt: number, part: string) =>
      (
        db.prepare('SELECT sum FROM round_parts WHERE job_id = ? AND round = ? AND attempt = ? AND part = ?').get(jobId, round, attempt, part) as
          { sum: Buffer } | undefined
      )?.sum ?? null;
    const submissionRows = db
      .prepare('SELECT round, attempt, key_id FROM submissions WHERE job_id = ? ORDER BY round, attempt, key_id')
      .all(jobId) as StoredJob['submissionRows'];
    const rows = db.prepare('SELECT round, attempt, kind, state, submissions FROM rounds WHERE job_id = ? ORDER BY round, attempt').all(jobId) as {
      round: number;
      attempt: number;
      kind: string;
      state: string;
      submissions: number;
    }[];
    const rounds: StoredRound[] = [];
    const replayed: StoredJob['replayed'] = [];
    try {
      for (const r of rows) {
        const plan = planOf(sgdWorkload, manifest, r.round);
        // The sum that carries `part`: its own (CKKS) or the attempt's one masked vector, which holds every part.
        const carrier = (part: string): { blob: Buffer; length: number } | null => {
          const spec = plan.parts.find((p) => p.name === part);
          if (!spec) return null;
          if (!masking) {
            const blob = partSum(r.round, r.attempt, part);
            return blob ? { blob, length: wireLength(spec, scheme.maxAbsInput) } : null;
          }
          const blob = partSum(r.round, r.attempt, MASKED_PART);
          return blob ? { blob, length: roundEncoding(manifest, plan, masking.plainModulus).totalSlots } : null;
        };
        const summands = (c: { blob: Buffer; length: number } | null) => (c ? scheme.summands(new Uint8Array(c.blob), c.length) : null);
        const update = carrier('update');
        const contents = () => {
          // The contents the coordinator publishes with the sums: the stored uploads' signed records (and a masked attempt's evidence).
          const metas = db
            .prepare('SELECT meta FROM submissions WHERE job_id = ? AND round = ? AND attempt = ? ORDER BY key_id')
            .all(jobId, r.round, r.attempt) as { meta: string }[];
          const records = metas.map((m) => (JSON.parse(m.meta) as { record: SubmissionRecord }).record);
          const ev = masking ? secagg.event(jobId, r.round, r.attempt, 'close-unmask', '') : undefined;
          return ev
            ? { round: r.round, attempt: r.attempt, records, secagg: (JSON.parse(ev.body) as { evidence: unknown }).evidence }
            : { round: r.round, attempt: r.attempt, records };
        };
        let decryptedWeight: number | null = null;
        let opened: Record<string, Float64Array> | null = null;
        if (update && masking && r.state === 'closed') {
          // Masked residues mean nothing one by one: only the unmasked sum of a closed attempt decodes.
          opened = await tracker.open(r.round, { [MASKED_PART]: new Uint8Array(update.blob) }, contents() as RoundContents, null, 'all');
          decryptedWeight = opened.update[updateValues - 1];
        } else if (update && !masking) {
          // Decoded as key holders decode it: the part travels scaled to its declared bound (part-encoding.ts).
          const spec = plan.parts.find((p) => p.name === 'update')!;
          decryptedWeight = decodePart(spec, cipher.decrypt(new Uint8Array(update.blob), update.length), scheme.maxAbsInput)[updateValues - 1];
        }
        rounds.push({
          round: r.round,
          attempt: r.attempt,
          kind: r.kind,
          state: r.state,
          counter: r.submissions,
          submitters: submissionRows.filter((s) => s.round === r.round && s.attempt === r.attempt).map((s) => s.key_id),
          updateSummands: summands(update),
          evalSummands: summands(carrier('evaluation')),
          decryptedWeight,
        });
        if (r.state === 'closed' && r.kind === 'train' && update) {
          opened ??= await tracker.open(r.round, { update: new Uint8Array(update.blob) }, contents() as RoundContents, null, 'state');
          tracker.apply(r.round, opened);
          replayed.push({ round: r.round, hash: tracker.hash, params: Float64Array.from(tracker.state.params) });
        }
      }
    } finally {
      cipher.dispose();
      tracker.dispose();
    }
    return { state: job.state, rounds, submissionRows, replayed };
  } finally {
    db.close();
    scheme.dispose();
  }
}

export const expectedWeight = (partners: ChaosPartner[]): number => partners.reduce((a, p) => a + p.trainRows / WEIGHT_UNIT, 0);

export function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Resolves when `path` satisfies `pred`, checking on every change in its directory (and every 10 ms). */
export function whenFile(path: string, pred: (text: string | null) => boolean, signal: AbortSignal): Promise<void> {
  return new Promise((res, rej) => {
    const check = () => {
      if (signal.aborted) {
        clearInterval(t);
        rej(signal.reason);
        return;
      }
      let text: string | null = null;
      try {
        text = existsSync(path) ? readFileSync(path, 'utf8') : null;
      } catch {
        text = null;
      }
      if (pred(text)) {
        clearInterval(t);
        res();
      }
    };
    const t = setInterval(check, 10);
    check();
  });
}
