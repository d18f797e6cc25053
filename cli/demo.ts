import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import cliProgress from 'cli-progress';
import pino from 'pino';
import { generateIdentity, publicIdentity, writeIdentityFile, type Identity } from '../src/crypto/identity.ts';
import { BUNDLED_DATASETS } from '../src/data/bundled.ts';
import { concatDatasets } from '../src/data/encode.ts';
import { FedmarkError } from '../src/errors.ts';
import { jobPreset } from '../src/federation/job-presets.ts';
import { parseManifest, signManifest, type JobManifest , MANIFEST_SCHEMA_VERSION } from '../src/federation/manifest.ts';
import { planDp } from '../src/federation/workloads/sgd/dp-plan.ts';
import { updateLength } from '../src/federation/workloads/sgd/index.ts';
import { auc } from '../src/metrics/classification.ts';
import { initBackend } from '../src/model/backend.ts';
import { initParameters, predictProba } from '../src/model/params.ts';
import { saveModel } from '../src/model/tfjs-io.ts';
import { BudgetStore } from '../src/privacy/budget/store.ts';
import { trainLocal } from '../src/train/local.ts';
import { runJobOwner, type RoundProgress } from '../owner/node.ts';
import { auditLedgers, formatAuditSummary, type AuditFinding } from '../src/privacy/ledger/audit.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import type { LedgerEntry } from '../src/privacy/ledger/entries.ts';
import { composedEpsilon } from '../src/privacy/accountant.ts';
import { writeReport } from '../src/report/html.ts';
import { reportInputFromJob, type JobEvaluation } from '../src/report/from-job.ts';
import { bundledPartners, DATASET_ALIASES, PARTNER_HOLDOUT, withJobOptions } from './partner-data.ts';
import { freePort } from './free-port.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const MAIN = join(here, 'main.ts');
// Nodes run as `node --import tsx main.ts …`: one process each, so killing it kills the node (tsx's
// launcher would leave its child running after a SIGKILL).
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;


export interface DemoOptions {
  dataset: string;
  partners: number;
  rounds: number;
  out?: string;
  json: boolean;
  seed: number;
  epsilon: number | null;
  insecurePlaintext: boolean;
  model: 'logistic' | 'mlp';
  alpha: number;
}

export function registerDemoCommand(program: Command): void {
  withJobOptions(
    program
      .command('demo')
      .description('the main job: a coordinator and N partner nodes as separate processes on 127.0.0.1, federated training on bundled real data'),
  )
    .option('--out <dir>', 'where every artifact of the run goes (default: a new temp dir)')
    .option('--json', 'print one JSON summary at the end', false)
    .option('--model <kind>', 'logistic or mlp', 'logistic')
    .action(async (o: Record<string, string | boolean>) => {
      const summary = await runDemo({
        dataset: String(o.dataset),
        partners: Number(o.partners),
        rounds: Number(o.rounds),
        out: o.out ? String(o.out) : undefined,
        json: Boolean(o.json),
        seed: Number(o.seed),
        epsilon: o.dp === false ? null : Number(o.epsilon),
        insecurePlaintext: Boolean(o.insecurePlaintext),
        model: o.model === 'mlp' ? 'mlp' : 'logistic',
        alpha: Number(o.alpha),
      });
      if (o.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
      // The SEAL wasm module and log streams keep handles open; the demo is done, so end the process.
      process.exit(0);
    });
}


async function waitForHealth(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new FedmarkError('DEMO_COORDINATOR', `the coordinator exited with code ${child.exitCode}; see its log`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new FedmarkError('DEMO_COORDINATOR', `the coordinator did not answer on ${url} within ${timeoutMs} ms`);
}

function spawnNode(args: string[], logFile: string): ChildProcess {
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, ['--import', TSX_LOADER, MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDMARK_LOG_LEVEL: 'info' } });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return child;
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((res) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      res(null);
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      res(code);
    });
  });
}

