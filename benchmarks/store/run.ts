/**
 * Coordinator store benchmark: the store work of one accepted submission and of one round, on the
 * SQLite default and on PostgreSQL, side by side in one run (backends alternate per repetition).
 *
 *   FEDMARK_BENCH_POSTGRES_URL=postgres://… npx tsx benchmarks/store/run.ts    → benchmarks/results/store-backends.json
 *
 * Options: --partners N (submissions per round, default 10)  --rounds N (default 20)  --sum-kb KB
 * (size of the running encrypted sum rewritten by each submission, default 256)  --reps N (default 3,
 * median)  --out FILE. The URL (or FEDMARK_TEST_POSTGRES_URL) names a server where the role may create
 * databases: each repetition gets a fresh one, dropped afterwards.
 *
 * What a submission costs the store is what JobEngine.submit does inside its transaction: read the
 * round and its part sums, rewrite the sum, insert the submission row, bump the round's counter — plus
 * the replay-protection nonce of the signed request. A round adds opening and closing it. HTTP, CKKS
 * and the ledger are left out: they are the same for both backends.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CoordinatorStore } from '../../coordinator/store.ts';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    partners: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '20' },
    'sum-kb': { type: 'string', default: '256' },
    reps: { type: 'string', default: '3' },
    out: { type: 'string', default: join(here, '../results/store-backends.json') },
  },
});
const partners = Number(args.partners);
const rounds = Number(args.rounds);
const sumBytes = Number(args['sum-kb']) * 1024;
const reps = Number(args.reps);
const pgUrl = process.env.FEDMARK_BENCH_POSTGRES_URL || process.env.FEDMARK_TEST_POSTGRES_URL;
if (!pgUrl) throw new Error('set FEDMARK_BENCH_POSTGRES_URL (or FEDMARK_TEST_POSTGRES_URL) to a PostgreSQL server where the role may create databases');

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** One job of `rounds` rounds × `partners` submissions; returns ms per submission and per round's open+close. */
function workload(store: CoordinatorStore): { submissionMs: number[]; roundMs: number[] } {
  const submissionMs: number[] = [];
  const roundMs: number[] = [];
  const nonces = store.nonceStore();
  const jobId = 'bench';
  store.insertJob({ job_id: jobId, signed_manifest: '{}', state: 'running', created_at: Date.now() });
  const sum = randomBytes(sumBytes);
  for (let r = 1; r <= rounds; r++) {
    let t = performance.now();
    store.transaction(() => {
      store.insertRound({
        job_id: jobId,
        round: r,
        attempt: 0,
        kind: 'train',
        state: 'open',
        stage: null,
        selected: '[]',
        opened_at: Date.now(),
        deadline_at: Date.now() + 60_000,
        base_model_hash: null,
      });
      store.updateJob(jobId, { current_round: r, attempt: 0 });
    });
    let roundOverhead = performance.now() - t;
    for (let p = 0; p < partners; p++) {
      t = performance.now();
      nonces.checkAndRecord(`k${p}`, `${r}-${p}-${randomBytes(8).toString('hex')}`, Date.now() + 300_000);
      store.transaction(() => {
        const cur = store.round(jobId, r, 0)!;
        store.partSums(jobId, r, 0);
        store.putPartSum(jobId, r, 0, 'update', sum);
        store.insertSubmission({
          job_id: jobId,
          round: r,
          attempt: 0,
          key_id: `k${p}`,
          body_hash: 'h',
          meta: '{}',
          part_hashes: '[]',
          received_at: Date.now(),
        });
        store.updateRound(jobId, r, 0, { submissions: cur.submissions + 1 });
      });
      submissionMs.push(performance.now() - t);
    }
    t = performance.now();
    store.transaction(() => store.updateRound(jobId, r, 0, { state: 'closed', closed_at: Date.now() }));
    roundOverhead += performance.now() - t;
    roundMs.push(roundOverhead);
  }
  return { submissionMs, roundMs };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))];

const dir = mkdtempSync(join(tmpdir(), 'fedmark-bench-store-'));
const results: Record<'sqlite' | 'postgres', { submissionMs: number[]; roundMs: number[]; wallMs: number[] }> = {
  sqlite: { submissionMs: [], roundMs: [], wallMs: [] },
  postgres: { submissionMs: [], roundMs: [], wallMs: [] },
};
const loadBefore = loadavg();
try {
  for (let rep = 0; rep < reps; rep++) {
    for (const backend of ['sqlite', 'postgres'] as const) {
      const db = `fedmark_bench_store_${process.pid}_${rep}`;
      let url: string | undefined;
      if (backend === 'postgres') {
        await admin(`CREATE DATABASE ${db}`);
        const u = new URL(pgUrl);
        u.pathname = `/${db}`;
        url = u.toString();
      }
      const store = new CoordinatorStore(join(dir, `${backend}-${rep}`), url);
      const t0 = performance.now();
      try {
        const r = workload(store);
        results[backend].submissionMs.push(...r.submissionMs);
        results[backend].roundMs.push(...r.roundMs);
        results[backend].wallMs.push(performance.now() - t0);
      } finally {
        store.close();
        if (backend === 'postgres') await admin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const summary = (b: 'sqlite' | 'postgres') => ({
  submissionMsMedian: +median(results[b].submissionMs).toFixed(3),
  submissionMsP95: +p95(results[b].submissionMs).toFixed(3),
  submissionsPerSecond: +(1000 / median(results[b].submissionMs)).toFixed(1),
  roundOpenCloseMsMedian: +median(results[b].roundMs).toFixed(3),
  jobWallMsMedian: +median(results[b].wallMs).toFixed(1),
});
const out = {
  benchmark: 'coordinator store: SQLite vs PostgreSQL, the store work per accepted submission and per round',
  date: new Date().toISOString(),
  settings: { partners, rounds, sumBytes, reps, postgres: new URL(pgUrl).host },
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, loadavgBefore: loadBefore, loadavgAfter: loadavg() },
  sqlite: summary('sqlite'),
  postgres: summary('postgres'),
  ratio: {
    submissionPostgresOverSqlite: +(median(results.postgres.submissionMs) / median(results.sqlite.submissionMs)).toFixed(2),
    roundPostgresOverSqlite: +(median(results.postgres.roundMs) / median(results.sqlite.roundMs)).toFixed(2),
  },
};
writeFileSync(args.out!, JSON.stringify(out, null, 2) + '\n');
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
