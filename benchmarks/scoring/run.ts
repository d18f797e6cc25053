/**
 * Scoring benchmarks → benchmarks/results/scoring.json
 *
 *   npx tsx benchmarks/scoring/run.ts            # full: throughput, memory at 1e5 / 1e6 / 5e6 rows, serve latency (≈ 10–15 min on a loaded 2-core machine)
 *   npx tsx benchmarks/scoring/run.ts --quick    # small sizes, no JSON written unless --out is given
 *   npx tsx benchmarks/scoring/run.ts --only memory --sizes 100000,1000000 --gc natural   # re-measure one section (others kept)
 *
 * 1. Throughput (rows/s), side by side in one process for each model kind: the scoring stage alone
 *    (encoded rows → logits, contributions, reason codes), `scoreFile` file → file (CSV read,
 *    consent, encoding, scoring, reasons, deciles, output), next to the data loader training uses
 *    (`loadDataset`, byte-level CSV → encoded rows) and scoring's own read + encode of the same file.
 * 2. Peak memory: the real `fedmark score` command in a child process on files of growing size;
 *    peak RSS should stay flat while the file grows 50×.
 * 3. `fedmark serve`: p50/p99 latency of single-customer requests from 20 concurrent keep-alive
 *    clients on loopback, with bearer-token and with signed requests.
 * 4. Attribution error: completeness gap of the tanh quadrature by number of points.
 * The machine is shared: compare figures within one run, not across runs.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL, fileURLToPath } from 'node:url';
import http from 'node:http';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir, loadavg, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { loadDataset } from '../../src/data/encode.ts';
import { featureCount, featureNames, loadSchema } from '../../src/data/schema.ts';
import { schemaHash } from '../../src/federation/job-presets.ts';
import { initParameters } from '../../src/model/params.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { saveModel } from '../../src/model/tfjs-io.ts';
import { generateIdentity, publicIdentity, writeIdentityFile } from '../../src/crypto/identity.ts';
import { signRequest } from '../../src/crypto/request-signing.ts';
import { scoreFile } from '../../src/scoring/batch.ts';
import { loadScoringModel } from '../../src/scoring/model.ts';
import { ReasonCoder } from '../../src/scoring/reasons.ts';
import { readScoringBatches, ScoringEncoder } from '../../src/scoring/rows.ts';
import { saveGbdtModelDir } from '../../src/scoring/tree-scorer.ts';
import { featureLayout, parseGbdtParams, trainPooled } from '../../src/trees/index.ts';
import { completenessGap } from '../../src/scoring/scorer.ts';
import { denseScorer } from '../../src/scoring/dense-scorers.ts';
import { buildBaseline } from '../../src/scoring/baseline.ts';
import { createRng } from '../../src/util/rng.ts';
import { freePort } from '../../cli/free-port.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const option = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const outPath = option('out') ?? (quick ? null : join(ROOT, 'benchmarks/results/scoring.json'));
const log = (m: string) => process.stderr.write(`[scoring-bench] ${m}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = mkdtempSync(join(tmpdir(), 'fedmark-scoring-bench-'));
const schemaPath = BUNDLED_DATASETS['telco-churn'].schema;
const schema = await loadSchema(schemaPath);
const d = featureCount(schema);
const PURPOSE = 'churn-model';

const SPECS: Record<string, ModelSpec> = {
  logistic: { kind: 'logistic' },
  'mlp-relu-16': { kind: 'mlp', hidden: [16], activation: 'relu' },
  'mlp-tanh-32-16': { kind: 'mlp', hidden: [32, 16], activation: 'tanh' },
};
/** Model kinds of the throughput section: the dense specs and a gradient-boosted ensemble. */
const KINDS = [...Object.keys(SPECS), 'gbdt-100x4'];

async function saveBenchModel(name: string, spec: ModelSpec | 'gbdt'): Promise<string> {
  const dir = join(work, `model-${name}`);
  if (spec === 'gbdt') {
    // XGBoost-like defaults (100 trees of depth 4), trained on the bundled file.
    const train = await loadDataset(BUNDLED_DATASETS['telco-churn'].csv, schema);
    const { model } = trainPooled(parseGbdtParams({}), featureLayout(schema), train);
    saveGbdtModelDir(dir, model, { jobId: 'bench-job', purpose: PURPOSE, schemaHash: schemaHash(schema) });
    return dir;
  }
  const p = initParameters(spec, d, 5);
  const rng = createRng(9);
  for (let i = 0; i < p.length; i++) p[i] = spec.kind === 'logistic' ? rng.normal() * 0.5 : p[i] + rng.normal() * 0.05;
  await saveModel(dir, spec, d, p, { jobId: 'bench-job', purpose: PURPOSE, schemaHash: schemaHash(schema), featureNames: featureNames(schema) });
  return dir;
}