/** Raw data lines of a bundled CSV by data-row index (the files hold no quoted newlines). */
function rawLines(csvPath: string): { header: string; rows: string[]; eol: string } {
  const text = readFileSync(csvPath, 'utf8');
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(eol);
  if (lines[lines.length - 1] === '') lines.pop();
  return { header: lines[0], rows: lines.slice(1), eol };
}

export interface DemoSummary {
  dataset: string;
  partners: number;
  rounds: number;
  backend: string;
  auc: { federated: number; federatedFromHistograms: number; centralized: number; local: Record<string, number> };
  perRoundAuc: number[];
  encryption: { scheme: string; polyModulusDegree?: number; coeffModulusBits?: number[]; wireBytesPerParameter: number };
  privacy: { delta: number; epsilon: Record<string, number>; noiseMultiplier: number; clipNorm: number; targetEpsilon: number } | null;
  audit: { ok: boolean; findings: AuditFinding[] };
  report: string;
  out: string;
  wallSeconds: number;
}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const t0 = performance.now();
  const datasetName = DATASET_ALIASES[o.dataset];
  if (!datasetName) throw new FedmarkError('DEMO_DATASET', `unknown dataset "${o.dataset}": use bank or telco`);
  if (!(o.partners >= 2 && o.partners <= 50)) throw new FedmarkError('DEMO_PARTNERS', '--partners must be between 2 and 50');
  if (!(o.rounds >= 1)) throw new FedmarkError('DEMO_ROUNDS', '--rounds must be at least 1');
  const out = resolve(o.out ?? join(tmpdir(), `fedmark-demo-${Date.now()}`));
  for (const sub of ['keys', 'logs', 'partners', 'coordinator', 'model']) mkdirSync(join(out, sub), { recursive: true });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const backend = await initBackend({ log: (m) => say(`[fedmark] ${m}`) });

  // 1. Split the bundled data across partners (non-IID label skew) and write each partner's own CSV.
  const bundled = BUNDLED_DATASETS[datasetName];
  const { schema, full, parts, names, splits } = await bundledPartners(datasetName, o.partners, o.alpha, o.seed);
  const raw = rawLines(bundled.csv);
  if (full.n !== raw.rows.length) throw new FedmarkError('DEMO_DATA', `bundled ${datasetName}: ${raw.rows.length - full.n} rows failed to load; see the loader's report`);
  const owner = generateIdentity('data-scientist');
  await writeIdentityFile(join(out, 'keys', 'owner.json'), owner, { force: true });
  const ids: Identity[] = [];
  for (const [i, idx] of parts.entries()) {
    const dir = join(out, 'partners', names[i]);
    mkdirSync(join(dir, 'state'), { recursive: true });
    writeFileSync(join(dir, 'data.csv'), [raw.header, ...Array.from(idx, (r) => raw.rows[r])].join(raw.eol) + raw.eol);
    const id = generateIdentity(names[i]);
    ids.push(id);
    await writeIdentityFile(join(out, 'keys', `${names[i]}.json`), id, { force: true });
  }
  const jobId = `${datasetName}-${Date.now().toString(36)}`;
  const preset = jobPreset({
    jobId,
    purpose: datasetName === 'bank-marketing' ? 'propensity-model' : 'churn-model',
    schema,
    partners: o.partners,
    rounds: o.rounds,
    model: o.model === 'mlp' ? { kind: 'mlp', hidden: [16], activation: 'relu' } : { kind: 'logistic' },
    epsilon: o.epsilon,
    encryption: o.insecurePlaintext ? { scheme: 'plain-insecure' } : undefined,
    seed: o.seed,
  });
  const manifest: JobManifest = parseManifest({ ...preset, schemaVersion: MANIFEST_SCHEMA_VERSION, createdAt: new Date().toISOString(), owner: publicIdentity(owner), partners: ids.map(publicIdentity) });
  const plan = planDp(manifest);
  for (const [i] of parts.entries()) {
    writeFileSync(
      join(out, 'partners', names[i], 'policy.json'),
      JSON.stringify(
        {
          partner: names[i],
          datasetId: `${datasetName}:${names[i]}`,
          maxEpsilonPerJob: plan ? plan.targetEpsilon : 10,
          lifetimeEpsilon: 10,
          maxDelta: 1e-5,
          allowedColumns: manifest.dataset.columns,
          allowedPurposes: [manifest.purpose],
          allowNonPrivateJobs: !plan,
        },
        null,
        2,
      ),
    );
  }
  if (o.insecurePlaintext) say('[fedmark] WARNING: --insecure-plaintext: updates are aggregated in PLAINTEXT; the coordinator can read every update. Benchmarks only.');
  say(`[fedmark] ${datasetName}: ${full.n} rows → ${o.partners} partners (Dirichlet α=${o.alpha}): ${parts.map((p) => p.length).join(', ')} rows; artifacts in ${out}`);
  if (plan) say(`[fedmark] DP-SGD: target ε=${plan.targetEpsilon}, δ=${plan.delta}, q=${plan.samplingRate}, ${plan.stepsPerRound} steps/round → σ=${plan.noiseMultiplier.toFixed(4)}, C=${plan.clipNorm}`);

  // 2. Start the coordinator and the partners' nodes as separate processes.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  const coordinator = spawnNode(['coordinator', '--port', String(port), '--data-dir', join(out, 'coordinator')], join(out, 'logs', 'coordinator.log'));
  children.push(coordinator);
  const cleanup = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
  process.once('exit', cleanup);
  try {
    // Partners boot while the coordinator does: a node waits for its job to appear.
    const clients = names.map((name) =>
      spawnNode(
        [
          'partner',
          '--coordinator', url,
          '--job', jobId,
          '--data', join(out, 'partners', name, 'data.csv'),
          '--schema', bundled.schema,
          '--identity', join(out, 'keys', `${name}.json`),
          '--policy', join(out, 'partners', name, 'policy.json'),
          '--state-dir', join(out, 'partners', name, 'state'),
          '--holdout', String(PARTNER_HOLDOUT),
          '--split-seed', String(o.seed),
          '--poll-ms', '100',
        ],
        join(out, 'logs', `${name}.log`),
      ),
    );
    children.push(...clients);
    await waitForHealth(url, coordinator, 60_000);

    // 3. The data scientist's node: registers the job, runs the key ceremony, follows the rounds.
    const bar = new cliProgress.SingleBar(
      { format: 'rounds [{bar}] {value}/{total} | global AUC {auc} | {eta_formatted} left', hideCursor: true, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    bar.start(manifest.rounds + 1, 0, { auc: '—' });
    const perRoundAuc: number[] = [];
    const logger = pino({ level: 'warn' }, pino.destination({ dest: join(out, 'logs', 'owner.log'), sync: true }));
    const result = await runJobOwner({
      coordinatorUrl: url,
      identity: owner,
      signed: signManifest(manifest, owner),
      log: logger,
      pollMs: 100,
      onRound: (p: RoundProgress) => {
        const a = p.metrics?.auc ?? NaN;
        perRoundAuc.push(a);
        bar.update(p.round, { auc: a.toFixed(4) });
        if (!process.stderr.isTTY) say(`round ${p.round}/${p.totalRounds}: global AUC of the model entering the round ${a.toFixed(4)}`);
      },
    });
    bar.stop();
    if (result.state !== 'completed') throw new FedmarkError('DEMO_JOB', `the job ended ${result.state}: ${result.reason ?? 'no reason given'}; logs in ${join(out, 'logs')}`);
    const codes = await Promise.all(clients.map((c) => waitExit(c, 60_000)));
    codes.forEach((code, i) => code !== 0 && say(`[fedmark] warning: ${names[i]} exited with code ${code}; see ${join(out, 'logs', `${names[i]}.log`)}`));

    // 4. Compare with centralized (all rows pooled) and each partner alone, on the same pooled hold-out.
    const d = manifest.dataset.featureNames.length;
    const pooledTest = concatDatasets(splits.map((s) => s.test));
    const aucOf = (params: Float64Array) => auc(predictProba(manifest.model, d, params, pooledTest.X, pooledTest.n), pooledTest.y);
    const baselineConfig = { epochs: o.rounds * manifest.localTraining.epochs, batchSize: 64, learningRate: 0.1, optimizer: 'sgd' as const, seed: o.seed };
    const init = initParameters(manifest.model, d, o.seed);
    const centralized = await trainLocal(manifest.model, d, init, concatDatasets(splits.map((s) => s.train)), baselineConfig);
    const local: Record<string, number> = {};
    for (const [i, s] of splits.entries()) local[names[i]] = aucOf((await trainLocal(manifest.model, d, init, s.train, baselineConfig)).params);
    await saveModel(join(out, 'model'), manifest.model, d, result.finalState.params, { jobId, dataset: datasetName, modelHash: result.modelHash, featureNames: manifest.dataset.featureNames });

    const epsilon: Record<string, number> = {};
    if (plan) {
      for (const name of names) epsilon[name] = BudgetStore.open(join(out, 'partners', name, 'state', 'privacy-budget.json')).jobEpsilon(jobId, plan.delta);
    }
    const lengths = { update: updateLength(manifest) };
    const updateBytes = readUpdateBytes(out);

    // 5. The ledgers: the coordinator's job ledger and each partner's own, audited together.
    const coordinatorLedger = join(out, 'coordinator.ledger.jsonl');
    copyLedger(join(out, 'coordinator', 'ledgers', `${jobId}.ledger.jsonl`), coordinatorLedger);
    const partnerLedgers = names.map((name) => {
      const dest = join(out, `${name}.ledger.jsonl`);
      copyLedger(join(out, 'partners', name, 'state', `${name}.ledger.jsonl`), dest);
      return dest;
    });
    const audit = auditLedgers({ coordinator: coordinatorLedger, partners: partnerLedgers, epsilonOf: composedEpsilon });
    const ledgerEntries = readLedger(coordinatorLedger).entries;
    if (plan) printEpsilonTable(ledgerEntries, manifest, say);
    say('');
    say(formatAuditSummary(audit));

    // 6. The compliance report and model card, from the ledgers and the owner's decrypted evaluation.
    const evaluation: JobEvaluation = {
      roundMetrics: result.roundMetrics.filter((r) => r.metrics).map((r) => ({ round: r.round - 1, auc: r.metrics!.auc, logLoss: r.metrics!.logLoss })),
      finalMetrics: result.finalMetrics!,
    };
    writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2));
    writeFileSync(join(out, 'evaluation.json'), JSON.stringify(evaluation));
    const report = await writeReport(
      out,
      reportInputFromJob({
        manifest,
        ledger: ledgerEntries,
        audit,
        evaluation,
        bytesPerParam: updateBytes / lengths.update,
        target: datasetName === 'bank-marketing' ? 'subscribes to a term deposit after the campaign call (y = yes)' : 'churns within the month (Churn = Yes)',
        intendedUse: datasetName === 'bank-marketing' ? 'Rank customers by propensity to subscribe, to plan outbound campaigns.' : 'Early warning of churn among existing customers, to plan retention offers.',
      }),
    );
    say(`report: ${report.htmlPath}`);
    say(`model card: ${report.modelCardPath}`);
    const summary: DemoSummary = {
      dataset: datasetName,
      partners: o.partners,
      rounds: o.rounds,
      backend,
      auc: {
        federated: aucOf(result.finalState.params),
        federatedFromHistograms: result.finalMetrics?.auc ?? NaN,
        centralized: aucOf(centralized.params),
        local,
      },
      perRoundAuc,
      encryption:
        manifest.encryption.scheme === 'ckks'
          ? { scheme: 'ckks', polyModulusDegree: manifest.encryption.polyModulusDegree, coeffModulusBits: manifest.encryption.coeffModulusBits, wireBytesPerParameter: updateBytes / lengths.update }
          : { scheme: 'plain-insecure', wireBytesPerParameter: updateBytes / lengths.update },
      privacy: plan ? { delta: plan.delta, epsilon, noiseMultiplier: plan.noiseMultiplier, clipNorm: plan.clipNorm, targetEpsilon: plan.targetEpsilon } : null,
      audit: { ok: audit.ok, findings: audit.findings },
      report: report.htmlPath,
      out,
      wallSeconds: (performance.now() - t0) / 1000,
    };
    writeFileSync(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
    printTable(summary, say);
    return summary;
  } finally {
    cleanup();
    process.removeListener('exit', cleanup);
  }
}

