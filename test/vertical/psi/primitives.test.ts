import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { generateIdentity } from '../../../src/crypto/identity.ts';
import { buildTree, leafHash, multiproof, rootOf, saltsFromSeed, verifyMultiproof, SALT_BYTES } from '../../../src/vertical/psi/merkle.ts';
import { decodeFrame, encodeFrame, parsePsiMessage } from '../../../src/vertical/psi/messages.ts';
import { openStream, sealStream } from '../../../src/vertical/psi/seal-stream.ts';
import { randomPermutation } from '../../../src/vertical/psi/shuffle.ts';

describe('chunked sealing (X25519 + HKDF + AES-256-GCM STREAM)', () => {
  const recipient = generateIdentity('recipient');
  const other = generateIdentity('other');

  it('round-trips lists of every size around the chunk boundary, including empty', () => {
    for (const n of [0, 1, 1023, 1024, 1025, 5000]) {
      const plain = randomBytes(n);
      const { params, sealed } = sealStream(plain, recipient.boxPublicKey, 'ctx', 1024);
      expect(params.chunks).toBe(Math.max(1, Math.ceil(n / 1024)));
      expect(Buffer.from(openStream(sealed, params, recipient.boxSecretKey, recipient.boxPublicKey, 'ctx')).equals(plain)).toBe(true);
    }
  });

  it('uses the identity box keys: node X25519 agrees with tweetnacl', () => {
    const eph = nacl.box.keyPair();
    expect(
      Buffer.from(nacl.scalarMult(eph.secretKey, recipient.boxPublicKey)).equals(Buffer.from(nacl.scalarMult(recipient.boxSecretKey, eph.publicKey))),
    ).toBe(true);
  });

  it('refuses another recipient, another context, a flipped bit, swapped or dropped chunks', () => {
    const plain = randomBytes(4000);
    const { params, sealed } = sealStream(plain, recipient.boxPublicKey, 'job|slot', 1024);
    const open =
      (s: Uint8Array, p = params, who = recipient, ctx = 'job|slot') =>
      () =>
        openStream(s, p, who.boxSecretKey, who.boxPublicKey, ctx);
    expect(open(sealed, params, other)).toThrow(/chunk 0 of 4 does not authenticate/);
    expect(open(sealed, params, recipient, 'job|other-slot')).toThrow(/does not authenticate/);
    const flipped = sealed.slice();
    flipped[2100] ^= 1;
    expect(open(flipped)).toThrow(/chunk 2 of 4/);
    const swapped = sealed.slice();
    swapped.set(sealed.subarray(0, 1040), 1040);
    swapped.set(sealed.subarray(1040, 2080), 0);
    expect(open(swapped)).toThrow(/chunk 0/);
    // Truncation to whole chunks: the new last chunk was not sealed as last.
    const cut = sealed.slice(0, 3 * 1040);
    expect(open(cut, { ...params, chunks: 3, plainBytes: 3072 })).toThrow(/chunk 2 of 3/);
    expect(open(cut)).toThrow(/need/);
  });
});

describe('salted Merkle multiproofs', () => {
  it('verify for every subset shape and refuse a changed value, index, salt or proof', () => {
    for (const n of [1, 2, 3, 7, 8, 33, 100]) {
      const values = randomBytes(32 * n);
      const salts = saltsFromSeed(randomBytes(32), n);
      const levels = buildTree(values, salts);
      const root = rootOf(levels);
      for (const pick of [[0], [n - 1], [...Array(n).keys()], [...Array(n).keys()].filter((i) => i % 3 === 1)]) {
        const idx = [...new Set(pick)].sort((a, b) => a - b);
        if (idx.length === 0) continue;
        const leaves = idx.map((i) => ({
          index: i,
          hash: leafHash(salts.subarray(i * SALT_BYTES, (i + 1) * SALT_BYTES), i, values.subarray(i * 32, i * 32 + 32)),
        }));
        const proof = multiproof(levels, idx);
        expect(verifyMultiproof(root, n, leaves, proof)).toBe(true);
        const badLeaf = leaves.map((l, j) => (j === 0 ? { ...l, hash: leafHash(new Uint8Array(16), l.index, values.subarray(0, 32)) } : l));
        expect(verifyMultiproof(root, n, badLeaf, proof)).toBe(false);
        if (proof.length > 0) {
          const p2 = proof.slice();
          p2[0] ^= 1;
          expect(verifyMultiproof(root, n, leaves, p2)).toBe(false);
          expect(verifyMultiproof(root, n, leaves, proof.subarray(32))).toBe(false);
        }
        expect(verifyMultiproof(root, n, leaves, new Uint8Array([...proof, ...new Uint8Array(32)]))).toBe(false);
        if (n > 1 && idx.length === 1) {
          const moved = [{ index: (idx[0] + 1) % n, hash: leaves[0].hash }];
          expect(verifyMultiproof(root, n, moved, proof)).toBe(false);
        }
      }
    }
  });

  it('the salts hide the values: a proof for one leaf reveals no unsalted hash of a sibling', () => {
    const values = randomBytes(32 * 4);
    const levels = buildTree(values, saltsFromSeed(randomBytes(32), 4));
    const proof = Buffer.from(multiproof(levels, [0]));
    const unsaltedSibling = leafHash(new Uint8Array(16), 1, values.subarray(32, 64));
    expect(proof.includes(Buffer.from(unsaltedSibling))).toBe(false);
  });
});

describe('messages and shuffles', () => {
  it('frames round-trip; a bad frame or header is a clear error', () => {
    const header = {
      v: 1,
      kind: 'psi.receipt',
      jobId: 'j',
      specHash: 'a'.repeat(64),
      from: 'b'.repeat(32),
      to: 'c'.repeat(32),
      sig: 'AA==',
      intersectionSize: 3,
      orderDigest: 'd'.repeat(64),
    };
    const msg = parsePsiMessage({ header, body: new Uint8Array(0) });
    expect(decodeFrame(encodeFrame(msg))).toEqual(msg);
    expect(() => decodeFrame(new Uint8Array([1, 2, 3]))).toThrow(/bad magic/);
    const frame = encodeFrame(msg);
    expect(() => decodeFrame(frame.subarray(0, 20))).toThrow(/does not fit/);
    expect(() => parsePsiMessage({ header: { ...header, intersectionSize: -1 }, body: new Uint8Array(0) })).toThrow(/intersectionSize/);
    expect(() => parsePsiMessage({ header: { ...header, kind: 'psi.other' }, body: new Uint8Array(0) })).toThrow(/PSI message header/);
  });

  it('random permutations are permutations and are not the identity', () => {
    const p = randomPermutation(1000);
    expect([...p].sort((a, b) => a - b)).toEqual([...Array(1000).keys()]);
    expect(p.filter((v, i) => v === i).length).toBeLessThan(10);
    expect(Array.from(randomPermutation(0))).toEqual([]);
    expect(Array.from(randomPermutation(1))).toEqual([0]);
  });
});
