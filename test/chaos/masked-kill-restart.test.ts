/**
 * Crash recovery under SIGKILL with masked aggregation inside BFV (manifest `encryption.scheme:
 * "secagg-bfv"`, docs/CRYPTO.md), on the harness of kill-restart.test.ts (./run-job.ts): the
 * coordinator is SIGKILLed right after a seeded k-th accepted masked upload (mid-attempt: the share
 * stage closed, the unmask stage not yet — a restarted coordinator replays its stage log), and a
 * partner node right after its masked upload of a seeded round (a restarted node restores its
 * snapshot and re-sends the same consistency and reveal answers). Then the job completes at every
 * round's first attempt, the store's masked sums unmask (with the stage log's evidence, as a key
 * holder opens them) to the model every node reports, and that model is bit-equal to an
 * uninterrupted masked run's: the stochastic rounding takes seeded bits (secagg/round-config.ts), so
 * nothing but a lost, doubled or re-masked upload could move it.
 *
 * Not a kill point here: a node killed after masking but before its upload was kept withholds that
 * upload for good (partner/steps/masked-round.ts: the same masks are never applied to a second
 * vector), so it drops out of the attempt and the model differs by design — masked-dropouts covers
 * that recovery.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSecaggLedger } from '../../src/federation/secagg/ledger-record.ts';
import { defaultSecaggSpec } from '../../src/federation/secagg/spec.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { createRng } from '../../src/util/rng.ts';
import { maxAbsDiff, prepareFixture, type ChaosFixture } from './helpers.ts';
import { PARTNERS, ROUNDS, ROWS_PER_PARTNER, checkRun, describePoint, runJob, type KillPoint, type RunResult } from './run-job.ts';

const SEED = 8;

/** One coordinator kill after a seeded accepted upload, one partner kill after its upload of a seeded round. */
function maskedKillPlan(seed: number): KillPoint[] {
  const rng = createRng(seed);
  return [
    { target: 'coordinator', after: 'accepted', n: 1 + rng.int(PARTNERS * (ROUNDS + 1)), delayMs: rng.int(150) },
    { target: rng.int(PARTNERS), after: 'submitted', round: 1 + rng.int(ROUNDS), delayMs: rng.int(50) },
  ];
}

describe(`masked aggregation: SIGKILL of the coordinator and of a partner node (seed ${SEED}: ${maskedKillPlan(SEED).map(describePoint).join('; ')})`, () => {
  let root: string;
  let fixture: ChaosFixture;
  let baseline: RunResult;
  let run: RunResult;
  const encryption = defaultSecaggSpec();

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fedmark-masked-chaos-'));
    fixture = await prepareFixture(root, { partners: PARTNERS, rowsPerPartner: ROWS_PER_PARTNER, seed: 5 });
    // The same job id in both runs: the seeded rounding bits are bound to it.
    baseline = await runJob(fixture, { dir: join(root, 'baseline'), jobId: 'masked-chaos', epsilon: null, kills: [], encryption });
    run = await runJob(fixture, { dir: join(root, 'killed'), jobId: 'masked-chaos', epsilon: null, kills: maskedKillPlan(SEED), encryption });
    process.stderr.write(`[chaos] masked run times (s): baseline ${baseline.seconds.toFixed(1)}, killed ${run.seconds.toFixed(1)}\n`);
  }, 240_000);

  afterAll(() => {
    if (root && !process.env.FEDMARK_KEEP_TEST_DIR) rmSync(root, { recursive: true, force: true });
  });

  it('the uninterrupted masked run completes, counts every upload once and audits clean', () => {
    expect(baseline.manifest.encryption.scheme).toBe('secagg-bfv');
    checkRun(baseline, fixture);
    expect(baseline.unexpectedClientExits).toEqual([]);
    expect(baseline.ownerError).toBeNull();
  });

  it('every planned kill happened and the killed processes were restarted', () => {
    expect(run.kills.map((k) => describePoint(k.point)).sort()).toEqual(maskedKillPlan(SEED).map(describePoint).sort());
    expect(run.coordinatorStarts).toBeGreaterThanOrEqual(2);
    expect(run.clientStarts[maskedKillPlan(SEED)[1].target as number]).toBeGreaterThanOrEqual(2);
  });

  it("finishes at every round's first attempt with the uninterrupted masked run's model, bit for bit", async () => {
    checkRun(run, fixture);
    // The round entries written by the restarted coordinator record the configs the partners ran under.
    expect(await checkSecaggLedger(run.ledgers.coordinator, readLedger(run.ledgers.coordinator).entries)).toEqual([]);
    expect(run.finals[0]?.modelHash).toBe(baseline.finals[0]?.modelHash);
    expect(maxAbsDiff(run.stored.replayed[ROUNDS - 1].params, baseline.stored.replayed[ROUNDS - 1].params)).toBe(0);
  });

  it('partner nodes and the job owner ride out the restarts without crashing', () => {
    expect({ clients: run.unexpectedClientExits.map((e) => `${e.node}: exit ${e.code}: ${e.tail.at(-1) ?? ''}`), owner: run.ownerError }).toEqual({
      clients: [],
      owner: null,
    });
  });
});