/** Update size on the wire, read back from the coordinator log's accepted submissions. */
function readUpdateBytes(out: string): number {
  const log = readFileSync(join(out, 'logs', 'coordinator.log'), 'utf8');
  for (const line of log.split('\n')) {
    if (!line.includes('"submission accepted"')) continue;
    try {
      const j = JSON.parse(line) as { partBytes?: { update?: number } };
      if (j.partBytes?.update) return j.partBytes.update;
    } catch {
      /* not a JSON line */
    }
  }
  return NaN;
}

/** A ledger and its signed head pointer, copied together so the copy audits like the original. */
function copyLedger(from: string, to: string): void {
  copyFileSync(from, to);
  if (existsSync(`${from}.head`)) copyFileSync(`${from}.head`, `${to}.head`);
}

/** ε each partner had spent after each round, as recorded in the job ledger. */
function printEpsilonTable(entries: LedgerEntry[], manifest: JobManifest, say: (l: string) => void): void {
  const names = manifest.partners.map((p) => p.name);
  const nameOf = new Map(manifest.partners.map((p) => [p.keyId, p.name]));
  say('');
  say(`ε spent per partner after each round (cumulative, δ=${manifest.dp?.delta}; from the job ledger)`);
  say(['round', ...names].map((c) => c.padStart(10)).join(''));
  const last = new Map<string, number>();
  for (const e of entries) {
    if (e.type !== 'round') continue;
    for (const p of e.payload.partners) last.set(nameOf.get(p.partner) ?? p.partner, p.epsilonCumulative);
    say([String(e.payload.round), ...names.map((n) => (last.has(n) ? last.get(n)!.toFixed(3) : '—'))].map((c) => c.padStart(10)).join(''));
  }
}

