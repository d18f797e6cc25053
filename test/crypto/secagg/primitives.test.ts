import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { makeSecaggConfig, neighbourhoods, planEncoding } from '../../../src/crypto/secagg/index.ts';
import { seededPermutation } from '../../../src/crypto/secagg/graph.ts';
import { applyMask, MaskAccumulator, maskStream, pairwiseMaskKey, selfMaskKey } from '../../../src/crypto/secagg/prg.ts';
import { openSharePair, sealSharePair } from '../../../src/crypto/secagg/sealed-share.ts';
import { recoverSecret, shareSecret } from '../../../src/crypto/secagg/shamir.ts';
import { x25519Agree, x25519KeyPair } from '../../../src/crypto/secagg/x25519.ts';
import { expectCode, expectCodeAsync } from './helpers.ts';

const B = { jobId: 'job', round: 3, attempt: 1 };
const key = (s: string) => createHash('sha256').update(s).digest();

/** χ² over `bins` bins of equal width; bins = t when t is small, so every residue is its own bin. */
function chi2(v: Float64Array, t: number, bins: number): number {
  const c = new Float64Array(bins);
  for (const x of v) c[Math.floor((x * bins) / t)]++;
  const e = v.length / bins;
  return c.reduce((a, x) => a + (x - e) ** 2 / e, 0);
}

/** Upper 0.1% point of χ² with k dof, Wilson–Hilferty (Johnson, Kotz & Balakrishnan, eq. 18.24; < 1% off for k ≥ 30). */
function chi2Upper001(k: number): number {
  const z = 3.0902;
  return k * (1 - 2 / (9 * k) + z * Math.sqrt(2 / (9 * k))) ** 3;
}

describe('mask streams (HKDF-SHA256 → AES-256-CTR → rejection sampling mod t)', () => {
  it('are deterministic per key, differ across keys, and subtract back exactly', () => {
    const t = 1099511480321;
    const a = maskStream(key('a'), 5000, t);
    expect(maskStream(key('a'), 5000, t)).toEqual(a);
    expect(maskStream(key('b'), 5000, t)).not.toEqual(a);
    const v = Float64Array.from({ length: 5000 }, (_, i) => (i * 1_000_003) % t);
    const w = Float64Array.from(v);
    applyMask(w, key('k'), t, 1);
    applyMask(w, key('k'), t, -1);
    expect(w).toEqual(v);
  });

  it('are uniform even when half the candidates are rejected (t = 2^16 + 1) — χ² below its 0.1% point', () => {
    for (const [t, bins] of [
      [65537, 64],
      [97, 97],
      [1099511480321, 64],
    ]) {
      const s = maskStream(key(`u${t}`), 64_000, t);
      for (const x of s) if (!(Number.isInteger(x) && x >= 0 && x < t)) throw new Error(`out of range: ${x}`);
      expect(chi2(s, t, bins)).toBeLessThan(chi2Upper001(bins - 1));
    }
    // Control: reducing 17-bit draws mod t = 98,299 without rejection — the bias rejection avoids —
    // makes the lowest third of residues twice as likely, which the same test sees at once.
    const biased = Float64Array.from(maskStream(key('b'), 64_000, 2 ** 17), (x) => x % 98_299);
    expect(chi2(biased, 98_299, 64)).toBeGreaterThan(10 * chi2Upper001(63));
  });

  it('an accumulator of many streams equals applying them one by one, also past its exactness cap (t ≈ 2^50)', () => {
    for (const t of [1099511480321, 2 ** 50 - 27]) {
      const start = Float64Array.from({ length: 3000 }, (_, i) => (i * 7_919_003) % t);
      const stepwise = Float64Array.from(start);
      const acc = new MaskAccumulator(Float64Array.from(start), t);
      for (let k = 0; k < 20; k++) {
        const sign = k % 3 === 0 ? -1 : 1;
        applyMask(stepwise, key(`s${k}`), t, sign);
        acc.add(key(`s${k}`), sign);
      }
      const out = acc.finish();
      expect(out).toEqual(stepwise);
      for (const x of out) if (!(Number.isInteger(x) && x >= 0 && x < t)) throw new Error(`not a residue: ${x}`);
    }
  });

  it('pairwise keys agree from either side and change with job, round, attempt and pair', () => {
    const u = x25519KeyPair(key('u'));
    const v = x25519KeyPair(key('v'));
    const suv = x25519Agree(u.secretKey, v.publicKey);
    expect(x25519Agree(v.secretKey, u.publicKey)).toEqual(suv);
    const k = pairwiseMaskKey(suv, B, 'aa', 'bb');
    const variants = [
      pairwiseMaskKey(suv, { ...B, jobId: 'job2' }, 'aa', 'bb'),
      pairwiseMaskKey(suv, { ...B, round: 4 }, 'aa', 'bb'),
      pairwiseMaskKey(suv, { ...B, attempt: 2 }, 'aa', 'bb'),
      pairwiseMaskKey(suv, B, 'aa', 'bc'),
      selfMaskKey(suv, B, 'aa'),
    ];
    for (const x of variants) expect(Buffer.from(x).equals(Buffer.from(k))).toBe(false);
  });

  it('X25519 refuses small-order public keys', () => {
    const u = x25519KeyPair(key('u'));
    expectCode(() => x25519Agree(u.secretKey, new Uint8Array(32)), 'SECAGG_BAD_KEY');
    expectCode(() => x25519Agree(u.secretKey, new Uint8Array(31)), 'SECAGG_BAD_KEY');
  });
});

