import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_HE_PARAMS } from '../../src/crypto/index.ts';
import { FedmarkError } from '../../src/errors.ts';
import { accumulate, openSums } from '../../src/federation/aggregation.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { openSecureSum, type SecureSumScheme } from '../../src/federation/secure-sum.ts';
import type { RoundPlan } from '../../src/federation/workload.ts';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { signerFromSecretKey } from '../../src/privacy/ledger/signing.ts';
import { signSubmissionRecord } from '../../src/federation/submission-record.ts';
import { REAL_QUANTUM, toGrid } from '../../src/federation/release-grid.ts';

const plan: RoundPlan = {
  kind: 'train',
  stages: ['upload'],
  parts: [
    { name: 'update', length: 5, domain: 'real', bound: null, use: 'state' },
    { name: 'evaluation', length: 3, domain: 'count', bound: null, use: 'report' },
  ],
  selection: 'sample',
  releases: [],
  updatesState: true,
};
const ids = ['a', 'b', 'c'].map((n) => generateIdentity(n));
const manifest = { jobId: 'sum-job', quorum: 2, partners: ids.map(publicIdentity) } as JobManifest;
/** The contents a coordinator publishes with a round's sums: the signed records of the first `n` partners. */
const contents = (round: number, n: number) => ({
  round,
  attempt: 0,
  records: ids.slice(0, n).map((id) =>
    signSubmissionRecord(
      {
        jobId: 'sum-job',
        round,
        attempt: 0,
        kind: 'train',
        partner: publicIdentity(id).keyId,
        baseModelHash: 'a'.repeat(64),
        parts: plan.parts.map((p) => ({ name: p.name, sha256: 'b'.repeat(64) })),
      },
      signerFromSecretKey(id.signSecretKey),
    ),
  ),
});
const vec = (...xs: number[]) => Float64Array.from(xs);
const code = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(FedmarkError);
    return (err as FedmarkError).code;
  }
  return 'ok';
};

describe('plaintext scheme (benchmarks and explicitly insecure runs)', () => {
  it('sums vectors exactly and refuses blobs that are not vectors of the right length', async () => {
    const s = await openSecureSum({ scheme: 'plain-insecure' });
    const c = s.cipher(null);
    const sum = s.sum();
    sum.add(c.encrypt(vec(1, 2, 3)));
    sum.add(c.encrypt(vec(0.5, 0, -1)));
    expect(Array.from(c.decrypt(sum.toBytes(), 3))).toEqual([1.5, 2, 2]);
    expect(sum.count).toBe(2);
    expect(s.summands(sum.toBytes(), 3)).toBeNull();
    expect(code(() => s.inspect(new Uint8Array(4), 3))).toBe('PLAIN_BAD_BLOB');
    expect(code(() => s.inspect(c.encrypt(vec(1, 2)), 3))).toBe('PLAIN_BAD_BLOB');
    const nan = c.encrypt(vec(1));
    new DataView(nan.buffer).setFloat64(8, NaN, true);
    expect(code(() => s.inspect(nan, 1))).toBe('PLAIN_BAD_BLOB');
    expect(code(() => s.sum().toBytes())).toBe('SUM_EMPTY');
  });
});

