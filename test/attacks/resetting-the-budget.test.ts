/**
 * Issue 11 item 8 — resetting the budget by deleting or editing its file. The privacy budget store is
 * a file next to the partner's own signed ledger; deleting it (or replacing it with a valid, empty
 * store) must not hand out the spent ε again: a node whose ledger holds charges its store does not
 * refuses to start.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BudgetStore } from '../../src/privacy/budget/store.ts';
import {
  CuriousPartner,
  POLL_MS,
  defineJob,
  ledgerCharges,
  readLedgerLines,
  startOwner,
  startPartner,
  startWorld,
  uploads,
  verdictOf,
  waitFor,
  writePolicy,
  type AttackWorld,
} from './harness.ts';

describe.concurrent('attack: resetting the budget by deleting or editing its file', () => {
  let world: AttackWorld;
  beforeAll(async () => {
    world = await startWorld({ name: 'budget' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('a partner whose budget file was deleted between jobs refuses to start while its ledger holds charges', async ({ expect }) => {
    const home = join(world.dir, 'home-a');
    const first = defineJob(world, { jobId: 'budget-first', rounds: 1 });
    const policy = writePolicy(world, 0, first.manifest);
    const owner = startOwner(world, first.signed);
    const a = await startPartner(world, 0, { jobId: 'budget-first', policyFile: policy, stateDir: home });
    const b = await startPartner(world, 1, { jobId: 'budget-first', policyFile: writePolicy(world, 1, first.manifest) });
    expect((await owner.result).state).toBe('completed');
    await Promise.all([a.exit(), b.exit()]);
    const spent = ledgerCharges(a.ledgerPath, 'budget-first');
    expect(spent.length, "the first job's charges are in the partner's own ledger").toBeGreaterThan(0);

    rmSync(a.budgetPath);
    const second = defineJob(world, { jobId: 'budget-second', rounds: 1 });
    startOwner(world, second.signed);
    const again = await startPartner(world, 0, { jobId: 'budget-second', policyFile: policy, stateDir: home });
    const v = await verdictOf(world, again, 'budget-second');
    expect(
      v.accepted,
      `with its budget file deleted, the partner accepted a new job although its ledger records ${spent.length} charge(s) of job budget-first`,
    ).toBe(false);
    expect(v.exit?.code, 'the partner refuses to start').not.toBe(0);
  }, 120_000);

  it('a partner whose budget file was replaced by an empty store mid-job refuses to start again', async ({ expect }) => {
    const home = join(world.dir, 'home-b');
    const { manifest, signed } = defineJob(world, { jobId: 'budget-midjob', rounds: 2 });
    const policy = writePolicy(world, 0, manifest);
    startOwner(world, signed);
    const a = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: policy, stateDir: home });
    const b = await CuriousPartner.join(world, 1, manifest.jobId);
    await waitFor(async () => (await b.client.status(manifest.jobId)).roundState === 'open', 'round 1 to open', 30_000, POLL_MS);
    await b.submit(1, 'train');
    // Round 1 is charged and recorded in A's own ledger; B holds round 2 back by not reporting its model yet.
    await waitFor(() => readLedgerLines(a.ledgerPath).some((e) => e.type === 'partner.round' && e.payload.round === 1), "round 1 in A's ledger");
    await a.kill();
    const empty = join(world.dir, 'empty-budget.json');
    BudgetStore.open(empty); // a valid, checksummed, empty store
    copyFileSync(empty, a.budgetPath);

    const restarted = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: policy, stateDir: home });
    // This job's uploads only: the other test, running concurrently, has the same partner upload to its own job.
    const mine = () => uploads(world, a.keyId).filter((u) => u.exchange.request.path.startsWith(`/v1/jobs/${manifest.jobId}/`)).length;
    const before = mine();
    await b.follow(1);
    await waitFor(() => mine() > before || !restarted.proc.running, 'A to upload round 2 or exit', 45_000);
    const code = restarted.proc.running ? null : restarted.proc.exits.at(-1)!.code;
    await restarted.kill();
    expect(
      mine() - before,
      `restarted on an empty budget store, the partner trained and uploaded round 2 as if round 1 (recorded in its ledger) had cost nothing`,
    ).toBe(0);
    expect(code, 'the partner refuses to start').not.toBe(0);
  }, 120_000);
});
