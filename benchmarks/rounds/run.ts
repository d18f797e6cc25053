/**
 * Round overhead with 5 partner processes: interval polling (today's default, `--poll-ms 200`) side
 * by side with long-polling (the default since issue 14 item 6), on a gbdt job with tiny data and
 * many tree levels, so that a round's wall time is almost all coordination.
 *
 *   npx tsx benchmarks/rounds/run.ts                 # 2 jobs per mode, interleaved → benchmarks/results/rounds-long-poll.json
 *   npx tsx benchmarks/rounds/run.ts --reps 1 --trees 3 --depth 3 --rows 200 --out FILE
 *
 * Every party is its own process, as in a deployment (`fedmark coordinator`, 5 × `fedmark partner`,
 * `fedmark job run`), each job against a fresh coordinator. The per-round wall time is read from the
 * coordinator's own round rows after the job: `closed_at` of round r minus `closed_at` of round r−1,
 * over every round after the first (a full cycle: partners learn of the close, apply the sums,
 * report their hash, learn of the next round, compute and upload, and the round closes). Partner
 * start-up, join and the key ceremony are outside that window.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { freePort } from '../../cli/free-port.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'cli/main.ts');
const loader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const PARTNERS = ['p1', 'p2', 'p3', 'p4', 'p5'];

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}
const count = (name: string, fallback: string) => {
  const n = Number(option(name, fallback));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
  return n;
};
const reps = count('reps', '2');
const trees = count('trees', '4');
const depth = count('depth', '4');
const rows = count('rows', '300');
const out = option('out', join(ROOT, 'benchmarks/results/rounds-long-poll.json'));
const say = (m: string) => process.stderr.write(`${m}\n`);

const MODES = {
  interval: { label: 'interval polling every 200 ms (before: the default)', partnerArgs: ['--poll-ms', '200', '--long-poll-ms', '0'] },
  'long-poll': { label: 'long-polling (now the default)', partnerArgs: ['--poll-ms', '200'] },
} as const;
type Mode = keyof typeof MODES;

const cliSync = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', loader, CLI, ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`fedmark ${args.slice(0, 2).join(' ')} failed: ${r.stderr}`);
  return r.stdout;
};
function cli(...args: string[]): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, ['--import', loader, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (b: Buffer) => (log = (log + b.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return Object.assign(child, { output: () => log });
}
const exited = (c: ChildProcess, ms: number) =>
  new Promise<number | null>((res, rej) => {
    if (c.exitCode !== null) return res(c.exitCode);
    const t = setTimeout(() => rej(new Error(`process ${c.pid} still running after ${ms} ms`)), ms);
    c.once('exit', (code) => (clearTimeout(t), res(code)));
  });

/** Keys, policies and each partner's slice of telco, once for every job. */
function setUp(dir: string): { ownerKeyId: string; header: string } {
  const lines = readFileSync(BUNDLED_DATASETS['telco-churn'].csv, 'utf8').split('\r\n');
  const owner = JSON.parse(cliSync('keys', 'init', '--out', join(dir, 'owner.key.json'), '--name', 'owner')) as { keyId: string };
  for (const [i, name] of PARTNERS.entries()) {
    writeFileSync(join(dir, `${name}.csv`), [lines[0], ...lines.slice(1 + rows * i, 1 + rows * (i + 1))].join('\r\n') + '\r\n');
    writeFileSync(join(dir, `${name}.pub.json`), cliSync('keys', 'init', '--out', join(dir, `${name}.key.json`), '--name', name));
  }
  return { ownerKeyId: owner.keyId, header: lines[0]! };
}

