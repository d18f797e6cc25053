import { randomBytes } from 'node:crypto';
import { p256, p256_hasher } from '@noble/curves/nist.js';
import { afterAll, describe, expect, it } from 'vitest';
import { ELEMENT_BYTES, P256_P, bigintTo32, curveRhs } from '../../../src/vertical/psi/group.ts';
import { NativeEngine, freshScalar } from '../../../src/vertical/psi/engine.ts';
import { nativeHashPoint } from '../../../src/vertical/psi/native-ops.ts';
import { NobleEngine, nobleHashPoint } from '../../../src/vertical/psi/noble-engine.ts';

const noble = new NobleEngine();
const inThread = new NativeEngine({ threads: 0, batchSize: 7 });
const pooled = new NativeEngine({ threads: 2, batchSize: 16 });
afterAll(() => pooled.close());

const randomIds = (n: number) => Array.from({ length: n }, () => randomBytes(1 + (randomBytes(1)[0] % 40)).toString('base64'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** An x that is below p but whose curve equation has no solution. */
function offCurveX(): Uint8Array {
  for (;;) {
    const x = randomBytes(32);
    try {
      p256.Point.fromBytes(Buffer.concat([Buffer.from([2]), x]));
    } catch {
      if (BigInt('0x' + x.toString('hex')) < P256_P) return x;
    }
  }
}

describe('fast path equals the @noble/curves reference', () => {
  it('try-and-increment hash points agree on random ids (and lie on the curve)', () => {
    for (const id of [...randomIds(200), '', 'ü', 'a'.repeat(300)]) {
      const n = nativeHashPoint('p256-ti-sha256', 'fedmark-psi-v1|t', id)!;
      const r = nobleHashPoint('p256-ti-sha256', 'fedmark-psi-v1|t', id);
      expect(hex(n)).toBe(hex(r.toBytes(false)));
    }
  });

  it('the RFC 9380 suite is noble hash_to_curve (P256_XMD:SHA-256_SSWU_RO_) with the job domain as DST', () => {
    for (const id of randomIds(20)) {
      const n = nativeHashPoint('p256-rfc9380-sswu', 'fedmark-psi-v1|t', id)!;
      const ref = p256_hasher.hashToCurve(new TextEncoder().encode(id), { DST: 'fedmark-psi-v1|t' });
      expect(hex(n)).toBe(hex(ref.toBytes(false)));
    }
  });

  it('RFC 9380 test vector (P256_XMD:SHA-256_SSWU_RO_, msg "abc") through the same noble call', () => {
    const p = p256_hasher.hashToCurve(new TextEncoder().encode('abc'), { DST: 'QUUX-V01-CS02-with-P256_XMD:SHA-256_SSWU_RO_' }).toAffine();
    expect(p.x.toString(16)).toBe('bb8b87485551aa43ed54f009230450b492fead5f1cc91658775dac4a3388a0f');
    expect(p.y.toString(16)).toBe('5c41b3d0731a27a7b14bc0bf0ccded2d8751f83493404c84a88e71ffd424212e');
  });

  it.each([
    ['in-thread', inThread],
    ['2 worker threads', pooled],
  ])('hash+blind and re-blind agree with noble on random ids and scalars (%s)', async (_label, engine) => {
    for (const suite of ['p256-ti-sha256', 'p256-rfc9380-sswu'] as const) {
      const ids = randomIds(suite === 'p256-ti-sha256' ? 60 : 15);
      const k1 = freshScalar();
      const k2 = freshScalar();
      const a = await engine.hashAndBlind(ids, suite, 'fedmark-psi-v1|job', k1);
      expect(hex(a)).toBe(hex(await noble.hashAndBlind(ids, suite, 'fedmark-psi-v1|job', k1)));
      const b = await engine.blind(a, k2);
      expect(hex(b)).toBe(hex(await noble.blind(a, k2)));
      // Blinding commutes: k2·(k1·H) = k1·(k2·H).
      const other = await engine.blind(await engine.hashAndBlind(ids, suite, 'fedmark-psi-v1|job', k2), k1);
      expect(hex(other)).toBe(hex(b));
    }
  });

  it('scalar edge cases: 1 and n − 1 (x([n−1]P) = x(−P) = x(P))', async () => {
    const xs = await inThread.randomElements(5);
    const one = bigintTo32(1n);
    const nMinus1 = bigintTo32(p256.Point.Fn.ORDER - 1n);
    expect(hex(await inThread.blind(xs, one))).toBe(hex(xs));
    expect(hex(await inThread.blind(xs, nMinus1))).toBe(hex(xs));
    expect(hex(await noble.blind(xs, nMinus1))).toBe(hex(xs));
  });

  it('fresh scalars are always 32 bytes in [1, n − 1], leading zero bytes included', () => {
    for (let i = 0; i < 2000; i++) {
      const k = freshScalar();
      expect(k.length).toBe(32);
      const v = BigInt('0x' + hex(k));
      expect(v > 0n && v < p256.Point.Fn.ORDER).toBe(true);
    }
  });

  it('random padding elements are valid points', async () => {
    const xs = await pooled.randomElements(40);
    for (let i = 0; i < 40; i++) {
      const x = BigInt('0x' + hex(xs.subarray(i * 32, i * 32 + 32)));
      expect(() => p256.Point.fromBytes(Buffer.concat([Buffer.from([2]), xs.subarray(i * 32, i * 32 + 32)]))).not.toThrow();
      expect(curveRhs(x)).not.toBe(0n);
    }
    expect(new Set(Array.from({ length: 40 }, (_, i) => hex(xs.subarray(i * 32, i * 32 + 32)))).size).toBe(40);
  });
});

describe('received points are validated', () => {
  it.each([
    ['native in-thread', inThread],
    ['native pool', pooled],
    ['noble', noble],
  ])('an off-curve x, an x ≥ p and p itself are refused with the element index (%s)', async (_l, engine) => {
    const good = await inThread.randomElements(40);
    for (const [bad, reason] of [
      [offCurveX(), /not on the P-256 curve/],
      [bigintTo32(P256_P), /not reduced mod p/],
      [new Uint8Array(32).fill(0xff), /not reduced mod p/],
    ] as const) {
      const xs = good.slice();
      xs.set(bad, 37 * ELEMENT_BYTES);
      await expect(engine.blind(xs, freshScalar())).rejects.toMatchObject({
        code: 'PSI_BAD_POINT',
        details: { index: 37 },
        message: expect.stringMatching(reason),
      });
    }
  });
});
