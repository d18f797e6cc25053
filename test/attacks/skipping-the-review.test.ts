/**
 * Issue 11 item 4 — skipping the review. Whether a partner accepted a job is the partner's own state,
 * not the coordinator's unsigned status; and the full policy review (purpose, columns, budget, …) runs
 * before any training, for private and non-private jobs alike.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { jsonResponse, parseJson } from '../helpers/lying-proxy.ts';
import {
  acceptOnly,
  defineJob,
  readLedgerLines,
  startOwner,
  startPartner,
  startWorld,
  uploads,
  waitFor,
  writePolicy,
  type AttackWorld,
  type PartnerNode,
} from './harness.ts';

/** Waits until the node uploads something or exits; then stops it. */
async function outcome(world: AttackWorld, node: PartnerNode, jobId: string) {
  await waitFor(() => uploads(world, node.keyId).length > 0 || !node.proc.running, `${node.proc.name} to upload or exit`, 45_000);
  await node.kill();
  const own = readLedgerLines(node.ledgerPath)
    .filter((e) => e.payload.jobId === jobId)
    .map((e) => e.type);
  return { uploaded: uploads(world, node.keyId).length, ledger: own };
}

describe.concurrent('attack: skipping the review', () => {
  let world: AttackWorld;
  beforeAll(async () => {
    world = await startWorld({ name: 'review' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('a coordinator that reports the partner as already "accepted" does not get it to train on a job its policy forbids', async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'review-lied', purpose: 'credit-scoring' });
    const victim = world.keyIdOf(0);
    world.proxy.on({ method: 'GET', path: new RegExp(`^/v1/jobs/${manifest.jobId}$`), keyId: victim }, async (_req, ctx) => {
      const real = await ctx.forward();
      if (real.status !== 200) return real;
      const s = parseJson<{ partners: { keyId: string; status: string }[]; round: number; state: string } & Record<string, unknown>>(real);
      const lie = { ...s, partners: s.partners.map((p) => (p.keyId === victim ? { ...p, status: 'accepted' } : p)) };
      // Nobody really accepted, so the coordinator never opens a round: claim round 1 is open.
      if (s.round === 0)
        Object.assign(lie, {
          state: 'running',
          round: 1,
          attempt: 0,
          roundState: 'open',
          roundKind: 'train',
          selected: s.partners.map((p) => p.keyId),
          submitted: [],
        });
      return jsonResponse(200, lie);
    });
    startOwner(world, signed);
    const node = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest, { allowedPurposes: ['churn-model'] }) });
    const o = await outcome(world, node, manifest.jobId);
    expect(
      o.uploaded,
      `the partner trained on a job whose purpose "credit-scoring" its policy forbids and uploaded ${o.uploaded} update(s); its ledger for the job: ${o.ledger.join(', ') || 'empty'}`,
    ).toBe(0);
    expect(o.ledger, 'its own ledger records the refusal').toContain('partner.refusal');
  }, 240_000);

  it('a non-private job with a forbidden purpose and forbidden columns is refused before any training', async ({ expect }) => {
    const { manifest, signed } = defineJob(world, { jobId: 'review-nondp', epsilon: null, purpose: 'credit-scoring' });
    const forbidden = manifest.dataset.columns.slice(0, 2);
    startOwner(world, signed);
    const node = await startPartner(world, 0, {
      jobId: manifest.jobId,
      policyFile: writePolicy(world, 0, manifest, {
        allowNonPrivateJobs: true,
        allowedPurposes: ['churn-model'],
        allowedColumns: manifest.dataset.columns.filter((c) => !forbidden.includes(c)),
      }),
    });
    await acceptOnly(world, 1, manifest.jobId);
    const o = await outcome(world, node, manifest.jobId);
    expect(
      o.uploaded,
      `the partner trained on a non-private job with purpose "credit-scoring" and columns ${forbidden.join(', ')} its policy forbids, and uploaded ${o.uploaded} update(s); its ledger for the job: ${o.ledger.join(', ')}`,
    ).toBe(0);
    expect(o.ledger, 'its own ledger records the refusal').toContain('partner.refusal');
  }, 240_000);
});