async function runJob(dir: string, mode: Mode, rep: number, ownerKeyId: string) {
  const jobDir = join(dir, `${mode}-${rep}`);
  mkdirSync(jobDir);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const coordinator = cli('coordinator', '--port', String(port), '--data-dir', join(jobDir, 'coord'), '--log-level', 'warn');
  children.push(coordinator);
  const jobId = `rounds-${mode}-${rep}`;
  try {
    const common = [
      '--coordinator',
      url,
      '--identity',
      join(dir, 'owner.key.json'),
      '--job',
      jobId,
      '--schema',
      BUNDLED_DATASETS['telco-churn'].schema,
      '--partner',
      ...PARTNERS.map((n) => join(dir, `${n}.pub.json`)),
      '--purpose',
      'churn-model',
      '--model',
      JSON.stringify({ kind: 'gbdt', splitMode: 'histogram', trees, depth }),
      '--no-dp',
      '--out',
      join(jobDir, 'owner'),
    ];
    cliSync('job', 'run', ...common, '--manifest-only');
    const manifest = JSON.parse(readFileSync(join(jobDir, 'owner', 'manifest.json'), 'utf8')) as { rounds: number; dataset: { columns: string[] } };
    for (const name of PARTNERS) {
      writeFileSync(
        join(jobDir, `${name}.policy.json`),
        JSON.stringify({
          partner: name,
          datasetId: `${name}-customers`,
          maxEpsilonPerJob: 10,
          lifetimeEpsilon: 100,
          maxDelta: 1e-5,
          allowedColumns: manifest.dataset.columns,
          allowedPurposes: ['churn-model'],
          trustedOwnerKeyIds: [ownerKeyId],
          allowNonPrivateJobs: true,
        }),
      );
      children.push(
        cli(
          'partner',
          '--coordinator',
          url,
          '--job',
          jobId,
          '--data',
          join(dir, `${name}.csv`),
          '--schema',
          BUNDLED_DATASETS['telco-churn'].schema,
          '--identity',
          join(dir, `${name}.key.json`),
          '--policy',
          join(jobDir, `${name}.policy.json`),
          '--state-dir',
          join(jobDir, name),
          '--log-level',
          'warn',
          ...MODES[mode].partnerArgs,
        ),
      );
    }
    const owner = cli('job', 'run', ...common);
    children.push(owner);
    const t0 = Date.now();
    const code = await exited(owner, 15 * 60_000);
    if (code !== 0) throw new Error(`job ${jobId}: the owner exited ${code}: ${owner.output()}`);
    const jobWallMs = Date.now() - t0;
    const db = new Database(join(jobDir, 'coord', 'coordinator.sqlite'), { readonly: true });
    const closed = db.prepare("SELECT round, opened_at, closed_at FROM rounds WHERE job_id = ? AND state = 'closed' ORDER BY round").all(jobId) as {
      round: number;
      opened_at: number;
      closed_at: number;
    }[];
    const attempts = (db.prepare('SELECT COUNT(*) AS n FROM rounds WHERE job_id = ?').get(jobId) as { n: number }).n;
    db.close();
    // The manifest counts the training rounds; the job adds its evaluation round.
    if (closed.length < manifest.rounds) throw new Error(`job ${jobId}: ${closed.length} of ${manifest.rounds} training rounds closed`);
    const cycles = closed.slice(1).map((r, i) => r.closed_at - closed[i]!.closed_at);
    const openToClose = closed.map((r) => r.closed_at - r.opened_at);
    const closeToOpen = closed.slice(1).map((r, i) => r.opened_at - closed[i]!.closed_at);
    return {
      mode,
      rep,
      trainingRounds: manifest.rounds,
      rounds: closed.length,
      attempts,
      jobWallMs,
      roundsWallMs: closed.at(-1)!.closed_at - closed[0]!.closed_at,
      msPerRound: { mean: mean(cycles), median: median(cycles) },
      openToCloseMs: { mean: mean(openToClose), median: median(openToClose) },
      closeToNextOpenMs: { mean: mean(closeToOpen), median: median(closeToOpen) },
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => exited(c, 20_000).catch(() => c.kill('SIGKILL'))));
  }
}

const mean = (xs: number[]) => Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'fedmark-bench-rounds-'));
  const loadBefore = loadavg();
  const started = new Date().toISOString();
  try {
    const { ownerKeyId } = setUp(dir);
    const runs: (Awaited<ReturnType<typeof runJob>> & { loadAverage1m: number })[] = [];
    // Interleaved, so that both modes see the same machine load.
    for (let rep = 1; rep <= reps; rep++) {
      for (const mode of Object.keys(MODES) as Mode[]) {
        say(`[rounds] ${mode} #${rep} (load ${loadavg()[0]!.toFixed(1)})`);
        const r = await runJob(dir, mode, rep, ownerKeyId);
        say(`[rounds] ${mode} #${rep}: ${r.rounds} rounds, ${r.msPerRound.median} ms per round (median), job ${r.jobWallMs} ms`);
        runs.push({ ...r, loadAverage1m: Math.round(loadavg()[0]! * 10) / 10 });
      }
    }
    const summary = Object.fromEntries(
      (Object.keys(MODES) as Mode[]).map((m) => {
        const mine = runs.filter((r) => r.mode === m);
        return [
          m,
          { label: MODES[m].label, medianMsPerRound: median(mine.map((r) => r.msPerRound.median)), meanMsPerRound: mean(mine.map((r) => r.msPerRound.mean)) },
        ];
      }),
    );
    const result = {
      benchmark: 'round overhead: interval polling vs long-polling, 5 partner processes',
      started,
      finished: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        node: process.version,
        loadAverageBefore: loadBefore.map((x) => Math.round(x * 10) / 10),
        loadAverageAfter: loadavg().map((x) => Math.round(x * 10) / 10),
      },
      job: {
        dataset: 'telco-churn',
        partners: PARTNERS.length,
        rowsPerPartner: rows,
        model: { kind: 'gbdt', splitMode: 'histogram', trees, depth },
        dp: false,
      },
      method:
        "per round: closed_at(r) − closed_at(r−1) from the coordinator's rounds table, rounds 2..R; jobs interleaved by mode, each against a fresh coordinator process",
      summary,
      ratioIntervalOverLongPoll: Math.round((summary.interval!.medianMsPerRound / summary['long-poll']!.medianMsPerRound) * 100) / 100,
      runs,
    };
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    say(
      `[rounds] wrote ${out}: interval ${summary.interval!.medianMsPerRound} ms vs long-poll ${summary['long-poll']!.medianMsPerRound} ms per round (×${result.ratioIntervalOverLongPoll})`,
    );
  } finally {
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
