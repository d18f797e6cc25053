/**
 * Issue 11 item 10 — unrounded decryptions. CKKS decryptions are approximate and not noise-flooded:
 * their low-order bits are a function of the secret key and the encryption noise, and exact
 * decryptions shared with a party that holds the ciphertexts can leak the key (Li & Micciancio,
 * "On the Security of Homomorphic Encryption on Approximate Numbers", EUROCRYPT 2021). What leaves
 * the key holders — the model's parameters and the evaluation counts — must carry no more precision
 * than a documented grid, and be the same at every key holder.
 *
 * The test finds the coarsest grid the released values lie on (binary 2^-k or decimal 10^-k) and
 * requires a quantum of at least 2^-20 ≈ 1e-6, an order of magnitude above the CKKS error of one
 * decrypted parameter with the default parameters and two partners (≈ 5e-9 per decrypted slot,
 * divided by the total weight ≈ 0.05; today's evaluation counts, sums of ~2,000 decrypted cells,
 * come out as e.g. 120.00000020987869).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineJob, jobLedgerPath, readLedgerLines, startOwner, startPartner, startWorld, writePolicy, type AttackWorld } from './harness.ts';

const MIN_QUANTUM = 2 ** -20;

/** The coarsest quantum q = 2^-k (k ≤ 40) or 10^-k (k ≤ 12) of which every value is an exact multiple; null if none. */
function coarsestGrid(values: number[]): number | null {
  let binary: number | null = null;
  for (let k = 0; k <= 40 && binary === null; k++) if (values.every((x) => Number.isInteger(x * 2 ** k))) binary = 2 ** -k;
  let decimal: number | null = null;
  for (let k = 0; k <= 12 && decimal === null; k++) {
    const f = 10 ** k;
    // x·10^k of a value on the grid is an integer up to a few ulps of float64 rounding.
    if (values.every((x) => Math.abs(x * f - Math.round(x * f)) <= 4 * Number.EPSILON * Math.max(1, Math.abs(x * f)))) decimal = 10 ** -k;
  }
  return binary === null ? decimal : decimal === null ? binary : Math.max(binary, decimal);
}

describe('attack: unrounded decryptions', () => {
  let world: AttackWorld;
  beforeAll(async () => {
    world = await startWorld({ name: 'rounding' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it("released model parameters and evaluation counts lie on a documented grid, not CKKS's full-precision decryptions, and are identical at every key holder", async () => {
    const { manifest, signed } = defineJob(world, { jobId: 'rounding-1', rounds: 2 });
    const owner = startOwner(world, signed);
    const nodes = await Promise.all([0, 1].map((i) => startPartner(world, i, { jobId: manifest.jobId, policyFile: writePolicy(world, i, manifest) })));
    const result = await owner.result;
    expect(result.state).toBe('completed');
    await Promise.all(nodes.map((n) => n.exit()));

    const finalHash = (path: string) => readLedgerLines(path).find((e) => e.type === 'model.final' && e.payload.jobId === manifest.jobId)?.payload.modelHash;
    expect(
      nodes.map((n) => finalHash(n.ledgerPath)),
      'every partner ends with the owner’s model',
    ).toEqual(nodes.map(() => result.modelHash));
    expect(finalHash(jobLedgerPath(world, manifest.jobId))).toBe(result.modelHash);

    const params = Array.from(result.finalState.params);
    const counts = [...result.roundMetrics.map((r) => r.metrics), result.finalMetrics].flatMap((m) => (m ? [m.n, m.positives, m.negatives] : []));
    const show = (xs: number[]) =>
      xs
        .slice(0, 4)
        .map((x) => x.toPrecision(17))
        .join(', ');
    const paramGrid = coarsestGrid(params);
    const countGrid = coarsestGrid(counts);
    expect.soft(paramGrid ?? 0, `model parameters lie on no grid coarser than 2^-40 / 1e-12 (e.g. ${show(params)})`).toBeGreaterThanOrEqual(MIN_QUANTUM);
    expect
      .soft(countGrid ?? 0, `evaluation counts (n, positives, negatives of every round) lie on no grid coarser than 2^-40 / 1e-12 (e.g. ${show(counts)})`)
      .toBeGreaterThanOrEqual(MIN_QUANTUM);
  }, 240_000);
});
