import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { silentLog } from '../helpers/partners.ts';
import { CLI_MAIN, HOLDOUT, NodeProcess, prepareFixture, SPLIT_SEED, type ChaosFixture } from '../chaos/helpers.ts';
import { publicIdentity, writeIdentityFile } from '../../src/crypto/identity.ts';
import { sealJobKey } from '../../src/crypto/key-ceremony.ts';
import { loadPartnerData } from '../../cli/partner-data.ts';
import { runPartnerNode } from '../../partner/node.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { schemaHash } from '../../src/federation/job-presets.ts';
import { MemoryBudgetGuard } from '../../src/privacy/budget/memory-guard.ts';
import { auditLedgers } from '../../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { SEALED_KEY_FILE, SIGNED_MANIFEST_FILE } from '../../owner/job-state.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const JOB = 'owner-resume';

// Issue 19 item 4: a `fedmark job run` process SIGKILLed mid-job and started again with the same
// arguments resumes the job it registered (same signed manifest, same job key) and saves the model.
describe('fedmark job run, killed mid-job and restarted', () => {
  let coord: TestCoordinator;
  let f: ChaosFixture;
  let out: string;
  let args: string[];
  beforeAll(async () => {
    coord = await startTestCoordinator({ logLevel: 'warn' });
    f = await prepareFixture(join(coord.dir, 'fx'), { partners: 2, rowsPerPartner: 150, seed: 11 });
    writeIdentityFile(join(coord.dir, 'owner.key.json'), f.owner, { force: true });
    const pubs = f.partners.map((p) => {
      const file = join(coord.dir, `${p.name}.pub.json`);
      writeFileSync(file, JSON.stringify(publicIdentity(p.identity)));
      return file;
    });
    out = join(coord.dir, 'owner-out');
    args = [
      'job',
      'run',
      '--coordinator',
      coord.url,
      '--identity',
      join(coord.dir, 'owner.key.json'),
      '--job',
      JOB,
      '--schema',
      f.schemaFile,
      '--partner',
      ...pubs,
      '--purpose',
      'churn-model',
      '--rounds',
      '3',
      '--epsilon',
      '3',
      '--out',
      out,
    ];
  }, 60_000);
  afterAll(async () => {
    await coord?.close();
  });

  const fedmark = (...a: string[]) => spawnSync(process.execPath, ['--import', 'tsx', CLI_MAIN, ...a], { encoding: 'utf8', timeout: 60_000 });

  it("resumes with the persisted manifest and key, ends with the partners' model hash and a clean audit", async () => {
    const ownerProc = new NodeProcess('owner', CLI_MAIN, args, join(coord.dir, 'owner.log'));
    const guards = f.partners.map(() => new MemoryBudgetGuard(3));
    const hash = schemaHash(f.schema);
    const stateDir = (i: number) => join(coord.dir, f.partners[i].name);
    const partnerRuns = Promise.all(
      f.partners.map(async (p, i) => {
        const data = await loadPartnerData(p.csv, f.schema, HOLDOUT, SPLIT_SEED);
        return runPartnerNode({
          coordinatorUrl: coord.url,
          identity: p.identity,
          jobId: JOB,
          train: data.train,
          test: data.test,
          schemaHash: hash,
          stateDir: stateDir(i),
          reviewJob: () => [],
          budget: guards[i],
          log: silentLog,
          pollMs: 100,
        });
      }),
    );
    partnerRuns.catch(() => undefined);
    try {
      ownerProc.start();
      // Kill the owner once round 1 has closed (it registered the job and ran the key ceremony).
      const watcher = new CoordinatorClient(coord.url, f.owner);
      let closed: number[] = [];
      for (let t = 0; t < 600 && closed.length === 0; t++) {
        await sleep(100);
        closed = await watcher.status(JOB).then(
          (s) => s.closedRounds,
          () => [],
        );
        expect(ownerProc.running, `owner exited early; see ${ownerProc.logPath}`).toBe(true);
      }
      expect(closed.length).toBeGreaterThan(0);
      await ownerProc.kill();
      const manifestBytes = readFileSync(join(out, 'manifest.json'), 'utf8');
      expect(statSync(join(out, SEALED_KEY_FILE)).mode & 0o777).toBe(0o600);
      expect(statSync(join(out, SIGNED_MANIFEST_FILE)).mode & 0o777).toBe(0o600);
      expect(existsSync(join(out, 'model', 'model.json'))).toBe(false);

      // The same command again: another createdAt would be another signature (409 JOB_EXISTS before).
      await sleep(1100);
      ownerProc.start();
      const exit = await ownerProc.waitExit();
      expect(exit.code, exit.tail.join('\n')).toBe(0);
      expect(exit.tail.join('\n')).toMatch(/resuming job owner-resume/);
      const result = JSON.parse(exit.tail.filter((l) => l.startsWith('{"jobId"')).at(-1)!) as { state: string; modelHash: string };
      expect(result.state).toBe('completed');
      const ran = await partnerRuns;
      for (const r of ran) {
        expect(r.state).toBe('completed');
        expect(r.modelHash).toBe(result.modelHash);
      }
      expect(readFileSync(join(out, 'manifest.json'), 'utf8')).toBe(manifestBytes);
      expect(readFileSync(join(out, 'model', 'model.json'), 'utf8')).toContain(result.modelHash);

      const audit = auditLedgers({
        coordinator: join(coord.dataDir, 'ledgers', `${JOB}.ledger.jsonl`),
        partners: f.partners.map((_, i) => join(stateDir(i), 'partner.ledger.jsonl')),
        epsilonOf: composedEpsilon,
      });
      expect(audit.findings.filter((x) => x.severity === 'error')).toEqual([]);
      expect(audit.ok).toBe(true);
    } finally {
      ownerProc.close();
    }
  }, 240_000);

  it('a restart with other options or another job id in the same --out is refused by name', () => {
    let r = fedmark(...args.map((a, i) => (args[i - 1] === '--rounds' ? '4' : a)));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/job "owner-resume" in .* was created with other options \(differs in: rounds\)/);
    r = fedmark(...args.map((a) => (a === JOB ? 'another-job' : a)));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/holds job "owner-resume", not "another-job"/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);

  it('a persisted job key other than the one the ledger commits to is refused (KEY_COMMITMENT)', async () => {
    writeFileSync(join(out, SEALED_KEY_FILE), sealJobKey(JOB, new Uint8Array(randomBytes(64)), f.owner.boxPublicKey, f.owner));
    // Not spawnSync: the coordinator runs in this process and must answer the restarted owner.
    const again = new NodeProcess('owner-wrong-key', CLI_MAIN, args, join(coord.dir, 'owner-wrong-key.log'));
    try {
      again.start();
      const exit = await again.waitExit();
      expect(exit.code).not.toBe(0);
      expect(exit.tail.join('\n')).toMatch(/already registered with a commitment to another job key/);
    } finally {
      again.close();
    }
  }, 120_000);
});
