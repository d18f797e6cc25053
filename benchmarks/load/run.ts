/**
 * Coordinator load benchmark: N partners upload CKKS-encrypted ~100k-parameter updates for round 1
 * of one job, concurrently, to one coordinator process on loopback. Measures submission latency,
 * round time and the coordinator's peak RSS, for several N, each against a fresh coordinator process.
 *
 *   npx tsx benchmarks/load/run.ts            # N ∈ {10, 25, 50}, all-at-once and bounded (5) → benchmarks/results/load.json
 *   npx tsx benchmarks/load/run.ts --quick    # N ∈ {5, 10}, all-at-once; prints JSON (writes only with --out)
 *
 * Options: --partners 10,25,50  --concurrency all,5  --dataset bank-marketing|telco-churn
 *          --params 100000  --log-level info  --case-timeout-s 300  --out FILE  --keep  --timeline
 *
 * Method (details in benchmarks/load/README.md): the partners' work (encryption, envelope building)
 * is done before the timed phase; only signing and sending each request is inside it. The coordinator
 * runs as its own process (`node --import tsx cli/main.ts coordinator`, i.e. `npx tsx` without the
 * tsx launcher process in between) so its RSS is its alone; the peak is the kernel's VmHWM, reset via
 * /proc/<pid>/clear_refs right before the round, cross-checked by sampling VmRSS every 50 ms.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { manifestLedgerEntry } from '../../owner/genesis.ts';
import type { JobStatus } from '../../src/federation/protocol/schemas.ts';
import { generateIdentity, publicIdentity, type Identity } from '../../src/crypto/identity.ts';
import { sealJobKey } from '../../src/crypto/key-ceremony.ts';
import { isBundledDatasetName, loadBundledSchema } from '../../src/data/bundled.ts';
import { featureNames } from '../../src/data/schema.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { jobKeyCommitment } from '../../src/federation/key-commitment.ts';
import { signSubmissionRecord } from '../../src/federation/submission-record.ts';
import { sha256Hex } from '../../src/util/hash.ts';
import { parseManifest, signManifest, verifySignedManifest, type JobManifest, MANIFEST_SCHEMA_VERSION } from '../../src/federation/manifest.ts';
import { evaluationLayout, sgdWorkload, updateLength } from '../../src/federation/workloads/sgd/index.ts';
import { openSecureSum, type VectorCipher } from '../../src/federation/secure-sum.ts';
import { encodeUpdate } from '../../src/federation/update-codec.ts';
import { histogramLayout } from '../../src/metrics/histogram.ts';
import { parameterCount } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { attestPayload, signerFromSecretKey } from '../../src/privacy/ledger/signing.ts';
import { createRng, deriveSeed } from '../../src/util/rng.ts';
import { freePort } from '../../cli/free-port.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'cli/main.ts');
const SEED = 17;
const SAMPLE_MS = 50;

// --- options -----------------------------------------------------------------------------------

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const quick = flag('quick');
const keep = flag('keep');
const withTimeline = flag('timeline');
const partnerCounts = (option('partners') ?? (quick ? '5,10' : '10,25,50')).split(',').map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new Error(`--partners: ${s} is not an integer in 1..64 (64 = CKKS maxSummands of the default HE parameters)`);
  return n;
});
/** 'all' = every submission in flight at once; a number = at most that many requests in flight. */
const concurrencyModes = (option('concurrency') ?? (quick ? 'all' : 'all,5')).split(',').map((s): number | 'all' => {
  if (s === 'all') return 'all';
  const k = Number(s);
  if (!Number.isInteger(k) || k < 1) throw new Error(`--concurrency: ${s} is neither "all" nor a positive integer`);
  return k;
});
const datasetName = option('dataset') ?? 'bank-marketing';
if (!isBundledDatasetName(datasetName)) throw new Error(`--dataset: unknown bundled dataset "${datasetName}"`);
const targetParams = Number(option('params') ?? 100_000);
const coordinatorLogLevel = option('log-level') ?? 'info';
const caseTimeoutMs = Number(option('case-timeout-s') ?? 300) * 1000;
const outPath = option('out') ?? (quick ? null : join(ROOT, 'benchmarks/results/load.json'));