function printTable(s: DemoSummary, say: (l: string) => void): void {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : 'n/a');
  say('');
  say(`fedmark demo — ${s.dataset}, ${s.partners} partners, ${s.rounds} rounds, backend ${s.backend}`);
  say('training                      | AUC on the pooled hold-out');
  say('------------------------------+---------------------------');
  say(`federated (${s.encryption.scheme}${s.privacy ? `, DP ε≤${s.privacy.targetEpsilon}` : ''})`.padEnd(30) + `| ${f(s.auc.federated)}  (from encrypted histograms: ${f(s.auc.federatedFromHistograms)})`);
  say('centralized (pooled, no DP)'.padEnd(30) + `| ${f(s.auc.centralized)}`);
  for (const [name, a] of Object.entries(s.auc.local)) say(`${name} alone (no DP)`.padEnd(30) + `| ${f(a)}`);
  if (s.privacy) say(`ε spent per partner (δ=${s.privacy.delta}, target ${s.privacy.targetEpsilon}): ${Object.entries(s.privacy.epsilon).map(([n, e]) => `${n} ${e.toFixed(3)}`).join(', ')}`);
  say(`audit: ${s.audit.ok ? 'OK' : `${s.audit.findings.length} finding(s)`}; report ${s.report}`);
  say(`wire size: ${f(s.encryption.wireBytesPerParameter)} bytes per parameter; wall time ${s.wallSeconds.toFixed(1)} s; artifacts in ${s.out}`);
}
