import { readFileSync } from 'node:fs';
import { REAL_QUANTUM } from '../../src/federation/release-grid.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.ts';
import { deterministicIdentity, makeJob, runFederation, telcoPartners } from '../helpers/partners.ts';

/**
 * The refactoring guard on the real path: a coordinator, three partner nodes and the owner node over
 * HTTP, with fixed identities (training seeds mix in key ids), plaintext sums and no DP, must end
 * with the parameters recorded before the workload seam and round machine (fedmark fd74c72). The
 * coordinator adds uploads in arrival order, and float addition is not associative, so the last bits
 * of a run differ with the order; nothing else may.
 */
const baseline = JSON.parse(readFileSync(new URL('../fixtures/reference/replay-http-baseline.json', import.meta.url), 'utf8')) as {
  params: number[];
  auc: number;
  rounds: number[];
};

describe('a seeded HTTP federation replays the recorded baseline', () => {
  let coord: TestCoordinator;
  beforeAll(async () => {
    coord = await startTestCoordinator();
  });
  afterAll(async () => {
    await coord?.close();
  });

  it('3 partners × 3 rounds, plaintext, no DP', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 300 });
    const [owner, ...ids] = ['owner', 'bank-a', 'telco-b', 'retail-c'].map((n) => deterministicIdentity(n, `replay-http|${n}`));
    // The baseline was recorded with these local-training settings (the non-private preset of the time).
    const localTraining = { epochs: 1, batchSize: 64, learningRate: 0.1, optimizer: 'sgd' as const, l2: 0 };
    const { signed } = makeJob({
      jobId: 'replay-http',
      schema,
      owner,
      partners: ids,
      rounds: 3,
      encryption: { scheme: 'plain-insecure' },
      seed: 11,
      epsilon: null,
      localTraining,
    });
    const r = await runFederation({ url: coord.url, owner, identities: ids, signed, parts, schemaHash, stateDir: coord.dir, timeoutMs: 120_000 });
    expect(r.owner.state).toBe('completed');
    expect(new Set(r.nodes.map((n) => n.modelHash))).toEqual(new Set([r.owner.modelHash]));
    const params = r.owner.finalState.params;
    expect(params.length).toBe(baseline.params.length);
    // The baseline was recorded before decrypted sums and the released model were put on the release
    // grid (2⁻²⁰). The weights (225 rows / 10⁴ ≈ 0.0225) move by up to half a quantum, 2e-5 of
    // themselves, so over three rounds each parameter moves by at most ~1e-4; and it lies on the grid.
    const drift = Math.max(...baseline.params.map((v, i) => Math.abs(v - params[i])));
    expect(drift).toBeLessThan(1e-4);
    for (const p of params) expect(Number.isInteger(p / REAL_QUANTUM)).toBe(true);
    r.owner.roundMetrics.forEach((x, i) => expect(x.metrics!.auc).toBeCloseTo(baseline.rounds[i], 3));
  }, 150_000);
});
