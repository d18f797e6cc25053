import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BfvAggregator,
  BfvCipher,
  BfvContext,
  DEFAULT_BFV_PARAMS,
  bfvNoiseMaxSummands,
  generateBfvSecretKey,
  inspectBfvBlob,
  validateBfvParams,
} from '../../src/crypto/bfv/index.ts';
import { isPrime } from '../../src/crypto/bfv/params.ts';
import { CkksCipher, CkksContext, DEFAULT_HE_PARAMS, generateSecretKey, inspectBlob } from '../../src/crypto/ckks/index.ts';
import { sealHeapBytes } from '../../src/crypto/seal.ts';
import { FedmarkError } from '../../src/errors.ts';
import { createRng } from '../../src/util/rng.ts';
import { expectCode, reseal } from './helpers.ts';

let ctx: BfvContext;
let cipher: BfvCipher;
let t: number;
const LEN = 20_000; // 3 ciphertexts of 8192 slots

function residues(length: number, seed: number): Float64Array {
  const rng = createRng(seed);
  // Uniform residues in [0, t): two draws so every bit of the 40-bit range is exercised.
  return Float64Array.from({ length }, () => (Math.floor(rng.next() * 2 ** 20) * 2 ** 20 + Math.floor(rng.next() * 2 ** 20)) % t);
}

beforeAll(async () => {
  ctx = await BfvContext.create(DEFAULT_BFV_PARAMS);
  cipher = new BfvCipher(ctx, generateBfvSecretKey(ctx));
  t = ctx.plainModulus;
});

afterAll(() => {
  cipher?.dispose();
  ctx?.dispose();
});

