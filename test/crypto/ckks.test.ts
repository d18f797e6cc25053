import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CkksAggregator,
  CkksCipher,
  CkksContext,
  DEFAULT_HE_PARAMS,
  generateSecretKey,
  heValueBounds,
  inspectBlob,
  validateHeParams,
  type HeParams,
} from '../../src/crypto/ckks/index.ts';
import { sealHeapBytes } from '../../src/crypto/seal.ts';
import { FedmarkError } from '../../src/errors.ts';
import { createRng } from '../../src/util/rng.ts';
import { expectCode, reseal } from './helpers.ts';

function randomVector(length: number, magnitude: number, seed: number): Float64Array {
  const rng = createRng(seed);
  const v = new Float64Array(length);
  for (let i = 0; i < length; i++) v[i] = (rng.next() * 2 - 1) * magnitude;
  return v;
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

let ctx: CkksContext;
let cipher: CkksCipher;
const LEN = 10_000; // 3 ciphertexts of 4096 slots

beforeAll(async () => {
  ctx = await CkksContext.create(DEFAULT_HE_PARAMS);
  cipher = new CkksCipher(ctx, generateSecretKey(ctx));
});

afterAll(() => {
  cipher?.dispose();
  ctx?.dispose();
});

describe('HE parameters', () => {
  it('defaults: N=8192, 4096 slots, headroom 2^18, 4096 per partner for 64 partners', () => {
    expect(ctx.slotCount).toBe(4096);
    expect(ctx.maxAbsSlotValue).toBe(2 ** 18);
    expect(ctx.maxSummands).toBe(64);
    expect(ctx.maxAbsInputValue).toBe(4096);
    expect(ctx.sealVersion).toBe('4.1');
    expect(ctx.paramsId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses parameter sets below 128-bit security', async () => {
    const insecure: HeParams = { scheme: 'ckks', polyModulusDegree: 4096, coeffModulusBits: [60, 50], scaleBits: 40 };
    expectCode(() => validateHeParams(insecure), 'HE_INSECURE_PARAMS');
    await expect(CkksContext.create(insecure)).rejects.toMatchObject({ code: 'HE_INSECURE_PARAMS' });
    // exactly at the limit is allowed
    expect(validateHeParams({ scheme: 'ckks', polyModulusDegree: 4096, coeffModulusBits: [55, 54], scaleBits: 30 }).maxSummands).toBe(64);
  });

  it('rejects malformed parameters and parameters without headroom', () => {
    expectCode(() => validateHeParams({ ...DEFAULT_HE_PARAMS, polyModulusDegree: 2048 }), 'HE_BAD_PARAMS');
    expectCode(() => validateHeParams({ ...DEFAULT_HE_PARAMS, coeffModulusBits: [61] }), 'HE_BAD_PARAMS');
    expectCode(() => validateHeParams({ ...DEFAULT_HE_PARAMS, extra: 1 }), 'HE_BAD_PARAMS');
    expectCode(() => validateHeParams({ ...DEFAULT_HE_PARAMS, scaleBits: 55 }), 'HE_BAD_PARAMS');
  });

  it('derives bounds from data prime bits, scale and summands', () => {
    const b = heValueBounds({ scheme: 'ckks', polyModulusDegree: 8192, coeffModulusBits: [60, 40, 40, 60], scaleBits: 40, maxSummands: 10 });
    expect(b.dataPrimeBits).toEqual([60, 40, 40]);
    expect(b.maxAbsSlotValue).toBe(2 ** (140 - 3 - 1 - 40));
    expect(b.maxAbsInputValue).toBe(b.maxAbsSlotValue / 10);
  });

  it('paramsId is stable: RFC 8785 ids equal the ids of the pre-folder implementation', async () => {
    // Reference ids computed by the private sorted-keys canonicalJson this module used before it
    // adopted the ledger's RFC 8785 helper: blobs and keys of existing jobs stay valid.
    expect(ctx.paramsId).toBe('4c2c9c5eb6ade6e2887a799f614a5f92e49e0f4d1b1bd3292a7deffae0e88bdb');
    const cases: [HeParams, string][] = [
      [{ scheme: 'ckks', polyModulusDegree: 4096, coeffModulusBits: [54], scaleBits: 30 }, 'a21ca44fc3d113102476cc40373bba654e6f6150fcc8b32a925acdbe95a82b32'],
      [
        { scheme: 'ckks', polyModulusDegree: 8192, coeffModulusBits: [60, 40, 40, 60], scaleBits: 40, maxSummands: 10 },
        '2f0c280c93e775c5d2ca8f812cd3c190ac304c90bdedd41b5b00342c45494877',
      ],
    ];
    for (const [params, id] of cases) {
      const c = await CkksContext.create(params);
      try {
        expect(c.paramsId).toBe(id);
      } finally {
        c.dispose();
      }
    }
  });

  it('the ckks folder exports the public names of the former ckks.ts, plus freshBlobBytes (upload sizes for body limits)', async () => {
    const mod = await import('../../src/crypto/ckks/index.ts');
    expect(Object.keys(mod).sort()).toEqual([
      'CkksAggregator',
      'CkksCipher',
      'CkksContext',
      'DEFAULT_HE_PARAMS',
      'DEFAULT_MAX_SUMMANDS',
      'HE_STANDARD_MAX_COEFF_BITS',
      'ciphertextCount',
      'freshBlobBytes',
      'generateSecretKey',
      'heParamsSchema',
      'heValueBounds',
      'inspectBlob',
      'validateHeParams',
    ]);
  });

  it('paramsId changes with any parameter', async () => {
    const other = await CkksContext.create({ ...DEFAULT_HE_PARAMS, scaleBits: 38 });
    try {
      expect(other.paramsId).not.toBe(ctx.paramsId);
    } finally {
      other.dispose();
    }
  });
});

describe('encrypt / aggregate / decrypt', () => {
  it('round-trips a vector with absolute error below 1e-8', () => {
    const v = randomVector(LEN, 10, 1);
    const blob = cipher.encryptVector(v);
    const out = cipher.decryptVector(blob, LEN);
    expect(maxAbsDiff(out, v)).toBeLessThan(1e-8);
    expect(inspectBlob(ctx, blob, 3)).toMatchObject({ kind: 'fresh', summands: 1, count: 3 });
  });

  it('stays under 16 wire bytes per parameter when ciphertexts are full', () => {
    const blob = cipher.encryptVector(randomVector(3 * 4096, 1, 2));
    expect(blob.length / (3 * 4096)).toBeLessThan(16);
    expect(blob.length / (3 * 4096)).toBeGreaterThan(14.9);
  });

  it('sums several partners within tolerance of the plain sum, also after persistence', () => {
    const partners = 8;
    const plain = new Float64Array(LEN);
    const agg = new CkksAggregator(ctx);
    let restored: CkksAggregator | undefined;
    try {
      for (let p = 0; p < partners; p++) {
        const v = randomVector(LEN, 10, 100 + p);
        for (let i = 0; i < LEN; i++) plain[i] += v[i];
        agg.add(cipher.encryptVector(v));
      }
      expect(agg.count).toBe(partners);
      const sumBlob = agg.toBytes();
      expect(inspectBlob(ctx, sumBlob)).toMatchObject({ kind: 'sum', summands: partners, count: 3 });
      expect(maxAbsDiff(cipher.decryptVector(sumBlob, LEN), plain)).toBeLessThan(1e-8);

      restored = CkksAggregator.fromBytes(ctx, sumBlob);
      expect(restored.count).toBe(partners);
      const extra = randomVector(LEN, 10, 999);
      restored.add(cipher.encryptVector(extra));
      for (let i = 0; i < LEN; i++) plain[i] += extra[i];
      expect(maxAbsDiff(cipher.decryptVector(restored.toBytes(), LEN), plain)).toBeLessThan(1e-8);
    } finally {
      agg.dispose();
      restored?.dispose();
    }
  });

  it('the sum of maxSummands partners at the per-partner bound still decrypts correctly', async () => {
    const small = await CkksContext.create({ ...DEFAULT_HE_PARAMS, maxSummands: 4 });
    const c = new CkksCipher(small, generateSecretKey(small));
    const agg = new CkksAggregator(small);
    try {
      const v = new Float64Array(100).fill(small.maxAbsInputValue);
      v[1] = -small.maxAbsInputValue;
      for (let p = 0; p < 4; p++) agg.add(c.encryptVector(v));
      const out = c.decryptVector(agg.toBytes(), 100);
      expect(Math.abs(out[0] - 4 * small.maxAbsInputValue)).toBeLessThan(1e-6);
      expect(Math.abs(out[1] + 4 * small.maxAbsInputValue)).toBeLessThan(1e-6);
      expectCode(() => agg.add(c.encryptVector(v)), 'HE_TOO_MANY_SUMMANDS');
    } finally {
      agg.dispose();
      c.dispose();
      small.dispose();
    }
  });

  it('persists and restores an empty running sum, and accepts unaligned input bytes', () => {
    const empty = new CkksAggregator(ctx);
    const bytes = empty.toBytes();
    empty.dispose();
    expect(inspectBlob(ctx, bytes)).toMatchObject({ kind: 'sum', summands: 0, count: 0 });
    const restored = CkksAggregator.fromBytes(ctx, bytes);
    try {
      expect(restored.count).toBe(0);
      const v = randomVector(LEN, 1, 5);
      const blob = cipher.encryptVector(v);
      const shifted = new Uint8Array(blob.length + 1);
      shifted.set(blob, 1);
      restored.add(shifted.subarray(1));
      expect(maxAbsDiff(cipher.decryptVector(restored.toBytes(), LEN), v)).toBeLessThan(1e-8);
    } finally {
      restored.dispose();
    }
  });

  it('refuses use after dispose', async () => {
    const c2 = await CkksContext.create(DEFAULT_HE_PARAMS);
    const key = generateSecretKey(c2);
    const ci = new CkksCipher(c2, key);
    ci.dispose();
    expectCode(() => ci.encryptVector(new Float64Array(1)), 'HE_DISPOSED');
    c2.dispose();
    expectCode(() => new CkksAggregator(c2), 'HE_DISPOSED');
  });

  it('refuses values beyond maxAbsSlotValue / maxSummands, and NaN', () => {
    const v = new Float64Array(10);
    v[7] = ctx.maxAbsInputValue * 1.0001;
    const err = expectCode(() => cipher.encryptVector(v), 'HE_VALUE_OUT_OF_RANGE');
    expect(err.message).toContain('index 7');
    v[7] = Number.NaN;
    expectCode(() => cipher.encryptVector(v), 'HE_VALUE_OUT_OF_RANGE');
    expectCode(() => cipher.encryptVector(new Float64Array(0)), 'HE_BAD_INPUT');
  });

  it('rejects a decrypt length that does not match the ciphertext count', () => {
    const blob = cipher.encryptVector(randomVector(LEN, 1, 3));
    expectCode(() => cipher.decryptVector(blob, 4096), 'HE_BAD_INPUT');
    expectCode(() => cipher.decryptVector(blob, 3 * 4096 + 1), 'HE_BAD_INPUT');
  });

  it('a different secret key does not recover the values', () => {
    const v = randomVector(100, 10, 4);
    const other = new CkksCipher(ctx, generateSecretKey(ctx));
    try {
      expect(maxAbsDiff(other.decryptVector(cipher.encryptVector(v), 100), v)).toBeGreaterThan(1);
    } finally {
      other.dispose();
    }
  });
});

describe('blob validation', () => {
  let valid: Uint8Array;
  beforeAll(() => {
    valid = cipher.encryptVector(randomVector(LEN, 5, 7));
  });

  it('rejects truncated blobs', () => {
    for (const cut of [0, 10, 47, 80, 5000, valid.length - 33, valid.length - 1]) {
      expectCode(() => inspectBlob(ctx, valid.subarray(0, cut)), 'HE_BAD_CIPHERTEXT');
    }
  });

  it('rejects bit-flipped blobs anywhere', () => {
    const rng = createRng(11);
    for (let k = 0; k < 40; k++) {
      const bad = Uint8Array.from(valid);
      bad[rng.int(bad.length)] ^= 1 << rng.int(8);
      const code = expectCode(() => inspectBlob(ctx, bad), 'HE_BAD_CIPHERTEXT');
      expect(code.message).toMatch(/checksum|magic/);
    }
  });

  it('rejects blobs made under other parameters', async () => {
    const other = await CkksContext.create({ scheme: 'ckks', polyModulusDegree: 4096, coeffModulusBits: [54], scaleBits: 30 });
    const c = new CkksCipher(other, generateSecretKey(other));
    try {
      const foreign = c.encryptVector(randomVector(100, 1, 8));
      expectCode(() => inspectBlob(ctx, foreign), 'HE_PARAMS_MISMATCH');
      expectCode(() => new CkksAggregator(ctx).add(foreign), 'HE_PARAMS_MISMATCH');
      expectCode(() => cipher.decryptVector(foreign, 100), 'HE_PARAMS_MISMATCH');
      expectCode(() => new CkksCipher(ctx, generateSecretKey(other)), 'HE_BAD_SECRET_KEY');
    } finally {
      c.dispose();
      other.dispose();
    }
  });

  it('rejects a different SEAL serialization version', () => {
    const bad = Uint8Array.from(valid);
    bad[7] = 0; // SEAL 4.0
    expectCode(() => inspectBlob(ctx, reseal(bad)), 'HE_PARAMS_MISMATCH');
  });

  it('rejects a wrong ciphertext count', () => {
    expectCode(() => inspectBlob(ctx, valid, 2), 'HE_BAD_CIPHERTEXT');
    const agg = new CkksAggregator(ctx);
    try {
      agg.add(valid);
      expectCode(() => agg.add(cipher.encryptVector(randomVector(100, 1, 9))), 'HE_BAD_CIPHERTEXT');
      expect(agg.count).toBe(1);
    } finally {
      agg.dispose();
    }
    const lying = Uint8Array.from(valid);
    new DataView(lying.buffer).setUint32(44, 4, true);
    expectCode(() => inspectBlob(ctx, reseal(lying)), 'HE_BAD_CIPHERTEXT');
  });

  it('rejects well-checksummed blobs with bad structure or unreduced coefficients', () => {
    const badLen = Uint8Array.from(valid);
    new DataView(badLen.buffer).setUint32(48, 1234, true);
    expectCode(() => inspectBlob(ctx, reseal(badLen)), 'HE_BAD_CIPHERTEXT');

    const unreduced = Uint8Array.from(valid);
    // First coefficient of the first ciphertext sits after the 48-byte header, 4-byte length, 64-byte seed.
    unreduced.fill(0xff, 48 + 4 + 64, 48 + 4 + 64 + 8);
    expect(() => inspectBlob(ctx, reseal(unreduced))).toThrow(/not reduced/);

    const kind = Uint8Array.from(valid);
    kind[5] = 2; // claims to be a sum: lengths no longer match
    expectCode(() => inspectBlob(ctx, reseal(kind)), 'HE_BAD_CIPHERTEXT');

    const summands = Uint8Array.from(valid);
    new DataView(summands.buffer).setUint32(40, 2, true);
    expectCode(() => inspectBlob(ctx, reseal(summands)), 'HE_BAD_CIPHERTEXT');
  });

  it('a failed add leaves the running sum unchanged', () => {
    const agg = new CkksAggregator(ctx);
    try {
      const v = randomVector(LEN, 3, 12);
      agg.add(cipher.encryptVector(v));
      const before = agg.toBytes();
      const corrupt = Uint8Array.from(cipher.encryptVector(v));
      // 16 bytes of ones inside the third ciphertext's coefficients: the first two load before it fails.
      const third = 48 + 2 * (4 + 61504) + 4 + 64 + 1000;
      corrupt.fill(0xff, third, third + 16);
      expect(() => agg.add(reseal(corrupt))).toThrow(FedmarkError);
      expect(agg.count).toBe(1);
      expect(Buffer.from(agg.toBytes()).equals(Buffer.from(before))).toBe(true);
      expect(maxAbsDiff(cipher.decryptVector(agg.toBytes(), LEN), v)).toBeLessThan(1e-8);
    } finally {
      agg.dispose();
    }
  });

  it('survives 200 garbage blobs and still encrypts, adds and decrypts', () => {
    const rng = createRng(2024);
    const agg = new CkksAggregator(ctx);
    try {
      for (let k = 0; k < 200; k++) {
        let bad: Uint8Array;
        switch (k % 5) {
          case 0:
            bad = Uint8Array.from({ length: rng.int(70_000) }, () => rng.int(256));
            break;
          case 1:
            bad = valid.slice(0, rng.int(valid.length));
            break;
          case 2: {
            bad = Uint8Array.from(valid);
            bad[rng.int(bad.length)] ^= 1 << rng.int(8);
            break;
          }
          case 3: {
            // random payload behind a valid header and checksum: reaches the coefficient checks
            bad = Uint8Array.from(valid);
            for (let i = 52; i < bad.length - 32; i++) bad[i] = rng.int(256);
            new DataView(bad.buffer).setUint32(48, 61504, true);
            bad = reseal(bad);
            break;
          }
          default: {
            bad = Uint8Array.from(valid);
            bad.fill(0, 52, 52 + 64 + 8 * 4096); // zero seed and coefficients: well-formed but meaningless
            bad = reseal(bad);
          }
        }
        try {
          agg.add(bad);
        } catch (err) {
          expect(err).toBeInstanceOf(FedmarkError);
        }
      }
      const fresh = new CkksAggregator(ctx);
      try {
        const a = randomVector(LEN, 2, 21);
        const b = randomVector(LEN, 2, 22);
        fresh.add(cipher.encryptVector(a));
        fresh.add(cipher.encryptVector(b));
        const expected = a.map((x, i) => x + b[i]);
        expect(maxAbsDiff(cipher.decryptVector(fresh.toBytes(), LEN), expected)).toBeLessThan(1e-8);
      } finally {
        fresh.dispose();
      }
    } finally {
      agg.dispose();
    }
  });
});

describe('WASM memory', () => {
  it('does not grow over 200 encrypt/add/persist/decrypt iterations after warm-up', async () => {
    const v = randomVector(4096, 4, 31);
    const iteration = () => {
      const agg = new CkksAggregator(ctx);
      agg.add(cipher.encryptVector(v));
      agg.add(cipher.encryptVector(v));
      const restored = CkksAggregator.fromBytes(ctx, agg.toBytes());
      agg.dispose();
      const out = cipher.decryptVector(restored.toBytes(), v.length);
      restored.dispose();
      try {
        inspectBlob(ctx, new Uint8Array(100));
      } catch {
        // failure paths must not leak either
      }
      return out;
    };
    for (let i = 0; i < 20; i++) iteration();
    const before = await sealHeapBytes();
    expect(before).toBeTypeOf('number');
    let last: Float64Array = new Float64Array(0);
    for (let i = 0; i < 200; i++) last = iteration();
    const after = await sealHeapBytes();
    expect(Math.abs(last[0] - 2 * v[0])).toBeLessThan(1e-8);
    // Each iteration allocates > 0.5 MB (one 4096-slot ciphertext is 64–128 KB) in the WASM heap; a leak would add > 100 MB.
    expect(after! - before!).toBeLessThanOrEqual(4 * 1024 * 1024);
  });
});