/** The bundled telco file's 7,043 rows repeated (with unique ids) to `rows` data rows. */
async function telcoFile(rows: number): Promise<string> {
  const file = join(work, `telco-${rows}.csv`);
  const lines = readFileSync(BUNDLED_DATASETS['telco-churn'].csv, 'utf8').split(/\r?\n/).filter(Boolean);
  const out = createWriteStream(file);
  out.write(lines[0] + '\n');
  let buf = '';
  for (let i = 0; i < rows; i++) {
    const src = lines[1 + (i % (lines.length - 1))];
    const comma = src.indexOf(',');
    buf += `${src.slice(0, comma)}-${Math.floor(i / (lines.length - 1))}${src.slice(comma)}\n`;
    if (buf.length > 1 << 20) {
      if (!out.write(buf)) await once(out, 'drain');
      buf = '';
    }
  }
  out.end(buf);
  await once(out, 'finish');
  return file;
}

// ------------------------------------------------------------------ 1. throughput
/** Rows per model: the tanh network's quadrature attribution is ~100× slower than the linear split. */
const THROUGHPUT_ROWS: Record<string, number> = { logistic: 200_000, 'mlp-relu-16': 100_000, 'mlp-tanh-32-16': 20_000, 'gbdt-100x4': 100_000 };

async function throughput() {
  const reps = quick ? 1 : 3;
  const results: Record<string, unknown>[] = [];
  for (const name of KINDS) {
    if (kindsWanted && !kindsWanted.includes(name)) continue;
    const rows = quick ? Math.min(20_000, THROUGHPUT_ROWS[name]) : THROUGHPUT_ROWS[name];
    const file = await telcoFile(rows);
    const encoded = await loadDataset(file, schema);
    const dir = await saveBenchModel(name, SPECS[name] ?? 'gbdt');
    const model = await loadScoringModel(dir, schema);
    const coder = new ReasonCoder(schema, model.baseline.x0);
    const stage: number[] = [];
    const logitsOnly: number[] = [];
    const e2e: number[] = [];
    const loaderOnly: number[] = [];
    const readEncode: number[] = [];
    for (let r = 0; r < reps; r++) {
      // Scoring stage on pre-encoded rows, in the batch size the pipeline uses.
      const B = 4096;
      let t = performance.now();
      for (let at = 0; at < encoded.n; at += B) {
        const n = Math.min(B, encoded.n - at);
        model.scorer.logits(encoded.X.subarray(at * d, (at + n) * d), n);
      }
      logitsOnly.push(encoded.n / ((performance.now() - t) / 1000));
      t = performance.now();
      const cell = () => '1';
      for (let at = 0; at < encoded.n; at += B) {
        const n = Math.min(B, encoded.n - at);
        const X = encoded.X.subarray(at * d, (at + n) * d);
        model.scorer.logits(X, n);
        const phi = model.scorer.contributions(X, n);
        for (let i = 0; i < n; i++) coder.top(phi, X, i * d, cell, 3);
      }
      stage.push(encoded.n / ((performance.now() - t) / 1000));
      // The training loader, scoring's read + encode, then the whole scoring run, back to back.
      t = performance.now();
      const loaded = await loadDataset(file, schema);
      loaderOnly.push(loaded.stats.rowsRead / ((performance.now() - t) / 1000));
      t = performance.now();
      const enc = new ScoringEncoder(schema, { strict: false, where: { name: file, at: (l) => `${file}:${l}` } });
      await readScoringBatches(file, enc, () => undefined);
      readEncode.push(enc.counts.read / ((performance.now() - t) / 1000));
      const s = await scoreFile({ dataPath: file, outPath: join(work, 'out.csv'), schema, model, reasons: 3 });
      e2e.push(s.rows.read / s.seconds);
    }
    const row = {
      model: name,
      rows,
      scorerLogitsRowsPerSecond: Math.round(median(logitsOnly)),
      scorerStageRowsPerSecond: Math.round(median(stage)),
      trainingLoaderRowsPerSecond: Math.round(median(loaderOnly)),
      scoringReadEncodeRowsPerSecond: Math.round(median(readEncode)),
      endToEndRowsPerSecond: Math.round(median(e2e)),
      endToEndVsTrainingLoader: Math.round((median(e2e) / median(loaderOnly)) * 1000) / 1000,
      loadAverage1m: Math.round(loadavg()[0] * 10) / 10,
    };
    log(JSON.stringify(row));
    results.push(row);
    rmSync(file, { force: true });
  }
  return results;
}

