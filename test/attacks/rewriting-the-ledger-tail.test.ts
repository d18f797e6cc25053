/**
 * Issue 11 item 6 — rewriting the ledger tail. The coordinator writes the job ledger with its own
 * key, so it can cut entries off the end, append entries of its own and re-sign the head pointer.
 * `fedmark audit`, given both partners' own ledgers, must catch that; a missing head pointer is an
 * error; a ledger fabricated under another owner (or coordinator) key fails `--trusted-owner`
 * (`--trusted-coordinator`); and a round attempt that failed its quorum still shows its charges in
 * both ledgers, from which the audit recomputes ε.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, publicIdentity, readIdentityFile, type Identity } from '../../src/crypto/identity.ts';
import { composedEpsilon } from '../../src/privacy/accountant.ts';
import { LedgerWriter } from '../../src/privacy/ledger/writer.ts';
import { signerFromSecretKey } from '../../src/privacy/ledger/signing.ts';
import type { PayloadInput } from '../../src/privacy/ledger/entries.ts';
import {
  acceptOnly,
  budgetCharges,
  defineJob,
  jobLedgerPath,
  ledgerCharges,
  readLedgerLines,
  releasesOf,
  runCli,
  startOwner,
  startPartner,
  startWorld,
  writePolicy,
  type AttackWorld,
  type PartnerNode,
} from './harness.ts';

type AuditJson = {
  ok: boolean;
  findings: { code: string; message: string; severity: string }[];
  partners: { partner: string; epsilon: number | null; rounds: number }[];
};

/** `fedmark audit … --json`: exit code, and the parsed result when it printed one. */
async function audit(args: string[]): Promise<{ code: number; result: AuditJson | null; output: string }> {
  const r = await runCli(['audit', ...args, '--json']);
  let result: AuditJson | null = null;
  try {
    result = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as AuditJson;
  } catch {
    result = null;
  }
  return { code: r.code, result, output: `${r.stdout}${r.stderr}`.slice(0, 1500) };
}

const party = (id: Identity) => ({ name: id.name, keyId: publicIdentity(id).keyId, signPublicKey: Buffer.from(id.signPublicKey).toString('base64') });