describe('CKKS scheme and the aggregation over named parts', () => {
  let s: SecureSumScheme;
  let key: Uint8Array;
  beforeAll(async () => {
    s = await openSecureSum(DEFAULT_HE_PARAMS);
    key = s.generateSecretKey();
  });
  afterAll(() => s?.dispose());

  it('adds ciphertexts part by part; key holders decrypt the sums; the coordinator-side code never needs a key', () => {
    const c = s.cipher(key);
    const upload = (u: number[], e: number[]) => ({ update: c.encrypt(Float64Array.from(u)), evaluation: c.encrypt(Float64Array.from(e)) });
    let sums = accumulate(s, plan, {}, upload([1, 2, 3, 4, 5], [1, 0, 2]));
    sums = accumulate(s, plan, sums, upload([0.5, 0.5, 0.5, 0.5, 0.5], [0, 3, 1]));
    expect(s.summands(sums.update, 5)).toBe(2);
    const opened = openSums(s, c, manifest, plan, 1, sums, contents(1, 2), null);
    expect(Array.from(opened.update).map((x) => Math.round(x * 1e4) / 1e4)).toEqual([1.5, 2.5, 3.5, 4.5, 5.5]);
    expect(Array.from(opened.evaluation).map(Math.round)).toEqual([1, 3, 3]);
    expect(Object.keys(openSums(s, c, manifest, plan, 1, sums, contents(1, 2), null, 'state'))).toEqual(['update']);
    // The same sums with records that do not back them: too few, for another round, one that does not verify.
    expect(code(() => openSums(s, c, manifest, plan, 1, sums, contents(1, 3), null))).toBe('AGGREGATE_UNVERIFIED');
    expect(code(() => openSums(s, c, manifest, plan, 1, sums, { ...contents(2, 2), round: 1 }, null))).toBe('AGGREGATE_UNVERIFIED');
    const forged = contents(1, 2);
    forged.records[1] = { ...forged.records[1], attempt: 1 };
    expect(code(() => openSums(s, c, manifest, plan, 1, sums, { ...forged, attempt: 0 }, null))).toBe('AGGREGATE_UNVERIFIED');
    expect(code(() => accumulate(s, plan, sums, { update: sums.update }))).toBe('PART_MISSING');
    c.dispose();
  });

  it('opens a sum of three weighted SGD updates to the release grid, within half a quantum (plus CKKS error) of the exact sum', () => {
    // What the CKKS-vs-plaintext equivalence test relies on: an opened sum is the exact sum rounded to
    // the grid, except that a slot within CKKS error of a rounding boundary may round the other way —
    // never one more quantum than that. Values like a round's: w = 240 rows / 10⁴ times deltas in ±0.5.
    const c = s.cipher(key);
    const length = 200;
    const wide: RoundPlan = { ...plan, parts: [{ ...plan.parts[0], length }, plan.parts[1]] };
    const uploads = [0, 1, 2].map(() => Float64Array.from({ length }, () => toGrid(0.024) * (Math.random() - 0.5)));
    let sums = {};
    for (const u of uploads) sums = accumulate(s, wide, sums, { update: c.encrypt(u), evaluation: c.encrypt(Float64Array.from([1, 0, 2])) });
    const opened = openSums(s, c, manifest, wide, 1, sums, contents(1, 3), null).update;
    let worst = 0;
    for (let i = 0; i < length; i++) {
      const exact = uploads[0][i] + uploads[1][i] + uploads[2][i];
      expect(opened[i], `slot ${i} on the grid`).toBe(toGrid(opened[i]));
      worst = Math.max(worst, Math.abs(opened[i] - exact));
    }
    expect(worst).toBeLessThanOrEqual(REAL_QUANTUM / 2 + 1e-8);
    c.dispose();
  });

  it('key holders refuse to decrypt a "sum" of fewer partners than the quorum, or one missing a part', () => {
    const c = s.cipher(key);
    const lone = accumulate(s, plan, {}, { update: c.encrypt(new Float64Array(5)), evaluation: c.encrypt(new Float64Array(3)) });
    expect(code(() => openSums(s, c, manifest, plan, 4, lone, contents(4, 2), null))).toBe('AGGREGATE_TOO_FEW');
    const pair = accumulate(s, plan, lone, { update: c.encrypt(new Float64Array(5)), evaluation: c.encrypt(new Float64Array(3)) });
    expect(code(() => openSums(s, c, manifest, plan, 4, { update: pair.update }, contents(4, 2), null))).toBe('AGGREGATE_PART_MISSING');
    c.dispose();
  });

  it('the coordinator inspects blobs without a key and refuses what cannot be a ciphertext of the part', () => {
    const c = s.cipher(key);
    const blob = c.encrypt(new Float64Array(5));
    expect(code(() => s.inspect(blob, 5))).toBe('ok');
    expect(code(() => s.inspect(blob.subarray(0, blob.length - 7), 5))).not.toBe('ok');
    expect(code(() => s.inspect(new Uint8Array(100), 5))).not.toBe('ok');
    expect(code(() => s.cipher(null))).toBe('HE_NO_SECRET_KEY');
    c.dispose();
  });
});
