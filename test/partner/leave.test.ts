import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, partnerNodes, silentLog, telcoPartners } from '../helpers/partners.ts';
import { runPartnerNode } from '../../partner/node.ts';
import { runJobOwner } from '../../owner/node.ts';
import { parseManifest, signManifest } from '../../src/federation/manifest.ts';
import { MemoryBudgetGuard } from '../../src/privacy/budget/memory-guard.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { CLI_MAIN, HOLDOUT, makeManifest, NodeProcess, prepareFixture, SPLIT_SEED, writePolicies } from '../chaos/helpers.ts';
import { loadPartnerData } from '../../cli/partner-data.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const DEADLINE_S = 40;

// Issue 19 item 8: a partner that stops for good says so (an attested `leave`), and the rounds after
// it close as soon as the remaining selected partners have submitted, not at the deadline.
describe('a partner that leaves mid-job', () => {
  let coord: TestCoordinator;
  beforeAll(async () => {
    coord = await startTestCoordinator({ logLevel: 'warn' });
  });
  afterAll(async () => {
    await coord?.close();
  });

  it('is recorded in the job ledger, is not waited for, and the job finishes well before the deadlines with a clean audit', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 150 });
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b', 'shop-c']);
    const base = makeJob({ jobId: 'partner-leaves', schema, owner, partners: ids, rounds: 3, epsilon: 3 }).manifest;
    const manifest = parseManifest({ ...base, roundDeadlineSeconds: DEADLINE_S, quorum: 2, partnersPerRound: 3 });
    const signed = signManifest(manifest, owner);
    const guards = ids.map(() => new MemoryBudgetGuard(3));
    const stateDir = (i: number) => join(coord.dir, ids[i].name);
    const stopC = new AbortController();
    const start = partnerNodes({ url: coord.url, identities: ids, parts, jobId: manifest.jobId, schemaHash, stateDir, budget: (i) => guards[i], pollMs: 100 });
    const node = (i: number) =>
      start(
        i,
        // shop-c's operator stops it (SIGTERM in the CLI) once it has applied round 1.
        i === 2 ? { signal: stopC.signal, leaveOnStop: true, onRound: ({ round }: { round: number }) => round === 1 && stopC.abort(new Error('SIGTERM')) } : {},
      );
    const ownerRun = runJobOwner({ coordinatorUrl: coord.url, identity: owner, signed, log: silentLog, pollMs: 100 });
    const c = node(2);
    const [ownerResult, a, b] = await Promise.all([ownerRun, node(0), node(1), c.catch(() => null)]);
    await expect(c).rejects.toThrow();
    expect(ownerResult.state).toBe('completed');
    for (const r of [a, b]) {
      expect(r.state).toBe('completed');
      expect(r.modelHash).toBe(ownerResult.modelHash);
    }

    const jobLedger = join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`);
    const entries = readLedger(jobLedger).entries;
    const leave = entries.filter((e) => e.type === 'partner.leave');
    expect(leave).toHaveLength(1);
    expect(leave[0].payload).toMatchObject({ partner: publicIdentity(ids[2]).keyId, afterRound: 1 });
    // Each round after the leave, from the previous round's entry to its own, is far inside its deadline.
    const roundAt = new Map(entries.filter((e) => e.type === 'round').map((e) => [(e.payload as { round: number }).round, Date.parse(e.ts)]));
    expect([...roundAt.keys()].sort()).toEqual([1, 2, 3]);
    for (const r of [2, 3]) expect(roundAt.get(r)! - roundAt.get(r - 1)!).toBeLessThan((DEADLINE_S * 1000) / 2);
    // The rounds after the leave were aggregated from the two partners left; shop-c was selected for none.
    const rounds = entries.filter((e) => e.type === 'round').map((e) => e.payload as { round: number; partners: { partner: string }[] });
    for (const r of rounds.filter((x) => x.round > 1)) expect(r.partners.map((p) => p.partner)).not.toContain(publicIdentity(ids[2]).keyId);

    const audit = auditLedgers({ coordinator: jobLedger, partners: ids.map((_, i) => join(stateDir(i), 'partner.ledger.jsonl')), epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(audit.ok).toBe(true);
  }, 180_000);

  it('a real `fedmark partner` process started with --leave-on-stop and stopped with SIGTERM after round 1 leaves (exit 143) and the job finishes without waiting for it', async () => {
    const f = await prepareFixture(join(coord.dir, 'fx'), { partners: 3, rowsPerPartner: 150, seed: 13 });
    const base = makeManifest(f, { jobId: 'cli-partner-leaves', rounds: 3, epsilon: 3, seed: 5 }).manifest;
    const manifest = parseManifest({ ...base, roundDeadlineSeconds: DEADLINE_S, quorum: 2, partnersPerRound: 3 });
    const signed = signManifest(manifest, f.owner);
    writePolicies(f, manifest, manifest.dp!.targetEpsilon);
    const stateDir = (i: number) => join(coord.dir, `cli-${f.partners[i].name}`);
    const inProcess = [0, 1].map(async (i) => {
      const p = f.partners[i];
      const data = await loadPartnerData(p.csv, f.schema, HOLDOUT, SPLIT_SEED);
      return runPartnerNode({
        coordinatorUrl: coord.url,
        identity: p.identity,
        jobId: manifest.jobId,
        train: data.train,
        test: data.test,
        schemaHash: manifest.dataset.schemaHash,
        stateDir: stateDir(i),
        reviewJob: () => [],
        budget: new MemoryBudgetGuard(3),
        log: silentLog,
        pollMs: 100,
      });
    });
    const c = f.partners[2];
    const proc = new NodeProcess(
      c.name,
      CLI_MAIN,
      [
        'partner',
        '--coordinator',
        coord.url,
        '--job',
        manifest.jobId,
        '--data',
        c.csv,
        '--schema',
        f.schemaFile,
        '--identity',
        c.identityFile,
        '--state-dir',
        stateDir(2),
        '--poll-ms',
        '100',
        '--holdout',
        String(HOLDOUT),
        '--split-seed',
        String(SPLIT_SEED),
        '--policy',
        c.policyFile,
        '--leave-on-stop',
      ],
      join(coord.dir, 'cli-partner.log'),
    );
    try {
      mkdirSync(stateDir(2), { recursive: true });
      proc.start();
      const ownerRun = runJobOwner({ coordinatorUrl: coord.url, identity: f.owner, signed, log: silentLog, pollMs: 100 });
      const watcher = new CoordinatorClient(coord.url, f.owner);
      for (let t = 0; t < 900; t++) {
        await sleep(100);
        const st = await watcher.status(manifest.jobId).catch(() => null);
        if (st && st.round >= 2) break;
      }
      await proc.stop(15_000);
      const exit = proc.exits.at(-1)!;
      expect(exit.code, exit.tail.join('\n')).toBe(143);
      const [ownerResult, a, b] = await Promise.all([ownerRun, ...inProcess]);
      expect(ownerResult.state).toBe('completed');
      expect(a.modelHash).toBe(ownerResult.modelHash);
      expect(b.modelHash).toBe(ownerResult.modelHash);
      const jobLedger = join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`);
      const entries = readLedger(jobLedger).entries;
      expect(entries.filter((e) => e.type === 'partner.leave').map((e) => (e.payload as { partner: string }).partner)).toEqual([
        publicIdentity(c.identity).keyId,
      ]);
      const roundAt = new Map(entries.filter((e) => e.type === 'round').map((e) => [(e.payload as { round: number }).round, Date.parse(e.ts)]));
      for (const r of [2, 3]) expect(roundAt.get(r)! - roundAt.get(r - 1)!).toBeLessThan((DEADLINE_S * 1000) / 2);
      const audit = auditLedgers({
        coordinator: jobLedger,
        partners: [join(stateDir(0), 'partner.ledger.jsonl'), join(stateDir(1), 'partner.ledger.jsonl'), join(stateDir(2), `${c.identity.name}.ledger.jsonl`)],
        epsilonOf: composedEpsilon,
      });
      expect(audit.findings.filter((x) => x.severity === 'error')).toEqual([]);
      expect(audit.ok).toBe(true);
    } finally {
      proc.close();
    }
  }, 240_000);
});