// --- helpers -----------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
const r3 = (x: number) => Number(x.toPrecision(3));

function percentile(sorted: number[], p: number): number {
  // Nearest rank: with 10 samples p99 is the maximum, which is what it honestly is.
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** VmRSS / VmHWM of a process, in kB, from /proc (Linux only). */
function procMemory(pid: number): { rssKb: number; hwmKb: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name} line`);
    return Number(m[1]);
  };
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

/** A port the OS just handed out; the coordinator binds it right after (tiny race, loopback only). */

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** One hidden layer sized so the model has as close to `target` parameters as a whole width allows. */
function modelForTarget(d: number, target: number): ModelSpec {
  // An MLP d → h → 1 has d·h + h + h + 1 parameters.
  const h = Math.max(1, Math.min(4096, Math.round((target - 1) / (d + 2))));
  return { kind: 'mlp', hidden: [h], activation: 'relu' };
}

// --- the coordinator process -------------------------------------------------------------------

interface CoordinatorProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

async function startCoordinator(dir: string): Promise<CoordinatorProcess> {
  const port = await freePort();
  const logFd = openSync(join(dir, 'coordinator.log'), 'a');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      CLI,
      'coordinator',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data-dir',
      join(dir, 'coordinator'),
      '--log-level',
      coordinatorLogLevel,
    ],
    { cwd: ROOT, stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  if (child.pid === undefined) throw new Error('could not spawn the coordinator process');
  const pid = child.pid;
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((res) => child.once('exit', (code, signal) => res((exitCode = code ?? (signal ? -1 : null)))));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (exitCode !== undefined) return;
    child.kill('SIGTERM');
    const killed = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!killed) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  const end = Date.now() + 60_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`coordinator exited with code ${exitCode} before answering /health; see ${join(dir, 'coordinator.log')}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok && ((await res.json()) as { ok?: boolean }).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > end) {
      await stop();
      throw new Error(`coordinator did not answer ${url}/health within 60 s; see ${join(dir, 'coordinator.log')}`);
    }
    await sleep(SAMPLE_MS);
  }
  return { url, pid, child, exited, stop };
}

// --- partners' pre-computed work ---------------------------------------------------------------

interface PartnerVectors {
  update: Float64Array;
  evaluation: Float64Array;
  updateBlob: Uint8Array;
  evaluationBlob: Uint8Array;
}

function precompute(
  cipher: VectorCipher,
  count: number,
  lengths: { update: number; evaluation: number },
): { vectors: PartnerVectors[]; encryptMsPerPartner: number } {
  const t0 = performance.now();
  const vectors = Array.from({ length: count }, (_, p): PartnerVectors => {
    const rng = createRng(deriveSeed(SEED, 'partner', p));
    // Magnitudes of a weighted model delta; the last value plays the weight.
    const update = Float64Array.from({ length: lengths.update }, () => rng.next() * 2 - 1);
    const evaluation = Float64Array.from({ length: lengths.evaluation }, () => Math.floor(rng.next() * 4));
    return { update, evaluation, updateBlob: cipher.encrypt(update), evaluationBlob: cipher.encrypt(evaluation) };
  });
  return { vectors, encryptMsPerPartner: (performance.now() - t0) / count };
}

// --- one case ----------------------------------------------------------------------------------

interface CaseResult {
  partners: number;
  concurrency: number | 'all';
  ok: boolean;
  error?: string;
  submissions?: { ok: number; failed: number; errors: string[] };
  latencyMs?: { p50: number; p95: number; p99: number; max: number; min: number; mean: number };
  submissionPhaseS?: number;
  /** First to last request start. Even "all at once" starts are spread: signing runs on one client thread. */
  sendSpreadS?: number;
  roundTimeS?: number;
  throughput?: { submissionsPerS: number; mbPerS: number };
  bytesPerSubmission?: number;
  totalBytes?: number;
  rssMB?: {
    afterStart: number;
    beforeRound: number;
    /** Peak during the round: max(VmHWM reset before the round, 50 ms VmRSS samples). */
    peakRound: number;
    peakRoundSampled: number;
    /** VmHWM from process start to just before the round (startup + job setup). */
    peakSetup: number;
    afterRound: number;
    /** Peak during the round minus RSS just before it. */
    roundGrowth: number;
  };
  hwmResetSupported?: boolean;
  /** --timeline: VmRSS every 50 ms from just before the first request, and when each response arrived. */
  rssTimeline?: { ms: number[]; mb: number[]; responsesAtMs: number[] };
  aggregateMaxAbsError?: number;
  setupS?: number;
}