// ------------------------------------------------------------------ shared partner files
function partnerFiles() {
  const dir = join(work, 'partner');
  mkdirSync(join(dir, 'state'), { recursive: true });
  const id = generateIdentity('bench-partner');
  writeIdentityFile(join(dir, 'id.json'), id, { force: true });
  const typed = schema.columns.filter((c) => 'type' in c || c.role === 'label').map((c) => c.name);
  writeFileSync(
    join(dir, 'policy.json'),
    JSON.stringify({
      partner: 'bench-partner',
      datasetId: 'telco',
      maxEpsilonPerJob: 1,
      lifetimeEpsilon: 2,
      maxDelta: 1e-5,
      allowedColumns: typed,
      allowedPurposes: [PURPOSE],
    }),
  );
  return { dir, identity: join(dir, 'id.json'), policy: join(dir, 'policy.json'), state: join(dir, 'state') };
}

const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

function runChild(script: string, argv: string[], nodeFlags: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeFlags, '--import', loader, script, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr = (stderr + b).slice(-20_000)));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// ------------------------------------------------------------------ 2. memory
async function memory() {
  // --sizes 100000,1000000 and --gc natural|sampled bound a re-measurement's run time.
  const sizes = option('sizes')?.split(',').map(Number) ?? (quick ? [10_000, 100_000] : [100_000, 1_000_000, 5_000_000]);
  if (sizes.some((n) => !(Number.isInteger(n) && n > 0))) throw new Error(`--sizes must be positive integers, got ${option('sizes')}`);
  const gcModes = option('gc') ? [option('gc')] : ['natural', 'sampled'];
  const p = partnerFiles();
  const model = await saveBenchModel('memory', SPECS.logistic);
  const child = fileURLToPath(new URL('./cli-child.ts', import.meta.url));
  const out: Record<string, unknown>[] = [];
  for (const rows of sizes) {
    const file = await telcoFile(rows);
    // natural: V8's own GC (peak RSS includes uncollected garbage); sampled: a forced GC every second
    // measures the live heap (and keeps RSS near it).
    for (const [mode, gc] of (
      [
        ['all', 'natural'],
        ['top-k', 'natural'],
        ['all', 'sampled'],
        ['top-k', 'sampled'],
      ] as const
    ).filter(([, g]) => gcModes.includes(g))) {
      const r = await runChild(
        child,
        [
          'score',
          '--model',
          model,
          '--data',
          file,
          '--schema',
          schemaPath,
          '--out',
          join(work, 'mem-out.csv'),
          '--purpose',
          PURPOSE,
          '--policy',
          p.policy,
          '--identity',
          p.identity,
          '--state-dir',
          p.state,
          '--json',
          ...(mode === 'top-k' ? ['--top-k', '1000'] : []),
        ],
        gc === 'sampled' ? ['--expose-gc'] : [],
      );
      if (r.code !== 0) throw new Error(`fedmark score failed: ${r.stderr}`);
      const s = JSON.parse(r.stdout.trim().split('\n').pop()!);
      const kb = Number(/MAXRSS_KB (\d+)/.exec(r.stderr)![1]);
      const live = Number(/LIVE_MAX_BYTES (\d+)/.exec(r.stderr)![1]);
      const row = {
        rows,
        mode,
        gc,
        fileMB: Math.round(statSync(file).size / 1e5) / 10,
        peakRssMB: Math.round(kb / 102.4) / 10,
        peakLiveHeapMB: gc === 'sampled' ? Math.round(live / 1e5) / 10 : null,
        rowsPerSecond: Math.round(s.rowsPerSecond),
        seconds: Math.round(s.seconds * 10) / 10,
      };
      log(JSON.stringify(row));
      out.push(row);
    }
    rmSync(file, { force: true });
    rmSync(join(work, 'mem-out.csv'), { force: true });
  }
  return out;
}

