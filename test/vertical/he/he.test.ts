import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../../src/util/rng.ts';
import { VerticalHeContext } from '../../../src/vertical/he/context.ts';
import { FeatureHolderEvaluator } from '../../../src/vertical/he/feature-holder.ts';
import { LabelHolderKeys } from '../../../src/vertical/he/label-holder.ts';
import { noisePlan, rowsPerCiphertext } from '../../../src/vertical/he/params.ts';
import { parseBlob } from '../../../src/crypto/seal-wire/blob.ts';
import { rejection } from '../../helpers/errors.ts';

let ctx: VerticalHeContext;
let lh: LabelHolderKeys;
let fh: FeatureHolderEvaluator;

beforeAll(async () => {
  ctx = await VerticalHeContext.create();
  lh = new LabelHolderKeys(ctx);
  fh = new FeatureHolderEvaluator(ctx, lh.publicKeyBytes());
});
afterAll(() => {
  fh?.dispose();
  lh?.dispose();
  ctx?.dispose();
});

function problem(n: number, bins: number, seed: number) {
  const rng = createRng(seed);
  const plan = noisePlan({ n: ctx.n, rows: rowsPerCiphertext(ctx.n, bins), minFloodBits: 40 }, ctx, n);
  const scale = 2 ** plan.scaleBits;
  const gq = Float64Array.from({ length: n }, () => Math.round((rng.next() * 2 - 1) * scale));
  const hq = Float64Array.from({ length: n }, () => Math.round(rng.next() * 0.25 * scale));
  const bin = Int16Array.from({ length: n }, () => rng.int(bins));
  const inNode = Array.from({ length: n }, () => rng.next() < 0.6);
  return { plan, gq, hq, bin, inNode };
}

function localBins(p: ReturnType<typeof problem>, rows: number) {
  return (block: number) => {
    const out = new Int16Array(rows).fill(-1);
    for (let j = 0; j < rows; j++) {
      const i = block * rows + j;
      if (i < p.bin.length && p.inNode[i]) out[j] = p.bin[i];
    }
    return out;
  };
}

describe("rotation-free per-bin sums under the label holder's BFV key", () => {
  it("gives the exact per-bin sums of the node's rows for every bin", () => {
    const bins = 16;
    const p = problem(1500, bins, 1);
    const blob = lh.encryptGradients(p.gq, p.hq, p.plan.rows);
    const blocks = Math.ceil(1500 / p.plan.rows);
    const g = fh.loadGradients(blob, blocks, p.plan.rows);
    const result = fh.resultsBlob([fh.binSums(g, bins, p.plan.floodBits, localBins(p, p.plan.rows))]);
    g.dispose();
    const [sums] = lh.decryptBinSums(result, [bins], p.plan.rows);
    const G = new Float64Array(bins);
    const H = new Float64Array(bins);
    p.bin.forEach((b, i) => {
      if (!p.inNode[i]) return;
      G[b] += p.gq[i];
      H[b] += p.hq[i];
    });
    expect(Array.from(sums.grad)).toEqual(Array.from(G));
    expect(Array.from(sums.hess)).toEqual(Array.from(H));
    expect(sums.noiseBudget).toBeGreaterThan(0);
    expect(p.plan.floodSecurityBits).toBeGreaterThan(40);
  });

  it('re-randomises: the same sums computed twice give unrelated ciphertexts', () => {
    const p = problem(300, 8, 2);
    const blob = lh.encryptGradients(p.gq, p.hq, p.plan.rows);
    const g = fh.loadGradients(blob, Math.ceil(300 / p.plan.rows), p.plan.rows);
    const a = fh.binSums(g, 8, p.plan.floodBits, localBins(p, p.plan.rows));
    const b = fh.binSums(g, 8, p.plan.floodBits, localBins(p, p.plan.rows));
    g.dispose();
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
    expect(same / a.length).toBeLessThan(0.02);
    const [x, y] = lh.decryptBinSums(fh.resultsBlob([a, b]), [8, 8], p.plan.rows);
    expect(Array.from(x.grad)).toEqual(Array.from(y.grad));
  });

  it('refuses a result blob whose bytes were changed, and a gradient blob of the wrong kind', async () => {
    const p = problem(200, 8, 3);
    const blob = lh.encryptGradients(p.gq, p.hq, p.plan.rows);
    const g = fh.loadGradients(blob, 1, p.plan.rows);
    const res = fh.resultsBlob([fh.binSums(g, 8, p.plan.floodBits, localBins(p, p.plan.rows))]);
    g.dispose();
    const bad = res.slice();
    bad[200] ^= 1;
    expect(() => lh.decryptBinSums(bad, [8], p.plan.rows)).toThrow(/checksum/);
    expect(() => fh.loadGradients(res, 1, p.plan.rows)).toThrow(/vertical result|bad magic/);
    expect(() => parseBlob(ctx.results, blob)).toThrow();
    await rejection(Promise.resolve().then(() => new FeatureHolderEvaluator(ctx, new Uint8Array(10))));
  });
});