async function runCase(o: {
  partners: number;
  concurrency: number | 'all';
  baseManifest: Omit<JobManifest, 'owner' | 'partners' | 'schemaVersion' | 'createdAt' | 'jobId' | 'partnersPerRound' | 'quorum'>;
  owner: Identity;
  identities: Identity[];
  secretKey: Uint8Array;
  paramsId: string;
  cipher: VectorCipher;
  vectors: PartnerVectors[];
}): Promise<CaseResult> {
  const n = o.partners;
  const label = `N=${n} concurrency=${o.concurrency}`;
  const dir = mkdtempSync(join(tmpdir(), `fedmark-load-n${n}-`));
  const result: CaseResult = { partners: n, concurrency: o.concurrency, ok: false };
  let coord: CoordinatorProcess | null = null;
  const caseAbort = setTimeout(() => {
    // A hung case must not hang the benchmark: stopping the coordinator fails every pending request.
    process.stderr.write(`${label}: case timed out after ${caseTimeoutMs / 1000} s, stopping the coordinator\n`);
    void coord?.stop();
  }, caseTimeoutMs);
  try {
    coord = await startCoordinator(dir);
    const c = coord;
    const afterStart = procMemory(c.pid);
    const tSetup = performance.now();

    const partners = o.identities.slice(0, n);
    const jobId = `load-n${n}-c${o.concurrency}-${Date.now().toString(36)}`;
    const manifest = parseManifest({
      ...o.baseManifest,
      jobId,
      partnersPerRound: n,
      quorum: Math.max(1, Math.ceil(n * 0.6)),
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      createdAt: new Date().toISOString(),
      owner: publicIdentity(o.owner),
      partners: partners.map(publicIdentity),
    });
    const signed = signManifest(manifest, o.owner);
    const ownerClient = new CoordinatorClient(c.url, o.owner);
    await ownerClient.createJob(
      signed,
      manifestLedgerEntry(manifest, o.owner, await ownerClient.coordinatorIdentity(), sgdWorkload.privacy(manifest), jobKeyCommitment(jobId, o.secretKey)),
    );

    // Acceptance as a client node does it: verify the manifest, then send a self-attested statement.
    const clients = partners.map((id) => new CoordinatorClient(c.url, id));
    await pool(clients, 4, async (client, i) => {
      const served = await client.manifest(jobId);
      const m = verifySignedManifest(served);
      const statement = attestPayload(
        {
          jobId,
          partner: publicIdentity(partners[i]).keyId,
          manifestHash: served.ledgerManifestHash,
          policy: { maxEpsilon: m.dp?.targetEpsilon ?? Number.MAX_VALUE, maxDelta: m.dp?.delta ?? 0.5 },
        },
        signerFromSecretKey(partners[i].signSecretKey),
      );
      await client.accept(jobId, { accepted: true, statement });
    });
    // The owner's key ceremony as client/owner.ts runs it: one CKKS secret key, sealed with the job id to each partner.
    for (const p of manifest.partners)
      await ownerClient.putSealedKey(jobId, p.keyId, sealJobKey(jobId, o.secretKey, Buffer.from(p.boxPublicKey, 'base64'), o.owner));

    const status = await ownerClient.status(jobId);
    if (status.state !== 'running' || status.round !== 1 || status.roundState !== 'open') {
      throw new Error(
        `round 1 did not open after setup: ${JSON.stringify({ state: status.state, round: status.round, roundState: status.roundState, reason: status.reason })}`,
      );
    }
    const baseModelHash = sgdWorkload.hash(sgdWorkload.initialState(manifest));
    if (status.baseModelHash !== baseModelHash)
      throw new Error(`coordinator pins base model ${status.baseModelHash}, the workload's initial state gives ${baseModelHash}`);
    if (status.selected.length !== n) throw new Error(`${status.selected.length} partners selected for round 1, expected ${n}`);

    const lengths = { update: updateLength(manifest), evaluation: evaluationLayout(manifest).length };
    if (lengths.update !== o.vectors[0].update.length || lengths.evaluation !== o.vectors[0].evaluation.length) {
      throw new Error(
        `the job needs vectors of ${lengths.update} + ${lengths.evaluation} values, the pre-computed ones hold ${o.vectors[0].update.length} + ${o.vectors[0].evaluation.length}`,
      );
    }
    const bodies = o.vectors.slice(0, n).map((v, i) => {
      const parts = [
        { name: 'update', length: lengths.update, bytes: v.updateBlob },
        { name: 'evaluation', length: lengths.evaluation, bytes: v.evaluationBlob },
      ];
      // Each upload carries its partner's signed submission record, as a partner node sends it.
      const record = signSubmissionRecord(
        {
          jobId,
          round: 1,
          attempt: 0,
          kind: 'train',
          partner: publicIdentity(partners[i]).keyId,
          baseModelHash,
          parts: parts.map((p) => ({ name: p.name, sha256: sha256Hex(p.bytes) })),
        },
        signerFromSecretKey(partners[i].signSecretKey),
      );
      return encodeUpdate({ jobId, round: 1, attempt: 0, kind: 'train', scheme: 'ckks', paramsId: o.paramsId, baseModelHash, dp: null, record }, parts);
    });
    result.setupS = r3((performance.now() - tSetup) / 1000);

    // --- timed phase ---
    await sleep(500); // let the coordinator's post-setup garbage settle before the baseline reading
    const before = procMemory(c.pid);
    let hwmResetSupported = true;
    try {
      writeFileSync(`/proc/${c.pid}/clear_refs`, '5');
    } catch {
      hwmResetSupported = false;
    }
    let sampledPeakKb = before.rssKb;
    const timeline: [number, number][] = [];
    const tRound = performance.now();
    const sampler = setInterval(() => {
      try {
        const rssKb = procMemory(c.pid).rssKb;
        sampledPeakKb = Math.max(sampledPeakKb, rssKb);
        if (withTimeline) timeline.push([Math.round(performance.now() - tRound), mb(rssKb)]);
      } catch {
        /* process gone: the case fails below */
      }
    }, SAMPLE_MS);

    const latencies: number[] = [];
    const responseTimes: number[] = [];
    const errors: string[] = [];
    let firstSend = Infinity;
    let lastSend = 0;
    let lastDone = 0;
    const limit = o.concurrency === 'all' ? n : o.concurrency;
    await pool(bodies, limit, async (body, i) => {
      const t0 = performance.now();
      firstSend = Math.min(firstSend, t0);
      lastSend = Math.max(lastSend, t0);
      try {
        const res = await clients[i].submit(jobId, 1, body);
        if (res.duplicate) throw new Error('acknowledged as a duplicate');
        latencies.push(performance.now() - t0);
        responseTimes.push(Math.round(performance.now() - tRound));
      } catch (err) {
        errors.push(`${partners[i].name}: ${(err as Error).message}`);
      } finally {
        lastDone = Math.max(lastDone, performance.now());
      }
    });

    let closed: JobStatus | null = null;
    const pollEnd = Date.now() + 60_000;
    while (!closed) {
      const s = await ownerClient.status(jobId);
      if (s.closedRounds.includes(1)) closed = s;
      else if (s.state === 'failed' || s.state === 'halted') throw new Error(`job ${s.state}: ${s.reason}`);
      else if (Date.now() > pollEnd)
        throw new Error(
          `round 1 not closed 60 s after the last response: ${JSON.stringify({ roundState: s.roundState, submitted: s.submitted.length, selected: s.selected.length })}`,
        );
      else await sleep(SAMPLE_MS);
    }
    const closedAt = performance.now();
    clearInterval(sampler);
    const afterRound = procMemory(c.pid);
    sampledPeakKb = Math.max(sampledPeakKb, afterRound.rssKb);
    const peakRoundKb = hwmResetSupported ? Math.max(afterRound.hwmKb, sampledPeakKb) : sampledPeakKb;

    // The sum the coordinator published must decrypt to the plain sum: the load did not corrupt it.
    const agg = await ownerClient.aggregate(jobId, 1, 'update');
    const decrypted = o.cipher.decrypt(agg, lengths.update);
    let maxErr = 0;
    for (let j = 0; j < lengths.update; j++) {
      let s = 0;
      for (let p = 0; p < n; p++) s += o.vectors[p].update[j];
      maxErr = Math.max(maxErr, Math.abs(decrypted[j] - s));
    }

    const sorted = [...latencies].sort((a, b) => a - b);
    const totalBytes = bodies.reduce((s, b) => s + b.length, 0);
    const submissionPhaseS = (lastDone - firstSend) / 1000;
    result.submissions = { ok: latencies.length, failed: errors.length, errors: errors.slice(0, 10) };
    if (sorted.length) {
      result.latencyMs = {
        p50: r3(percentile(sorted, 50)),
        p95: r3(percentile(sorted, 95)),
        p99: r3(percentile(sorted, 99)),
        max: r3(sorted[sorted.length - 1]),
        min: r3(sorted[0]),
        mean: r3(sorted.reduce((s, x) => s + x, 0) / sorted.length),
      };
    }
    result.submissionPhaseS = r3(submissionPhaseS);
    result.sendSpreadS = r3((lastSend - firstSend) / 1000);
    result.roundTimeS = r3((closedAt - firstSend) / 1000);
    result.throughput = { submissionsPerS: r3(latencies.length / submissionPhaseS), mbPerS: r3(totalBytes / 1e6 / submissionPhaseS) };
    result.bytesPerSubmission = Math.round(totalBytes / n);
    result.totalBytes = totalBytes;
    result.rssMB = {
      afterStart: mb(afterStart.rssKb),
      beforeRound: mb(before.rssKb),
      peakRound: mb(peakRoundKb),
      peakRoundSampled: mb(sampledPeakKb),
      peakSetup: mb(before.hwmKb),
      afterRound: mb(afterRound.rssKb),
      roundGrowth: mb(peakRoundKb - before.rssKb),
    };
    result.hwmResetSupported = hwmResetSupported;
    if (withTimeline) result.rssTimeline = { ms: timeline.map((x) => x[0]), mb: timeline.map((x) => x[1]), responsesAtMs: responseTimes.sort((a, b) => a - b) };
    result.aggregateMaxAbsError = r3(maxErr);
    if (errors.length) throw new Error(`${errors.length} of ${n} submissions failed; first: ${errors[0]}`);
    if (!(maxErr < 1e-6)) throw new Error(`decrypted aggregate differs from the plain sum by ${maxErr}`);
    result.ok = true;
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    clearTimeout(caseAbort);
    await coord?.stop();
    if (!keep) rmSync(dir, { recursive: true, force: true });
    else result.error = [result.error, `kept ${dir}`].filter(Boolean).join('; ');
  }
  return result;
}