describe('BFV parameters', () => {
  it('defaults: N = 8192 slots, t a 40-bit batching prime, one 60-bit prime q ≡ 1 mod t and mod 2N', () => {
    expect(ctx.slotCount).toBe(8192);
    const tb = BigInt(ctx.plainModulus);
    const q = BigInt(ctx.coeffModulus);
    expect(tb.toString(2).length).toBe(40);
    expect(isPrime(tb)).toBe(true);
    expect((tb - 1n) % 16384n).toBe(0n);
    expect(q.toString(2).length).toBe(60);
    expect(isPrime(q)).toBe(true);
    expect(q % tb).toBe(1n); // the fast case: see bfvCoeffPrime
    expect(q % 16384n).toBe(1n);
    expect(ctx.noiseMaxSummands).toBe(bfvNoiseMaxSummands(q, tb));
    expect(ctx.noiseMaxSummands).toBeGreaterThan(5000);
    expect(ctx.maxSummands).toBe(ctx.noiseMaxSummands);
    expect(ctx.paramsId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the noise bound follows n·(21 + 1/2) ≤ q/(4t)', () => {
    const q = 2n ** 60n;
    const tb = 2n ** 40n;
    const n = bfvNoiseMaxSummands(q, tb);
    expect(n * 21.5 <= 2 ** 18).toBe(true);
    expect((n + 1) * 21.5 > 2 ** 18).toBe(true);
  });

  it('rejects malformed parameters, a plain modulus without noise budget, and maxSummands above the noise bound', async () => {
    expectCode(() => validateBfvParams({ ...DEFAULT_BFV_PARAMS, polyModulusDegree: 2048 }), 'HE_BAD_PARAMS');
    expectCode(() => validateBfvParams({ ...DEFAULT_BFV_PARAMS, coeffModulusBits: [60, 60] }), 'HE_BAD_PARAMS');
    expectCode(() => validateBfvParams({ ...DEFAULT_BFV_PARAMS, plainModulusBits: 50 }), 'HE_BAD_PARAMS');
    expectCode(() => validateBfvParams({ ...DEFAULT_BFV_PARAMS, scheme: 'ckks' }), 'HE_BAD_PARAMS');
    await expect(BfvContext.create({ ...DEFAULT_BFV_PARAMS, maxSummands: ctx.noiseMaxSummands + 1 })).rejects.toMatchObject({ code: 'HE_BAD_PARAMS' });
  });

  it('paramsId changes with every parameter', async () => {
    const other = await BfvContext.create({ ...DEFAULT_BFV_PARAMS, plainModulusBits: 36 });
    const fewer = await BfvContext.create({ ...DEFAULT_BFV_PARAMS, maxSummands: 100 });
    try {
      expect(new Set([ctx.paramsId, other.paramsId, fewer.paramsId]).size).toBe(3);
    } finally {
      other.dispose();
      fewer.dispose();
    }
  });
});

describe('BFV encrypt / add / decrypt', () => {
  it('round-trips residues exactly and sums 10 of them exactly modulo t, also after persistence', () => {
    const vs = Array.from({ length: 10 }, (_, p) => residues(LEN, 100 + p));
    const blobs = vs.map((v) => cipher.encryptResidues(v));
    expect(cipher.decryptResidues(blobs[0], LEN)).toEqual(vs[0]);
    const agg = new BfvAggregator(ctx);
    let restored: BfvAggregator | undefined;
    try {
      for (const b of blobs.slice(0, 6)) agg.add(b);
      restored = BfvAggregator.fromBytes(ctx, agg.toBytes());
      for (const b of blobs.slice(6)) restored.add(b);
      const sum = restored.toBytes();
      expect(inspectBfvBlob(ctx, sum)).toMatchObject({ kind: 'sum', summands: 10, count: 3 });
      const out = cipher.decryptResidues(sum, LEN);
      for (let i = 0; i < LEN; i++) {
        let s = 0;
        for (const v of vs) s = (s + v[i]) % t;
        if (out[i] !== s) throw new Error(`slot ${i}: ${out[i]} != ${s}`);
      }
      expect(cipher.lastNoiseBudget).toBeGreaterThanOrEqual(11);
    } finally {
      agg.dispose();
      restored?.dispose();
    }
  });

  it('is at most 7.6 wire bytes per value when ciphertexts are full', () => {
    const blob = cipher.encryptResidues(residues(3 * 8192, 2));
    expect(blob.length / (3 * 8192)).toBeLessThan(7.6);
    expect(blob.length / (3 * 8192)).toBeGreaterThan(7.5);
  });

  it('the largest residues summed up to maxSummands decrypt exactly; one more is refused', async () => {
    // A plain modulus close to q leaves room for only a few summands: the bound is reached quickly.
    const tight = await BfvContext.create({ ...DEFAULT_BFV_PARAMS, plainModulusBits: 46 });
    const c = new BfvCipher(tight, generateBfvSecretKey(tight));
    const agg = new BfvAggregator(tight);
    try {
      const n = tight.maxSummands;
      expect(n).toBeGreaterThanOrEqual(2);
      expect(n).toBeLessThan(400);
      const v = new Float64Array(8192).fill(tight.plainModulus - 1);
      v[1] = 0;
      const blob = c.encryptResidues(v);
      for (let i = 0; i < n; i++) agg.add(blob);
      const out = c.decryptResidues(agg.toBytes(), 8192);
      const expected = Number((BigInt(tight.plainModulus - 1) * BigInt(n)) % BigInt(tight.plainModulus));
      expect(out[0]).toBe(expected);
      expect(out[1]).toBe(0);
      expect(c.lastNoiseBudget).toBeGreaterThanOrEqual(1);
      expectCode(() => agg.add(blob), 'HE_TOO_MANY_SUMMANDS');
    } finally {
      agg.dispose();
      c.dispose();
      tight.dispose();
    }
  });

  it('refuses values that are not residues modulo t', () => {
    for (const bad of [-1, t, t + 5, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const v = new Float64Array(10);
      v[4] = bad;
      expect(expectCode(() => cipher.encryptResidues(v), 'HE_VALUE_OUT_OF_RANGE').message).toContain('index 4');
    }
    expectCode(() => cipher.encryptResidues(new Float64Array(0)), 'HE_BAD_INPUT');
  });

  it('refuses to decrypt a ciphertext whose noise budget is exhausted', () => {
    // A "sum" of random reduced coefficients is well-formed but carries no message: its noise is ~q.
    const agg = new BfvAggregator(ctx);
    agg.add(cipher.encryptResidues(residues(100, 3)));
    const sum = agg.toBytes();
    agg.dispose();
    const forged = Uint8Array.from(sum);
    const rng = createRng(5);
    const q = BigInt(ctx.coeffModulus);
    // Rewrite the packed coefficients (60-bit little-endian fields after the 48+4-byte header).
    const coeffs = (forged.length - 48 - 4 - 32) / 7.5;
    let bits = 0n;
    let nbits = 0n;
    let pos = 52;
    for (let i = 0; i < coeffs; i++) {
      const c = (BigInt(Math.floor(rng.next() * 2 ** 30)) * 2n ** 30n + BigInt(Math.floor(rng.next() * 2 ** 30))) % q;
      bits |= c << nbits;
      nbits += 60n;
      while (nbits >= 8n) {
        forged[pos++] = Number(bits & 0xffn);
        bits >>= 8n;
        nbits -= 8n;
      }
    }
    expectCode(() => cipher.decryptResidues(reseal(forged), 100), 'HE_NOISE_BUDGET_EXHAUSTED');
  });
});

describe('BFV blob validation', () => {
  let valid: Uint8Array;
  beforeAll(() => {
    valid = cipher.encryptResidues(residues(LEN, 7));
  });

  it('rejects truncated and bit-flipped blobs', () => {
    for (const cut of [0, 10, 47, 80, 5000, valid.length - 1]) expectCode(() => inspectBfvBlob(ctx, valid.subarray(0, cut)), 'HE_BAD_CIPHERTEXT');
    const rng = createRng(11);
    for (let k = 0; k < 30; k++) {
      const bad = Uint8Array.from(valid);
      bad[rng.int(bad.length)] ^= 1 << rng.int(8);
      expectCode(() => inspectBfvBlob(ctx, bad), 'HE_BAD_CIPHERTEXT');
    }
  });

  it('rejects blobs and keys of other BFV parameters, and CKKS blobs, with HE_PARAMS_MISMATCH', async () => {
    const other = await BfvContext.create({ ...DEFAULT_BFV_PARAMS, plainModulusBits: 36 });
    const oc = new BfvCipher(other, generateBfvSecretKey(other));
    const ckks = await CkksContext.create(DEFAULT_HE_PARAMS);
    const cc = new CkksCipher(ckks, generateSecretKey(ckks));
    try {
      const foreign = oc.encryptResidues(Float64Array.from([1, 2, 3]));
      expect(expectCode(() => inspectBfvBlob(ctx, foreign), 'HE_PARAMS_MISMATCH').message).toMatch(/HE params/);
      expectCode(() => new BfvAggregator(ctx).add(foreign), 'HE_PARAMS_MISMATCH');
      expectCode(() => cipher.decryptResidues(foreign, 3), 'HE_PARAMS_MISMATCH');
      expectCode(() => new BfvCipher(ctx, generateBfvSecretKey(other)), 'HE_PARAMS_MISMATCH');
      const ckksBlob = cc.encryptVector(Float64Array.from([0.5]));
      expect(expectCode(() => inspectBfvBlob(ctx, ckksBlob), 'HE_PARAMS_MISMATCH').message).toMatch(/CKKS/);
      expect(expectCode(() => inspectBlob(ckks, valid), 'HE_PARAMS_MISMATCH').message).toMatch(/BFV/);
      expectCode(() => new BfvCipher(ctx, generateSecretKey(ckks)), 'HE_BAD_SECRET_KEY');
    } finally {
      oc.dispose();
      other.dispose();
      cc.dispose();
      ckks.dispose();
    }
  });

  it('rejects well-checksummed blobs with unreduced coefficients or a lying count', () => {
    const unreduced = Uint8Array.from(valid);
    unreduced.fill(0xff, 48 + 4 + 64, 48 + 4 + 64 + 8);
    expect(() => inspectBfvBlob(ctx, reseal(unreduced))).toThrow(/not reduced/);
    const lying = Uint8Array.from(valid);
    new DataView(lying.buffer).setUint32(44, 4, true);
    expectCode(() => inspectBfvBlob(ctx, reseal(lying)), 'HE_BAD_CIPHERTEXT');
  });

  it('survives 150 garbage blobs without crashing the WASM module, and does not leak', async () => {
    const rng = createRng(2024);
    const agg = new BfvAggregator(ctx);
    const small = residues(8192, 9);
    const iteration = () => {
      const a = new BfvAggregator(ctx);
      a.add(cipher.encryptResidues(small));
      a.add(cipher.encryptResidues(small));
      const restored = BfvAggregator.fromBytes(ctx, a.toBytes());
      a.dispose();
      const out = cipher.decryptResidues(restored.toBytes(), 8192);
      restored.dispose();
      return out;
    };
    try {
      for (let k = 0; k < 150; k++) {
        let bad: Uint8Array;
        if (k % 3 === 0) bad = Uint8Array.from({ length: rng.int(70_000) }, () => rng.int(256));
        else if (k % 3 === 1) bad = valid.slice(0, rng.int(valid.length));
        else {
          bad = Uint8Array.from(valid);
          for (let i = 52; i < bad.length - 32; i++) bad[i] = rng.int(256);
          bad = reseal(bad);
        }
        expect(() => agg.add(bad)).toThrow(FedmarkError);
      }
    } finally {
      agg.dispose();
    }
    for (let i = 0; i < 10; i++) iteration();
    const before = await sealHeapBytes();
    let last: Float64Array = new Float64Array(0);
    for (let i = 0; i < 60; i++) last = iteration();
    const after = await sealHeapBytes();
    expect(last[0]).toBe((2 * small[0]) % t);
    expect(after! - before!).toBeLessThanOrEqual(4 * 1024 * 1024);
  });
});