// ------------------------------------------------------------------ 3. serve latency
async function serveLatency() {
  const p = partnerFiles();
  const model = await saveBenchModel('serve', SPECS.logistic);
  const clientId = generateIdentity('bench-client');
  writeFileSync(join(p.dir, 'client.pub.json'), JSON.stringify(publicIdentity(clientId)));
  const lines = readFileSync(BUNDLED_DATASETS['telco-churn'].csv, 'utf8').split(/\r?\n/).filter(Boolean);
  const head = lines[0].split(',');
  const customers = lines.slice(1, 501).map((l) =>
    Object.fromEntries(
      l
        .split(',')
        .map((v, i) => [head[i], v])
        .filter(([k]) => k !== 'Churn'),
    ),
  );
  const results: Record<string, unknown>[] = [];
  const cpuTicks = (pid: number): number | null => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100 per second on Linux)
    } catch {
      return null;
    }
  };
  // Repetitions alternate the configurations, so a burst of load from other jobs does not land on one only.
  for (let rep = 0; rep < (quick ? 1 : 3); rep++) {
    for (const durability of ['fsync', 'write'] as const) {
      const port = await freePort();
      const server = spawn(
        process.execPath,
        [
          '--import',
          loader,
          join(ROOT, 'cli/main.ts'),
          'serve',
          '--model',
          model,
          '--schema',
          schemaPath,
          '--purpose',
          PURPOSE,
          '--policy',
          p.policy,
          '--identity',
          p.identity,
          '--state-dir',
          join(p.dir, `serve-state-${durability}`),
          '--token-file',
          join(p.dir, 'token'),
          '--client',
          join(p.dir, 'client.pub.json'),
          '--port',
          String(port),
          '--log-level',
          'warn',
          '--rate-limit',
          '100000000',
          '--durability',
          durability,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      server.stdout.on('data', (b) => (out += b));
      server.stderr.on('data', (b) => (out = (out + b).slice(-10_000)));
      try {
        const deadline = Date.now() + 60_000;
        while (!out.includes('listening on') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        if (!out.includes('listening on')) throw new Error(`serve did not start: ${out}`);
        const token = readFileSync(join(p.dir, 'token'), 'utf8').trim();
        const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
        const request = (body: string, headers: Record<string, string>) =>
          new Promise<number>((resolve, reject) => {
            const t = process.hrtime.bigint();
            const req = http.request(
              {
                host: '127.0.0.1',
                port,
                path: '/v1/score',
                method: 'POST',
                agent,
                headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
              },
              (res) => {
                res.resume();
                res.on('end', () =>
                  res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t) / 1e6) : reject(new Error(`status ${res.statusCode}`)),
                );
              },
            );
            req.on('error', reject);
            req.end(body);
          });
        for (const auth of ['token', 'signed'] as const) {
          const perClient = quick ? 40 : 250;
          const runPhase = async (count: number) => {
            const lat: number[] = [];
            const t0 = performance.now();
            await Promise.all(
              Array.from({ length: 20 }, async (_, c) => {
                for (let i = 0; i < count; i++) {
                  const body = JSON.stringify({ customers: [customers[(c * count + i) % customers.length]] });
                  const headers =
                    auth === 'token'
                      ? { authorization: `Bearer ${token}` }
                      : signRequest({ method: 'POST', path: '/v1/score', body: Buffer.from(body), jobId: 'fedmark-serve', round: 0, identity: clientId });
                  lat.push(await request(body, headers));
                }
              }),
            );
            return { lat, seconds: (performance.now() - t0) / 1000 };
          };
          await runPhase(10); // warm-up
          const load = loadavg()[0];
          const before = cpuTicks(server.pid!);
          const { lat, seconds } = await runPhase(perClient);
          const after = cpuTicks(server.pid!);
          lat.sort((a, b) => a - b);
          const q = (x: number) => Math.round(lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] * 100) / 100;
          const row = {
            rep,
            durability,
            auth,
            concurrentClients: 20,
            requests: lat.length,
            p50ms: q(0.5),
            p90ms: q(0.9),
            p99ms: q(0.99),
            maxMs: Math.round(lat[lat.length - 1] * 100) / 100,
            requestsPerSecond: Math.round(lat.length / seconds),
            serverCpuMsPerRequest: before !== null && after !== null ? Math.round(((after - before) * 10 * 1000) / lat.length) / 1000 : null,
            loadAverage1m: Math.round(load * 10) / 10,
          };
          log(JSON.stringify(row));
          results.push(row);
        }
        agent.destroy();
      } finally {
        server.kill('SIGTERM');
        await once(server, 'exit');
      }
    }
  }
  const summary = (['fsync', 'write'] as const).flatMap((durability) =>
    (['token', 'signed'] as const).map((auth) => {
      const rows = results.filter((r) => r.durability === durability && r.auth === auth) as { p50ms: number; p99ms: number }[];
      return {
        durability,
        auth,
        runs: rows.length,
        medianP50ms: median(rows.map((r) => r.p50ms)),
        medianP99ms: median(rows.map((r) => r.p99ms)),
        bestP99ms: Math.min(...rows.map((r) => r.p99ms)),
      };
    }),
  );
  return { runs: results, summary };
}