/** Least-squares slope of y over x (MB per partner). */
function slope(points: { x: number; y: number }[]): number | null {
  if (points.length < 2) return null;
  const mx = points.reduce((s, p) => s + p.x, 0) / points.length;
  const my = points.reduce((s, p) => s + p.y, 0) / points.length;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  if (sxx === 0) return null;
  return r3(points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx);
}

// --- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date().toISOString();
  const loadStart = loadavg();
  const schema = await loadBundledSchema(datasetName as 'bank-marketing' | 'telco-churn');
  const maxN = Math.max(...partnerCounts);
  const d = featureNames(schema).length;
  const model = modelForTarget(d, targetParams);
  const {
    jobId: _j,
    partnersPerRound: _c,
    quorum: _q,
    ...rest
  } = jobPreset({ jobId: 'load-probe', schema, partners: maxN, rounds: 1, epsilon: null, model, seed: SEED });
  // The benchmark measures load, not deadlines: a generous deadline keeps a slow shared machine from failing the round.
  const baseManifest = { ...rest, roundDeadlineSeconds: 900 };

  const owner = generateIdentity('owner');
  const identities = Array.from({ length: maxN }, (_, i) => generateIdentity(`partner-${String(i).padStart(2, '0')}`));
  const scheme = await openSecureSum(baseManifest.encryption);
  const secretKey = scheme.generateSecretKey();
  const cipher = scheme.cipher(secretKey);
  if (scheme.scheme !== 'ckks') throw new Error(`the job preset encrypts with ${scheme.scheme}, this benchmark measures CKKS`);
  // The same lengths checkSubmission enforces (the SGD workload's plan, src/federation/workloads/sgd/index.ts); runCase re-checks them.
  const lengths = { update: parameterCount(model, d) + 1, evaluation: histogramLayout(baseManifest.evaluation.segments, baseManifest.evaluation.bins).length };
  process.stderr.write(`model ${JSON.stringify(model)} on ${datasetName} (d=${d}): ${parameterCount(model, d)} parameters; encrypting ${maxN} updates…\n`);
  const { vectors, encryptMsPerPartner } = precompute(cipher, maxN, lengths);

  const cases: CaseResult[] = [];
  try {
    for (const concurrency of concurrencyModes) {
      for (const partners of partnerCounts) {
        if (concurrency !== 'all' && concurrency >= partners && concurrencyModes.includes('all')) continue; // same as 'all'
        process.stderr.write(`N=${partners} concurrency=${concurrency}: starting a fresh coordinator…\n`);
        const r = await runCase({ partners, concurrency, baseManifest, owner, identities, secretKey, paramsId: scheme.paramsId, cipher, vectors });
        cases.push(r);
        process.stderr.write(
          r.ok
            ? `  p50 ${r.latencyMs!.p50} ms, p99 ${r.latencyMs!.p99} ms, round ${r.roundTimeS} s, RSS ${r.rssMB!.beforeRound} → peak ${r.rssMB!.peakRound} MB\n`
            : `  FAILED: ${r.error}\n`,
        );
      }
    }
  } finally {
    cipher.dispose();
    scheme.dispose();
  }

  const growth = concurrencyModes.map((concurrency) => {
    const ok = cases.filter((c) => c.ok && (c.concurrency === concurrency || (concurrency !== 'all' && c.concurrency === 'all' && c.partners <= concurrency)));
    return {
      concurrency,
      peakRssMBPerPartner: slope(ok.map((c) => ({ x: c.partners, y: c.rssMB!.peakRound }))),
      roundGrowthMBPerPartner: slope(ok.map((c) => ({ x: c.partners, y: c.rssMB!.roundGrowth }))),
      points: ok.map((c) => ({ partners: c.partners, peakRoundMB: c.rssMB!.peakRound, roundGrowthMB: c.rssMB!.roundGrowth })),
    };
  });

  const out = {
    benchmark: 'coordinator-load',
    started,
    finished: new Date().toISOString(),
    quick,
    machine: {
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model.split(' ').slice(0, 2).join(' '),
      loadavg1mStart: r3(loadStart[0]),
      loadavg1mEnd: r3(loadavg()[0]),
    },
    setup: {
      dataset: datasetName,
      features: d,
      model,
      parameters: parameterCount(model, d),
      updateLength: lengths.update,
      evaluationLength: lengths.evaluation,
      heParams: baseManifest.encryption,
      dp: null,
      transport: 'plain HTTP on 127.0.0.1, signed requests (Ed25519), one TCP connection per partner',
      coordinator: `node --import tsx cli/main.ts coordinator --log-level ${coordinatorLogLevel} (a fresh process and data dir per case)`,
      encryptMsPerPartner: r3(encryptMsPerPartner),
      rssMethod: 'VmHWM from /proc/<pid>/status after resetting it (clear_refs 5) just before the round; VmRSS sampled every 50 ms as a cross-check',
    },
    cases,
    rssGrowthWithPartners: growth,
  };
  const json = `${JSON.stringify(out, null, 2)}\n`;
  if (outPath) {
    mkdirSync(dirname(outPath), { recursive: true });
    writeFileSync(outPath, json);
    process.stderr.write(`wrote ${outPath}\n`);
  } else {
    process.stdout.write(json);
  }
  if (cases.some((c) => !c.ok)) process.exitCode = 1;
}

await main();
