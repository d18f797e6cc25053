/**
 * The SIGKILL chaos harness shared by kill-restart.test.ts (CKKS jobs) and masked-kill-restart.test.ts
 * (masked aggregation inside BFV): one job run with the coordinator and the partner nodes as separate
 * OS processes, kills armed on their log lines, and the checks every run must pass.
 */
import { expect } from 'vitest';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { runJobOwner, type OwnerResult } from '../../owner/node.ts';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { evaluatesEveryRound, planDp } from '../../src/federation/workloads/sgd/dp-plan.ts';
import { WEIGHT_UNIT } from '../../src/federation/workloads/sgd/index.ts';
import type { EncryptionSpec, JobManifest } from '../../src/federation/manifest.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { BudgetStore } from '../../src/privacy/budget/store.ts';
import { auditLedgers, type AuditResult } from '../../src/privacy/ledger/audit.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { createRng } from '../../src/util/rng.ts';
import { secaggSpecOf } from '../../src/federation/secagg/round-config.ts';
import {
  CLI_MAIN,
  PARTNER_ENTRY,
  HOLDOUT,
  NodeProcess,
  SPLIT_SEED,
  Supervisor,
  expectedWeight,
  finalLine,
  freePort,
  makeManifest,
  readStoredJob,
  whenFile,
  writePolicies,
  type ChaosFixture,
  type ExitRecord,
  type StoredJob,
} from './helpers.ts';

export const PARTNERS = 3;
export const ROWS_PER_PARTNER = 300;
export const ROUNDS = 3;
export const JOB_SEED = 11;
export const POLL_MS = 150;
export const RUN_TIMEOUT_MS = 90_000;
/**
 * CKKS encryption is randomised (SEAL draws fresh randomness per ciphertext), so the decrypted sums
 * of two runs differ by the scheme's approximation error and the model hashes differ even between two
 * uninterrupted runs. Two runs that counted the same updates agree to ~1e-9; one lost or double-counted
 * partner moves the model by ~1e-2 (the test checks that margin too).
 */
export const MODEL_TOLERANCE = 1e-6;

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type KillPoint =
  | { target: 'coordinator'; after: 'accepted'; n: number; delayMs: number }
  | { target: 'coordinator'; after: 'opened' | 'closed'; round: number; delayMs: number }
  | { target: number; after: 'submitted' | 'opened'; round: number; delayMs: number }
  | { target: number; after: 'charged'; round: number };

export interface KillRecord {
  point: KillPoint;
  /** What the killed node had persisted at the moment it died (clients only). */
  state?: { pending: boolean; budgetCharges: number | null };
  at: number;
}

export interface RunResult {
  manifest: JobManifest;
  dir: string;
  /** The coordinator's data dir at the end (another one than it started with when it moved). */
  coordinatorDir: string;
  /** Data dirs the coordinator ran with, in order. */
  coordinatorDirs: string[];
  stateDirs: string[];
  ledgers: { coordinator: string; partners: string[] };
  clientExits: ExitRecord[];
  finals: ({ state: string; rounds: number; modelHash: string | null } | null)[];
  unexpectedClientExits: { node: string; code: number | null; tail: string[] }[];
  unexpectedCoordinatorExits: { code: number | null; tail: string[] }[];
  owner: OwnerResult | null;
  ownerError: string | null;
  kills: KillRecord[];
  coordinatorStarts: number;
  clientStarts: number[];
  stored: StoredJob;
  audit: AuditResult;
  seconds: number;
}

/** One coordinator kill and one client kill per seed, both chosen by the seeded RNG. */
export function killPlan(seed: number): KillPoint[] {
  const rng = createRng(seed);
  const submissions = PARTNERS * (ROUNDS + 1);
  const coordinator: KillPoint = (() => {
    switch (rng.int(3)) {
      case 0:
        return { target: 'coordinator', after: 'accepted', n: 1 + rng.int(submissions), delayMs: rng.int(150) };
      case 1:
        return { target: 'coordinator', after: 'opened', round: 1 + rng.int(ROUNDS + 1), delayMs: rng.int(300) };
      default:
        return { target: 'coordinator', after: 'closed', round: 1 + rng.int(ROUNDS), delayMs: rng.int(100) };
    }
  })();
  const client: KillPoint =
    rng.int(2) === 0
      ? { target: rng.int(PARTNERS), after: 'submitted', round: 1 + rng.int(ROUNDS), delayMs: rng.int(50) }
      : { target: rng.int(PARTNERS), after: 'opened', round: 1 + rng.int(ROUNDS), delayMs: rng.int(200) };
  return [coordinator, client];
}

