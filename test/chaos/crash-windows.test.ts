/**
 * Two crash windows of the coordinator that random SIGKILLs (kill-restart.test.ts) hit only rarely,
 * because each is a few milliseconds wide: the coordinator commits a state change to SQLite and
 * appends the matching ledger entry as two separate durable writes. Here the "kill" is placed exactly
 * between the two: from the chosen write on, every store write and ledger append of that coordinator
 * throws (nothing more reaches the disk, as after SIGKILL; both stores are fsynced/committed per
 * write, so what is on disk is exactly what a kill at that instant leaves). Then a fresh coordinator
 * is started on the same data directory, as `fedmark coordinator` would be after a restart. Both on
 * the SQLite store and on PostgreSQL (where the ledger also goes to the database: one more write).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildCoordinator } from '../../coordinator/server.ts';
import { runPartnerNode } from '../../partner/node.ts';
import { runJobOwner } from '../../owner/node.ts';
import { loadPartnerData } from '../../cli/partner-data.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { HOLDOUT, SPLIT_SEED, makeManifest, prepareFixture, type ChaosFixture } from './helpers.ts';
import { STORE_PG_SKIP_REASON, storeBackends } from '../helpers/postgres-store.ts';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class SimulatedKill extends Error {
  constructor(what: string) {
    super(`simulated SIGKILL ${what}`);
  }
}

type Built = Awaited<ReturnType<typeof buildCoordinator>>;

/**
 * Arms a kill: `at` inspects every store write / ledger append (by method name and arguments) and
 * returns true for the one that must not happen. From then on the coordinator persists nothing.
 */
function armKill(built: Built, at: (what: string, args: unknown[]) => boolean): { killed: () => boolean } {
  let dead = false;
  const store = built.store as unknown as Record<string, unknown>;
  const ledger = (built.engine as unknown as { ledger: Record<string, unknown> }).ledger;
  const wrap = (target: Record<string, unknown>, name: string, label: string) => {
    const orig = target[name] as (...a: unknown[]) => unknown;
    target[name] = (...args: unknown[]) => {
      if (!dead && at(label, args)) dead = true;
      if (dead) throw new SimulatedKill(`before ${label}`);
      return orig.apply(target, args);
    };
  };
  const writes = Object.getOwnPropertyNames(Object.getPrototypeOf(built.store)).filter((n) => /^(insert|update|put|set|transaction)/.test(n));
  for (const n of writes) wrap(store, n, `store.${n}`);
  for (const n of ['append', 'appendGenesis']) wrap(ledger, n, `ledger.${n}`);
  return { killed: () => dead };
}

async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Runs a non-DP job in-process until the armed kill fires, then restarts the coordinator and lets it tick. */
async function crashAndRestart(
  f: ChaosFixture,
  dir: string,
  o: { jobId: string; rounds: number; store?: string; at: (what: string, args: unknown[]) => boolean },
) {
  const dataDir = join(dir, o.jobId, 'coordinator');
  const { manifest, signed } = makeManifest(f, { jobId: o.jobId, rounds: o.rounds, epsilon: null, seed: 11 });
  const first = await buildCoordinator({ dataDir, store: o.store, logger: silent, tickMs: 50 });
  const url = await first.app.listen({ host: '127.0.0.1', port: 0 });
  const kill = armKill(first, o.at);
  const abort = new AbortController();
  const data = await Promise.all(f.partners.map((p) => loadPartnerData(p.csv, f.schema, HOLDOUT, SPLIT_SEED)));
  const stateDirs = f.partners.map((p) => join(dir, o.jobId, p.name));
  const nodes = f.partners.map((p, i) =>
    runPartnerNode({
      coordinatorUrl: url,
      identity: p.identity,
      jobId: o.jobId,
      train: data[i].train,
      test: data[i].test,
      schemaHash: manifest.dataset.schemaHash,
      stateDir: stateDirs[i],
      reviewJob: () => [],
      budget: undefined,
      ledgerPath: join(stateDirs[i], `${p.name}.ledger.jsonl`),
      log: silent,
      pollMs: 100,
      signal: abort.signal,
      joinTimeoutMs: 20_000,
    }).catch(() => null),
  );
  const owner = runJobOwner({ coordinatorUrl: url, identity: f.owner, signed, log: silent, pollMs: 100, signal: abort.signal }).catch(() => null);
  try {
    await waitFor(kill.killed, 40_000, 'the armed kill point');
  } finally {
    abort.abort(new Error('coordinator killed'));
    await first.app.close();
    await Promise.all([...nodes, owner]);
  }
  // The restart: a new process would open the same directory; its tick timer drives the job on.
  const second = await buildCoordinator({ dataDir, store: o.store, logger: silent, tickMs: 50 });
  try {
    await sleep(600);
    return { manifest, ledgerPath: second.engine.ledgerPath(o.jobId), status: second.engine.status(o.jobId) };
  } finally {
    await second.app.close();
  }
}