// ------------------------------------------------------------------ 4. attribution error
async function attributionError() {
  const ds = await loadDataset(BUNDLED_DATASETS['telco-churn'].csv, schema);
  const n = Math.min(ds.n, quick ? 500 : 3000);
  const X = ds.X.subarray(0, n * d);
  const out: Record<string, unknown>[] = [];
  for (const [name, spec] of Object.entries(SPECS)) {
    if (spec.kind === 'logistic') continue;
    const params = initParameters(spec, d, 5);
    const rng = createRng(9);
    for (let i = 0; i < params.length; i++) params[i] = params[i] * 2 + rng.normal() * 0.1;
    for (const points of spec.activation === 'tanh' ? [4, 8, 16, 32, 64] : [32]) {
      const scorer = denseScorer(spec, d, params, buildBaseline(schema), { points });
      const gap = completenessGap(scorer, X, n);
      const row = {
        model: name,
        method: scorer.attribution.method,
        points: spec.activation === 'tanh' ? points : null,
        rows: n,
        maxGap: Math.max(...gap),
        meanGap: gap.reduce((a, b) => a + b, 0) / n,
      };
      log(JSON.stringify(row));
      out.push(row);
    }
  }
  return out;
}

const started = new Date();
// --only throughput,serve,… re-measures some sections and keeps the others from the existing JSON.
const only = option('only')?.split(',');
const want = (section: string) => !only || only.includes(section);
const kindsWanted = option('kinds')?.split(',');
try {
  const previous = only && outPath && existsSync(outPath) ? (JSON.parse(readFileSync(outPath, 'utf8')) as Record<string, unknown>) : {};
  const result: Record<string, unknown> = {
    ...previous,
    date: started.toISOString(),
    quick,
    machine: { cpus: cpus().length, loadAverageAtStart: loadavg().map((x) => Math.round(x * 10) / 10), node: process.version },
    dataset: 'telco-churn (bundled, 7,043 rows repeated with unique ids; 21 columns, d = ' + d + ')',
  };
  // When and under what load each section was measured (sections kept from an earlier run keep theirs).
  const sections = { ...((previous.sections as Record<string, unknown>) ?? {}) } as Record<string, unknown>;
  const measure = async (name: string, key: string, fn: () => Promise<unknown>) => {
    if (!want(name)) return;
    const at = new Date().toISOString();
    const before = loadavg()[0];
    result[key] = await fn();
    sections[key] = { measuredAt: at, loadAverage1m: [Math.round(before * 10) / 10, Math.round(loadavg()[0] * 10) / 10] };
  };
  await measure('throughput', 'throughput', throughput);
  await measure('attribution', 'attributionError', attributionError);
  await measure('serve', 'serve', serveLatency);
  await measure('memory', 'memory', memory);
  result.sections = sections;
  delete result.loadAverageAtEnd;
  delete result.sectionsMeasured;
  const json = JSON.stringify(result, null, 2);
  if (outPath) {
    mkdirSync(dirname(outPath), { recursive: true });
    writeFileSync(outPath, json + '\n');
    log(`wrote ${outPath}`);
  } else process.stdout.write(json + '\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}