export const describePoint = (p: KillPoint): string =>
  p.target === 'coordinator'
    ? p.after === 'accepted'
      ? `coordinator ${p.delayMs} ms after the ${p.n}th accepted submission`
      : `coordinator ${p.delayMs} ms after round ${p.round} ${p.after}`
    : p.after === 'charged'
      ? `partner ${p.target} right after its round-${p.round} budget charge was persisted`
      : p.after === 'submitted'
        ? `partner ${p.target} ${p.delayMs} ms after uploading round ${p.round}`
        : `partner ${p.target} ${p.delayMs} ms after round ${p.round} opened (mid-round)`;

/**
 * `store`: a PostgreSQL store URL (default: SQLite in the data dir). `move`: when the coordinator is
 * killed it restarts with a new, empty data dir holding only its key file — as if started on another
 * machine against the same database.
 */
export async function runJob(
  f: ChaosFixture,
  o: { dir: string; jobId: string; epsilon: number | null; kills: KillPoint[]; store?: string; move?: boolean; encryption?: EncryptionSpec },
): Promise<RunResult> {
  const t0 = performance.now();
  const dp = o.epsilon !== null;
  const { manifest, signed } = makeManifest(f, { jobId: o.jobId, rounds: ROUNDS, epsilon: o.epsilon, seed: JOB_SEED, encryption: o.encryption });
  if (dp) writePolicies(f, manifest, planDp(manifest)!.targetEpsilon);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let coordinatorDir = join(o.dir, 'coordinator');
  const coordinatorDirs = [coordinatorDir];
  const coordinator = new NodeProcess(
    'coordinator',
    CLI_MAIN,
    ['coordinator', '--port', String(port), '--data-dir', coordinatorDir, ...(o.store ? ['--store', o.store] : [])],
    join(o.dir, 'coordinator.log'),
  );
  const stateDirs = f.partners.map((p) => join(o.dir, p.name));
  // As the demo does: `fedmark partner` cannot create its own state directory (cli/node-commands.ts
  // opens the budget store before anything creates the directory; see docs/RELIABILITY.md).
  for (const d of stateDirs) mkdirSync(d, { recursive: true });
  const clients = f.partners.map((p, i) => {
    const common = [
      '--coordinator',
      url,
      '--job',
      o.jobId,
      '--data',
      p.csv,
      '--schema',
      f.schemaFile,
      '--identity',
      p.identityFile,
      '--state-dir',
      stateDirs[i],
      '--poll-ms',
      String(POLL_MS),
      '--holdout',
      String(HOLDOUT),
      '--split-seed',
      String(SPLIT_SEED),
    ];
    // DP jobs run the real `fedmark partner`; non-DP jobs need partner-entry.ts (the CLI refuses them).
    return dp
      ? new NodeProcess(p.name, CLI_MAIN, ['partner', ...common, '--policy', p.policyFile], join(o.dir, `${p.name}.log`))
      : new NodeProcess(p.name, PARTNER_ENTRY, common, join(o.dir, `${p.name}.log`));
  });
  const coordSup = new Supervisor([coordinator], 0);
  const clientSup = new Supervisor(clients, 300);
  const abort = new AbortController();
  const kills: KillRecord[] = [];
  let owner: OwnerResult | null = null;
  let ownerError: string | null = null;
  try {
    const listening = coordinator.waitForLine((l) => l.startsWith('fedmark coordinator listening'), 60_000, 'listening line');
    coordSup.start();
    // Nodes boot while the coordinator does (as in the demo): a node waits for its job to appear.
    clientSup.start();
    await listening;
    const ownerRun = runJobOwner({ coordinatorUrl: url, identity: f.owner, signed, log: silent, pollMs: 200, signal: abort.signal }).then(
      (r) => {
        owner = r;
      },
      (err: unknown) => {
        ownerError = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
      },
    );
    for (const point of o.kills) armKill(point);
    const exits = await clientSup.finished(RUN_TIMEOUT_MS);
    await Promise.race([ownerRun, sleep(10_000)]);
    await coordinator.stop();
    coordSup.stop();
    const stored = await readStoredJob(coordinatorDir, manifest, f.partners[0].identity, o.store);
    const ledgers = {
      coordinator: join(coordinatorDir, 'ledgers', `${o.jobId}.ledger.jsonl`),
      partners: f.partners.map((p, i) => join(stateDirs[i], `${p.name}.ledger.jsonl`)),
    };
    const audit = auditLedgers({ coordinator: ledgers.coordinator, partners: ledgers.partners, epsilonOf: composedEpsilon });
    process.stderr.write(
      `[chaos] ${o.jobId}: ${((performance.now() - t0) / 1000).toFixed(1)} s; kills ${JSON.stringify(kills.map((k) => ({ at: describePoint(k.point), state: k.state })))}; starts coordinator ${coordinator.starts}, clients ${clients.map((c) => c.starts).join('/')}; unexpected client exits ${clientSup.unexpectedExits.length}; owner ${ownerError ?? 'ok'}\n`,
    );
    return {
      manifest,
      dir: o.dir,
      coordinatorDir,
      coordinatorDirs,
      stateDirs,
      ledgers,
      clientExits: exits,
      finals: clients.map(finalLine),
      unexpectedClientExits: clientSup.unexpectedExits.map((e) => ({ node: e.node, code: e.code, tail: e.tail.slice(-3) })),
      unexpectedCoordinatorExits: coordSup.unexpectedExits.map((e) => ({ code: e.code, tail: e.tail.slice(-3) })),
      owner,
      ownerError,
      kills,
      coordinatorStarts: coordinator.starts,
      clientStarts: clients.map((c) => c.starts),
      stored,
      audit,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    abort.abort(new Error('run over'));
    clientSup.stop();
    coordSup.stop();
  }

  function armKill(point: KillPoint): void {
    const record = (state?: KillRecord['state']) => kills.push({ point, state, at: Date.now() });
    const clientState = (i: number): KillRecord['state'] => {
      const budget = join(stateDirs[i], 'privacy-budget.json');
      let charges: number | null = null;
      // Distinct (round, attempt)s charged: one attempt may charge several labelled releases.
      if (existsSync(budget))
        charges = new Set(
          BudgetStore.open(budget)
            .charges(o.jobId)
            .map((c) => `${c.round}.${c.attempt}`),
        ).size;
      return { pending: existsSync(join(stateDirs[i], `${o.jobId}.pending-submission`)), budgetCharges: charges };
    };
    if (point.target === 'coordinator') {
      let accepted = 0;
      const off = coordinator.onLine((_, j) => {
        if (!j) return;
        const hit =
          point.after === 'accepted'
            ? j.msg === 'submission accepted' && ++accepted === point.n
            : j.msg === `round ${point.after}` && j.round === point.round && (point.after === 'closed' || j.attempt === 0);
        if (!hit) return;
        off();
        void sleep(point.delayMs).then(async () => {
          if (o.move) {
            // The restart (same arguments otherwise) gets a data dir with nothing but the key file.
            coordinatorDir = join(o.dir, `coordinator-${coordinatorDirs.length + 1}`);
            mkdirSync(coordinatorDir, { recursive: true });
            copyFileSync(join(coordinatorDirs.at(-1)!, 'coordinator.key.json'), join(coordinatorDir, 'coordinator.key.json'));
            coordinatorDirs.push(coordinatorDir);
            coordinator.args[coordinator.args.indexOf('--data-dir') + 1] = coordinatorDir;
          }
          if ((await coordinator.kill()) !== null) record();
        });
      });
      return;
    }
    const victim = clients[point.target];
    if (point.after === 'charged') {
      const budget = join(stateDirs[point.target], 'privacy-budget.json');
      // Freeze on the charge, look at what the node has persisted, then kill it in that state.
      const charged = (text: string | null) => {
        if (!text) return false;
        try {
          const doc = JSON.parse(text) as { jobs: Record<string, { charges: { round: number }[] }> };
          return doc.jobs[o.jobId]?.charges.some((c) => c.round === point.round) ?? false;
        } catch {
          return false;
        }
      };
      void whenFile(budget, charged, abort.signal)
        .then(async () => {
          if (!victim.freeze()) return;
          const state = clientState(point.target as number);
          await victim.kill();
          record(state);
        })
        .catch(() => undefined);
      return;
    }
    const source = point.after === 'submitted' ? victim : coordinator;
    const off = source.onLine((_, j) => {
      if (!j) return;
      const hit =
        point.after === 'submitted'
          ? (j.msg === 'update submitted' || j.msg === 'masked update submitted') && j.round === point.round
          : j.msg === 'round opened' && j.round === point.round && j.attempt === 0;
      if (!hit) return;
      off();
      void sleep(point.delayMs).then(async () => {
        if (!victim.freeze()) return;
        const state = clientState(point.target as number);
        await victim.kill();
        record(state);
      });
    });
  }
}

/** The checks every run must pass, interrupted or not. */
export function checkRun(r: RunResult, f: ChaosFixture): void {
  const keyIds = f.partners.map((p) => publicIdentity(p.identity).keyId).sort();
  const diag = JSON.stringify({ kills: r.kills, finals: r.finals, unexpected: r.unexpectedClientExits });

  // Every node finished the job and reports the same model after all rounds.
  for (const [i, fin] of r.finals.entries()) {
    expect(r.clientExits[i].code, `${f.partners[i].name} exit; ${diag}`).toBe(0);
    expect(fin, `${f.partners[i].name} final line`).toMatchObject({ state: 'completed', rounds: ROUNDS });
  }
  const hashes = new Set(r.finals.map((x) => x?.modelHash));
  expect(hashes.size).toBe(1);
  const [modelHash] = hashes;

  // The store: every round closed at its first attempt, each with exactly one submission per partner,
  // and the published sums count exactly those submissions.
  expect(r.stored.state).toBe('completed');
  expect(r.stored.rounds.map((x) => `${x.round}.${x.attempt}:${x.state}`)).toEqual(Array.from({ length: ROUNDS + 1 }, (_, i) => `${i + 1}.0:closed`));
  const rowKeys = r.stored.submissionRows.map((s) => `${s.round}.${s.attempt}.${s.key_id}`);
  expect(new Set(rowKeys).size).toBe(rowKeys.length);
  expect(rowKeys.length).toBe(PARTNERS * (ROUNDS + 1));
  const weight = expectedWeight(f.partners);
  // With DP each partner's weight is its noisy row count, released once and reused in every round
  // (σ_w rows of noise each), and training rounds send no evaluation unless the manifest asks.
  const dp = planDp(r.manifest);
  // A masked upload is stochastically rounded to at most 2^-minFractionBits per value (docs/CRYPTO.md).
  const spec = secaggSpecOf(r.manifest);
  const quantum = spec ? PARTNERS * 2 ** -spec.minFractionBits : 0;
  const weightSlack = (dp ? (8 * dp.weightNoiseMultiplier * Math.sqrt(PARTNERS)) / WEIGHT_UNIT : 1e-6) + quantum;
  const everyRound = evaluatesEveryRound(r.manifest);
  const trainWeights: number[] = [];
  for (const round of r.stored.rounds) {
    expect([...round.submitters].sort(), `round ${round.round} submitters`).toEqual(keyIds);
    expect(round.counter, `round ${round.round} counter`).toBe(PARTNERS);
    expect(round.evalSummands, `round ${round.round} evaluation sum summands`).toBe(round.kind !== 'train' || everyRound ? PARTNERS : null);
    if (round.kind === 'train') {
      expect(round.updateSummands, `round ${round.round} update sum summands`).toBe(PARTNERS);
      // The weight slot is Σ rows/WEIGHT_UNIT over the counted updates: a lost or doubled update moves it by ≥ 0.02.
      expect(Math.abs(round.decryptedWeight! - weight), `round ${round.round} decrypted weight ${round.decryptedWeight} vs ${weight}`).toBeLessThan(
        weightSlack,
      );
      trainWeights.push(round.decryptedWeight!);
    } else {
      expect(round.updateSummands).toBeNull();
    }
  }
  // The same released weights in every training round (up to CKKS error or masked rounding): none was drawn again.
  for (const w of trainWeights) expect(Math.abs(w - trainWeights[0]), `decrypted weights ${trainWeights.join(', ')}`).toBeLessThan(1e-5 + 2 * quantum);
  // The model the stored sums define is the one every node reports, and the one the ledger finalised.
  expect(r.stored.replayed.map((x) => x.round)).toEqual(Array.from({ length: ROUNDS }, (_, i) => i + 1));
  expect(r.stored.replayed[ROUNDS - 1].hash).toBe(modelHash);
  const entries = readLedger(r.ledgers.coordinator).entries;
  const finals = entries.filter((e) => e.type === 'model.final');
  expect(finals).toHaveLength(1);
  expect((finals[0].payload as { modelHash: string }).modelHash).toBe(modelHash);
  expect(entries.filter((e) => e.type === 'round').map((e) => (e.payload as { round: number }).round)).toEqual(Array.from({ length: ROUNDS }, (_, i) => i + 1));

  // The coordinator's job ledger and every partner's own ledger audit clean together. For a job
  // without DP the audit wrongly demands a DP record per submission (audit.ts, DP_RECORD_MISSING);
  // that finding is asserted by its own test below, so it is set aside here.
  const errors = r.audit.findings.filter((x) => x.severity === 'error' && !(r.manifest.dp === null && x.code === 'DP_RECORD_MISSING'));
  expect(errors, 'audit errors').toEqual([]);
  if (r.manifest.dp !== null) expect(r.audit.ok).toBe(true);
  expect(r.audit.partners).toHaveLength(PARTNERS);
  for (const p of r.audit.partners) expect(p.localLedgerChecked).toBe(true);
}