const { backends, dropAll } = storeBackends();
if (STORE_PG_SKIP_REASON) it.skip(`PostgreSQL store: ${STORE_PG_SKIP_REASON}`, () => {});

describe.each(backends)('coordinator crash windows between a store commit and its ledger entry ($name)', (backend) => {
  let root: string;
  let fixture: ChaosFixture;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fedmark-crash-windows-'));
    fixture = await prepareFixture(root, { partners: 3, rowsPerPartner: 120, seed: 5 });
  });

  afterAll(async () => {
    await dropAll();
    if (root && !process.env.FEDMARK_KEEP_TEST_DIR) rmSync(root, { recursive: true, force: true });
  });

  it("killed after writing round 1's ledger entry but before opening round 2: the restart does not record round 1 again", async () => {
    // JobEngine.advance appends the `round` entry, then opens the next round in a separate SQLite
    // transaction; after a kill between the two the restarted coordinator redoes the step, and the
    // redo-safe ledger append must not record the round a second time.
    const r = await crashAndRestart(fixture, root, {
      jobId: 'window-round',
      rounds: 2,
      store: await backend.store(),
      at: (what, args) => what === 'store.insertRound' && (args[0] as { round: number }).round === 2,
    });
    const rounds = readLedger(r.ledgerPath)
      .entries.filter((e) => e.type === 'round')
      .map((e) => (e.payload as { round: number }).round);
    expect(r.status.round, 'the restarted coordinator opened round 2').toBe(2);
    expect(rounds, 'round entries in the job ledger').toEqual([1]);
    const audit = auditLedgers({ coordinator: r.ledgerPath, epsilonOf: composedEpsilon, allowRunning: true });
    expect(audit.findings.filter((x) => x.severity === 'error' && x.code !== 'DP_RECORD_MISSING').map((x) => `${x.code}: ${x.message}`)).toEqual([]);
  }, 60_000);

  it("killed after committing the last round's close but before its ledger entries: the restart still writes `evaluation` and `model.final`", async () => {
    // closeRound writes `evaluation` and `model.final` before it commits the job as completed; a kill
    // at the first ledger write must leave a job the restarted coordinator completes, with both entries.
    const r = await crashAndRestart(fixture, root, {
      jobId: 'window-final',
      rounds: 1,
      store: await backend.store(),
      at: (what, args) => what === 'ledger.append' && args[1] === 'evaluation',
    });
    expect(r.status.state).toBe('completed');
    const types = readLedger(r.ledgerPath).entries.map((e) => e.type);
    expect(
      types.filter((t) => t === 'evaluation' || t === 'model.final'),
      'final entries in the job ledger',
    ).toEqual(['evaluation', 'model.final']);
    const audit = auditLedgers({ coordinator: r.ledgerPath, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((x) => x.severity === 'error' && x.code !== 'DP_RECORD_MISSING').map((x) => `${x.code}: ${x.message}`)).toEqual([]);
  }, 60_000);
});
