/**
 * Issue 11 item 1 — re-asking for a fresh release. A coordinator that keeps answering "round 1,
 * attempt 0 is open and you have not submitted" must not get a second, freshly noised update for a
 * release the partner charged once: averaging k such draws cuts the DP noise by √k.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { jsonResponse, parseJson } from '../helpers/lying-proxy.ts';
import {
  budgetCharges,
  defineJob,
  acceptOnly,
  ledgerCharges,
  releasesOf,
  startOwner,
  startPartner,
  startWorld,
  uploadMeta,
  uploads,
  waitFor,
  writePolicy,
  type AttackWorld,
} from './harness.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('attack: re-asking for a fresh release', () => {
  let world: AttackWorld;
  beforeAll(async () => {
    world = await startWorld({ name: 'reask' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('a coordinator that keeps saying "round 1 open, you have not submitted" gets the charged bytes again, never a fresh draw', async () => {
    const { manifest, signed } = defineJob(world, { jobId: 'reask-1', rounds: 2 });
    const victim = world.keyIdOf(0);
    // The lie: once round 1 is open, the victim sees that snapshot forever, with itself not submitted.
    let frozen: Record<string, unknown> | null = null;
    world.proxy.on({ method: 'GET', path: new RegExp(`^/v1/jobs/${manifest.jobId}$`), keyId: victim }, async (_req, ctx) => {
      const real = await ctx.forward();
      if (real.status !== 200) return real;
      const s = parseJson<Record<string, unknown>>(real);
      if (!frozen && s.round === 1 && s.roundState === 'open') frozen = s;
      return frozen ? jsonResponse(200, { ...frozen, attempt: 0, roundState: 'open', submitted: [], closedRounds: [] }) : real;
    });
    // Uploads are acknowledged whatever the coordinator said about them.
    world.proxy.on({ method: 'PUT', path: /\/rounds\/\d+\/submission$/, keyId: victim }, async (_req, ctx) => {
      const real = await ctx.forward();
      return real.status === 409 ? jsonResponse(200, { duplicate: false }) : real;
    });

    startOwner(world, signed);
    const node = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest) });
    await acceptOnly(world, 1, manifest.jobId);

    // Give the lying coordinator time to re-ask many times (every poll is another chance).
    await waitFor(() => uploads(world, victim).length >= 1, 'the victim to upload round 1', 30_000);
    const until = Date.now() + 8_000;
    await waitFor(() => uploads(world, victim).length >= 7 || Date.now() > until, 'seven uploads or 8 s');
    await node.kill();

    const sent = uploads(world, victim).map((u) => ({ ...uploadMeta(u.body), hash: sha(u.body) }));
    const byRelease = new Map<string, Set<string>>();
    for (const u of sent) {
      const key = `${u.round}.${u.attempt}`;
      if (!byRelease.has(key)) byRelease.set(key, new Set());
      byRelease.get(key)!.add(u.hash);
    }
    const distinct = [...byRelease.values()].reduce((a, s) => a + s.size, 0);
    const budget = releasesOf(budgetCharges(node.budgetPath, manifest.jobId));
    const ledger = releasesOf(ledgerCharges(node.ledgerPath, manifest.jobId));
    const summary = `${sent.length} uploads, ${distinct} distinct bodies for releases ${[...byRelease.keys()].join(',')}; budget charges ${budget.join(',') || 'none'}; ledger charges ${ledger.join(',') || 'none'}`;

    expect(sent.length, summary).toBeGreaterThan(0);
    for (const [release, bodies] of byRelease) expect(bodies.size, `release ${release}: ${summary}`).toBe(1);
    expect(distinct, summary).toBe(budget.length);
    expect(distinct, summary).toBe(ledger.length);
  }, 240_000);
});