describe('Shamir sharing (shamir-secret-sharing 0.0.4)', () => {
  it('any t shares recover the secret; t − 1 give something else', async () => {
    const secret = new Uint8Array(key('secret'));
    const holders = ['a', 'b', 'c', 'd', 'e'];
    const shares = await shareSecret(secret, holders, 3);
    expect(await recoverSecret([shares.get('a')!, shares.get('c')!, shares.get('e')!])).toEqual(secret);
    expect(await recoverSecret([...shares.values()])).toEqual(secret);
    expect(await recoverSecret([shares.get('a')!, shares.get('b')!])).not.toEqual(secret);
    // A Node Buffer is accepted (copied to a plain Uint8Array for the package).
    expect((await shareSecret(Buffer.from(secret), holders, 2)).size).toBe(5);
    await expectCodeAsync(() => shareSecret(secret, holders, 6), 'SECAGG_BAD_INPUT');
    await expectCodeAsync(() => recoverSecret([shares.get('a')!, shares.get('a')!]), 'SECAGG_BAD_SHARES');
  });
});

describe('sealed shares (X25519 + HKDF + AES-256-GCM, bound to config, job, round, attempt, sender, recipient)', () => {
  const u = x25519KeyPair(key('cu'));
  const v = x25519KeyPair(key('cv'));
  const route = { configId: 'ab'.repeat(32), jobId: 'job', round: 2, attempt: 0, from: '01'.repeat(16), to: '02'.repeat(16) };
  const pair = { keyShare: new Uint8Array(33).fill(7), seedShare: new Uint8Array(33).fill(9) };

  it('open only for the recipient, from the sender, in the same binding', () => {
    const sealed = sealSharePair(route, pair, v.publicKey, u.secretKey);
    expect(openSharePair(route, sealed, u.publicKey, v.secretKey)).toEqual(pair);
    const other = x25519KeyPair(key('other'));
    expectCode(() => openSharePair(route, sealed, other.publicKey, v.secretKey), 'SECAGG_BAD_SHARE');
    expectCode(() => openSharePair({ ...route, to: '03'.repeat(16) }, sealed, u.publicKey, v.secretKey), 'SECAGG_BAD_SHARE');
    expectCode(() => openSharePair({ ...route, jobId: 'job2' }, sealed, u.publicKey, v.secretKey), 'SECAGG_BAD_SHARE');
    expectCode(() => openSharePair({ ...route, configId: 'cd'.repeat(32) }, sealed, u.publicKey, v.secretKey), 'SECAGG_BAD_SHARE');
    expect(expectCode(() => openSharePair({ ...route, attempt: 1 }, sealed, u.publicKey, v.secretKey), 'SECAGG_WRONG_ATTEMPT').message).toMatch(
      /round 2 attempt 0/,
    );
    expectCode(() => openSharePair({ ...route, round: 3 }, sealed, u.publicKey, v.secretKey), 'SECAGG_WRONG_ATTEMPT');
    const flipped = Uint8Array.from(sealed);
    flipped[40] ^= 1;
    expectCode(() => openSharePair(route, flipped, u.publicKey, v.secretKey), 'SECAGG_BAD_SHARE');
    expectCode(() => openSharePair(route, sealed.subarray(1), u.publicKey, v.secretKey), 'SECAGG_BAD_SHARE');
  });
});

