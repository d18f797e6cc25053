/**
 * Issue 11 item 2 — subtracting your own contribution. With two partners, a curious partner holds
 * the job key: it decrypts every published sum and subtracts its own vector, which leaves the other
 * partner's vector. Whatever that vector holds must be noise-protected and charged: the training row
 * count (the aggregation weight rows/10⁴), the hold-out row count, the score histograms with their
 * Σ log loss and Σ squared error, and the change one customer's consent withdrawal makes to them.
 *
 * The job owner (the attacker's accomplice) defines a small MLP (random initial weights spread the
 * scores over the bins) with a learning rate so small that the model does not move between rounds: the victim then scores the same model twice, with and without the customer
 * who withdrew, and the difference of its two histograms is that customer's row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { histogramLayout } from '../../src/metrics/histogram.ts';
import { WEIGHT_UNIT } from '../../src/federation/workloads/sgd/index.ts';
import {
  budgetCharges,
  CuriousPartner,
  defineJob,
  ledgerCharges,
  POLL_MS,
  startOwner,
  startPartner,
  startWorld,
  uploadMeta,
  waitFor,
  writePolicy,
  type AttackWorld,
  type RecordedCharge,
} from './harness.ts';

const near = (a: number, b: number, tol = 1e-3) => Math.abs(a - b) < tol;
const isInt = (x: number) => near(x, Math.round(x), 1e-6);

describe('attack: subtracting your own contribution', () => {
  let world: AttackWorld;
  beforeAll(async () => {
    world = await startWorld({ name: 'subtract' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it("a curious partner that subtracts its own vector from the published sums reads neither the other partner's exact counts and histograms nor one customer's withdrawal, and every such release is charged", async () => {
    const R = 2;
    const { manifest, signed } = defineJob(world, {
      jobId: 'subtract-1',
      rounds: R,
      // A small MLP (random initial weights, so scores spread over the bins) that barely learns.
      overrides: {
        model: { kind: 'mlp', hidden: [4], activation: 'relu' },
        localTraining: { epochs: 1, batchSize: 128, learningRate: 1e-9, optimizer: 'sgd', l2: 0, samplingRate: 0.02 },
      },
    });
    const victim = await world.partnerData(0);
    const leaver = victim.test.ids![0];
    const withdrawnFile = join(world.dir, 'withdrawn.txt');
    writeFileSync(withdrawnFile, '');

    const owner = startOwner(world, signed);
    const node = await startPartner(world, 0, { jobId: manifest.jobId, policyFile: writePolicy(world, 0, manifest), withdrawnFile });
    const curious = await CuriousPartner.join(world, 1, manifest.jobId);
    const status = () => curious.client.status(manifest.jobId);

    const layout = histogramLayout(manifest.evaluation.segments, manifest.evaluation.bins);
    const countCells = (v: Float64Array) => Array.from(v).filter((_, i) => i < layout.sums || i >= layout.sums + 3);
    const victimWeight: number[] = [];
    const victimEval = new Map<number, Float64Array>();

    for (let round = 1; round <= R + 1; round++) {
      const kind = round <= R ? 'train' : 'evaluate';
      await waitFor(
        async () => {
          const s = await status();
          return s.round === round && s.roundState === 'open';
        },
        `round ${round} to open`,
        30_000,
        POLL_MS,
      );
      const mine = await curious.submit(round, kind);
      await waitFor(async () => (await status()).closedRounds.includes(round), `round ${round} to close`, 30_000, POLL_MS);
      const lengths = Object.fromEntries(uploadMeta(mine).parts.map((p) => [p.name, p.length]));
      if (kind === 'train') {
        const sum = await curious.decryptPublished(round, 'update', lengths.update);
        const own = curious.decryptOwn(mine, 'update', lengths.update);
        victimWeight.push(sum![lengths.update - 1] - own[lengths.update - 1]);
      }
      const evalSum = await curious.decryptPublished(round, 'evaluation', lengths.evaluation);
      if (evalSum) {
        const own = curious.decryptOwn(mine, 'evaluation', lengths.evaluation);
        victimEval.set(
          round,
          evalSum.map((x, i) => x - own[i]),
        );
      }
      // The customer withdraws consent after round 1: the victim leaves its row out from round 2 on.
      if (round === 1) writeFileSync(withdrawnFile, `${leaver}\n`);
      if (kind === 'train') await curious.follow(round);
    }
    expect((await owner.result).state).toBe('completed');
    await node.exit();

    const rows = victim.train.n;
    const holdout = (round: number) => (round === 1 ? victim.test.n : victim.test.n - 1);
    const recoveredRows = victimWeight.map((w) => w * WEIGHT_UNIT);
    const leaks: string[] = [];
    if (recoveredRows.every((r) => near(r, rows)))
      leaks.push(`training rows: recovered ${recoveredRows.map((r) => r.toFixed(6)).join(', ')} for the victim's ${rows}`);
    const evals = [...victimEval];
    const holdoutRead = evals.map(([, v]) => v[layout.sums + 2]);
    if (evals.length && evals.every(([r, v]) => near(v[layout.sums + 2], holdout(r)))) {
      leaks.push(`hold-out rows: recovered ${holdoutRead.map((x) => x.toFixed(6)).join(', ')} for ${evals.map(([r]) => holdout(r)).join(', ')}`);
    }
    const exactHistogram = ([r, v]: [number, Float64Array]) => {
      const cells = countCells(v);
      const global = Array.from(v.subarray(layout.globalPos, layout.globalNeg + layout.bins)).reduce((a, b) => a + b, 0);
      return cells.every(isInt) && near(global, holdout(r));
    };
    if (evals.length && evals.every(exactHistogram))
      leaks.push(`score histograms: rounds ${evals.map(([r]) => r).join(', ')} decrypt to exact integer counts summing to the hold-out size`);
    const h1 = victimEval.get(1);
    const h2 = victimEval.get(2);
    if (h1 && h2) {
      const diff = countCells(h2).map((x, i) => x - countCells(h1)[i]);
      const changed = diff.filter((d) => !near(d, 0, 1e-6));
      if (changed.length > 0 && changed.length <= 1 + layout.segments.length && changed.every((d) => near(d, -1, 1e-6))) {
        leaks.push(
          `consent withdrawal: rounds 1 → 2 differ in exactly ${changed.length} count cell(s), each by −1 (the customer's score bin, label and sensitive groups)`,
        );
      }
    }
    // Σ log loss and Σ squared error are released too: with the model frozen, two later rounds over the
    // same rows repeat them exactly, and round 1 minus round 2 is the withdrawn customer's own loss.
    const h3 = victimEval.get(3);
    if (h2 && h3 && near(h2[layout.sums], h3[layout.sums], 1e-6) && near(h2[layout.sums + 1], h3[layout.sums + 1], 1e-6)) {
      const own = h1 ? ` (round 1 − round 2: the withdrawn customer's log loss ${(h1[layout.sums] - h2[layout.sums]).toFixed(6)})` : '';
      leaks.push(`Σ log loss / Σ squared error: rounds 2 and 3 repeat to 1e-6 (${h2[layout.sums].toFixed(6)} / ${h2[layout.sums + 1].toFixed(6)})${own}`);
    }
    expect.soft(leaks, 'what the curious partner read exactly').toEqual([]);

    // Every release is charged in the victim's budget and its own ledger.
    const weightIsConstant = victimWeight.every((w) => w === victimWeight[0]);
    const check = (where: string, charges: RecordedCharge[]) => {
      const missing: string[] = [];
      const at = (round: number, label: RegExp) => charges.some((c) => c.round === round && c.label !== null && label.test(c.label));
      for (let round = 1; round <= R; round++) {
        if (!weightIsConstant && !at(round, /weight/)) missing.push(`round ${round} weight`);
        if (victimEval.has(round) && !at(round, /eval|hist/)) missing.push(`round ${round} evaluation`);
      }
      if (!charges.some((c) => c.round === R + 1)) missing.push(`final evaluation (round ${R + 1})`);
      expect.soft(missing, `${where}: releases without a charge (recorded: ${JSON.stringify(charges)})`).toEqual([]);
    };
    check('budget store', budgetCharges(node.budgetPath, manifest.jobId));
    check('partner ledger', ledgerCharges(node.ledgerPath, manifest.jobId));
  }, 120_000);
});