describe.concurrent('attack: rewriting the ledger tail', () => {
  let world: AttackWorld;
  let jobId: string;
  let partners: PartnerNode[];
  let coordinator: Identity;
  let n = 0;
  /** A private copy of the completed job's ledger (and head pointer) for one attack. */
  const copy = (withHead = true) => {
    const dir = join(world.dir, `copy-${n++}`);
    mkdirSync(dir);
    const to = join(dir, `${jobId}.ledger.jsonl`);
    copyFileSync(jobLedgerPath(world, jobId), to);
    if (withHead) copyFileSync(`${jobLedgerPath(world, jobId)}.head`, `${to}.head`);
    return to;
  };

  beforeAll(async () => {
    world = await startWorld({ name: 'ledger' });
    const { manifest, signed } = defineJob(world, { jobId: 'ledger-1', rounds: 1 });
    jobId = manifest.jobId;
    const owner = startOwner(world, signed);
    partners = await Promise.all([0, 1].map((i) => startPartner(world, i, { jobId, policyFile: writePolicy(world, i, manifest) })));
    expect((await owner.result).state).toBe('completed');
    await Promise.all(partners.map((p) => p.exit()));
    coordinator = readIdentityFile(join(world.coordinator.dataDir, 'coordinator.key.json'));
  }, 120_000);
  afterAll(async () => {
    await world?.close();
  });

  it('a coordinator that deletes its evaluation and final-model entries, appends its own job.halt and re-signs the head is caught by the audit with both partner ledgers', async ({
    expect,
  }) => {
    const path = copy();
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    const cut = readLedgerLines(path).findIndex((e) => e.type === 'evaluation');
    expect(
      readLedgerLines(path)
        .slice(cut)
        .map((e) => e.type),
      'the genuine ledger ends with the evaluation and final-model entries',
    ).toEqual(['evaluation', 'model.final']);
    // Cut them off, drop the head pointer, and let the ledger writer sign what comes next.
    writeFileSync(
      path,
      lines
        .slice(0, cut)
        .map((l) => `${l}\n`)
        .join(''),
    );
    rmSync(`${path}.head`);
    const w = LedgerWriter.open(path, signerFromSecretKey(coordinator.signSecretKey));
    w.append('job.halt', { jobId, reason: 'halted by the coordinator: no model was produced', afterRound: 1 } satisfies PayloadInput<'job.halt'>);
    w.close();
    expect(existsSync(`${path}.head`), 'the rewritten ledger has a freshly signed head').toBe(true);

    const r = await audit([path, '--partner', ...partners.map((p) => p.ledgerPath)]);
    expect(r.result, r.output).not.toBeNull();
    expect(
      r.result!.ok,
      `fedmark audit accepts a ledger whose evaluation and model.final entries (both in the partners' ledgers) were replaced by a coordinator-signed job.halt; findings: ${JSON.stringify(r.result!.findings.map((f) => f.code))}`,
    ).toBe(false);
    expect(r.code).toBe(1);
  }, 60_000);

  it('a missing head pointer is an error, not a warning', async ({ expect }) => {
    const r = await audit([copy(false), '--partner', ...partners.map((p) => p.ledgerPath)]);
    expect(r.result, r.output).not.toBeNull();
    expect(
      r.result!.ok,
      `fedmark audit passes a job ledger without its head pointer; findings: ${JSON.stringify(r.result!.findings.map((f) => `${f.severity}:${f.code}`))}`,
    ).toBe(false);
    expect(r.code).toBe(1);
  }, 60_000);

  it('a ledger re-signed from genesis under another owner key fails --trusted-owner, and one under another coordinator key fails --trusted-coordinator', async ({
    expect,
  }) => {
    const genuine = readLedgerLines(jobLedgerPath(world, jobId))[0].payload as PayloadInput<'job.manifest'>;
    const forge = (owner: Identity, coord: Identity) => {
      const dir = join(world.dir, `forged-${n++}`);
      mkdirSync(dir);
      const path = join(dir, `${jobId}.ledger.jsonl`);
      const w = LedgerWriter.open(path, signerFromSecretKey(owner.signSecretKey));
      const { manifest: _embedded, ...rest } = genuine;
      w.append('job.manifest', { ...rest, owner: party(owner), coordinator: party(coord) });
      w.append('job.halt', { jobId, reason: 'cancelled before any round', afterRound: 0 }, { signer: signerFromSecretKey(coord.signSecretKey) });
      w.close();
      return path;
    };
    const realOwner = publicIdentity(world.owner).keyId;
    const trust = ['--trusted-owner', realOwner, '--trusted-coordinator', world.coordinatorKeyId];
    const forgedOwner = forge(generateIdentity('another-owner'), coordinator);
    const byOtherOwner = await audit([forgedOwner, ...trust]);
    const untrusted = await audit([forgedOwner]);
    const byOtherCoordinator = await audit([forge(world.owner, generateIdentity('another-coordinator')), ...trust]);
    const control = await audit([jobLedgerPath(world, jobId), '--partner', ...partners.map((p) => p.ledgerPath), ...trust]);

    expect(
      byOtherOwner.result,
      `the forged ledger audits ok=${untrusted.result?.ok} without trust options; with them: ${byOtherOwner.output.trim()}`,
    ).not.toBeNull();
    expect(byOtherOwner.result!.ok, 'a ledger whose manifest is signed by another owner passes --trusted-owner').toBe(false);
    expect(byOtherOwner.result!.findings.some((f) => /owner/i.test(`${f.code} ${f.message}`))).toBe(true);
    expect(byOtherCoordinator.result, `fedmark audit --trusted-coordinator: ${byOtherCoordinator.output}`).not.toBeNull();
    expect(byOtherCoordinator.result!.ok, 'a ledger written by another coordinator key passes --trusted-coordinator').toBe(false);
    expect(byOtherCoordinator.result!.findings.some((f) => /coordinator/i.test(`${f.code} ${f.message}`))).toBe(true);
    expect(control.result?.ok, `the genuine ledger with the genuine keys: ${control.output}`).toBe(true);
    expect(control.code).toBe(0);
  }, 60_000);

  it('a round attempt that failed its quorum still shows its charges in both ledgers, and the audit recomputes ε from them', async ({ expect }) => {
    // Calibrated for 3 rounds, so the budget covers all three attempts of round 1.
    const { manifest, signed } = defineJob(world, { jobId: 'ledger-failed', rounds: 3, overrides: { roundDeadlineSeconds: 3 } });
    const owner = startOwner(world, signed);
    const a = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest) });
    await acceptOnly(world, 1, manifest.jobId); // accepts, then never submits: every attempt misses the quorum
    expect((await owner.result).state).toBe('failed');
    await a.exit();

    const charged = budgetCharges(a.budgetPath, manifest.jobId);
    expect(charged.length, 'the partner charged its budget for the attempts it uploaded to').toBeGreaterThan(0);
    const own = releasesOf(ledgerCharges(a.ledgerPath, manifest.jobId));
    const coord = releasesOf(ledgerCharges(jobLedgerPath(world, manifest.jobId), manifest.jobId, a.keyId));
    const expected = composedEpsilon(
      charged.map((c) => c.event),
      charged[0].delta ?? manifest.dp!.delta,
    );
    const r = await audit([jobLedgerPath(world, manifest.jobId), '--partner', a.ledgerPath]);
    const eps = r.result?.partners.find((p) => p.partner === a.keyId)?.epsilon ?? null;
    const summary = `budget charged attempts ${releasesOf(charged).join(', ')} (ε ${expected.toFixed(4)}); partner ledger records ${own.join(', ') || 'none'}; coordinator ledger records ${coord.join(', ') || 'none'}; audit ε ${eps}`;
    expect.soft(own, `partner ledger: ${summary}`).toEqual(releasesOf(charged));
    expect.soft(coord, `coordinator ledger: ${summary}`).toEqual(releasesOf(charged));
    expect.soft(eps ?? 0, `audit: ${summary}`).toBeGreaterThanOrEqual(expected * (1 - 1e-9));
  }, 240_000);
});