describe('graphs and configs', () => {
  const ids = Array.from({ length: 100 }, (_, i) => createHash('sha256').update(`n${i}`).digest('hex').slice(0, 32)).sort();

  it('the Harary graph is k-regular, symmetric, seeded, and differs across seeds', () => {
    const g = neighbourhoods(ids, { kind: 'harary', degree: 8, seed: 'aa'.repeat(32) });
    for (const [u, nb] of g) {
      expect(nb.size).toBe(8);
      expect(nb.has(u)).toBe(false);
      for (const v of nb) expect(g.get(v)!.has(u)).toBe(true);
    }
    expect(seededPermutation(ids, 'aa'.repeat(32))).toEqual(seededPermutation(ids, 'aa'.repeat(32)));
    expect(seededPermutation(ids, 'aa'.repeat(32))).not.toEqual(seededPermutation(ids, 'bb'.repeat(32)));
    expectCode(() => neighbourhoods(ids, { kind: 'harary', degree: 7, seed: 'aa'.repeat(32) }), 'SECAGG_BAD_CONFIG');
  });

  it('defaults: complete graph and t = ⌈2n/3⌉ up to 64 partners, sparse degree 64 above, t never below 2', () => {
    const plan = (n: number) => planEncoding([{ name: 'x', length: 1, kind: 'real', maxAbs: 1 }], 1099511480321, n);
    const he = { paramsId: 'ab'.repeat(32), plainModulus: 1099511480321, maxSummands: 8001 };
    const cfg = (n: number) => makeSecaggConfig({ jobId: 'j', round: 1, attempt: 0, selected: ids.slice(0, n), he, encoding: plan(n) });
    expect(cfg(2)).toMatchObject({ threshold: 2, graph: { kind: 'complete' } });
    expect(cfg(3).threshold).toBe(2);
    expect(cfg(10).threshold).toBe(7);
    expect(cfg(64)).toMatchObject({ threshold: 43, graph: { kind: 'complete' } });
    expect(cfg(100)).toMatchObject({ threshold: 44, graph: { kind: 'harary', degree: 64 } });
    // Everything the ledger needs to record is in the config.
    expect(cfg(10).primitives).toMatchObject({ keyAgreement: 'X25519', kdf: 'HKDF-SHA256', signatures: 'Ed25519' });
    expectCode(() => makeSecaggConfig({ jobId: 'j', round: 1, attempt: 0, selected: ids.slice(0, 10), he, encoding: plan(5) }), 'SECAGG_BAD_CONFIG');
    expectCode(
      () => makeSecaggConfig({ jobId: 'j', round: 1, attempt: 0, selected: ids.slice(0, 10), he: { ...he, plainModulus: 65537 }, encoding: plan(10) }),
      'SECAGG_BAD_CONFIG',
    );
    expectCode(
      () => makeSecaggConfig({ jobId: 'j', round: 1, attempt: 0, selected: ids.slice(0, 10), he, encoding: plan(10), threshold: 11 }),
      'SECAGG_BAD_CONFIG',
    );
    expectCode(() => makeSecaggConfig({ jobId: 'j', round: 1, attempt: 0, selected: [ids[0], ids[0]], he, encoding: plan(2) }), 'SECAGG_BAD_CONFIG');
  });
});
