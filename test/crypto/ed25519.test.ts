import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { ed25519Sign, ed25519Verify } from '../../src/crypto/ed25519.ts';

describe('Ed25519 through node:crypto', () => {
  it('produces exactly the signatures tweetnacl produces, and verifies the same way', () => {
    for (let i = 0; i < 20; i++) {
      const kp = nacl.sign.keyPair();
      const msg = nacl.randomBytes(1 + i * 37);
      const ours = ed25519Sign(msg, kp.secretKey);
      expect(Buffer.from(ours).equals(Buffer.from(nacl.sign.detached(msg, kp.secretKey)))).toBe(true);
      expect(ed25519Verify(msg, ours, kp.publicKey)).toBe(true);
      const flipped = Uint8Array.from(ours);
      flipped[i % 64] ^= 1;
      expect(ed25519Verify(msg, flipped, kp.publicKey)).toBe(false);
      expect(nacl.sign.detached.verify(msg, flipped, kp.publicKey)).toBe(false);
      const other = Uint8Array.from(msg);
      other[0] ^= 0x80;
      expect(ed25519Verify(other, ours, kp.publicKey)).toBe(false);
    }
  });

  it('rejects malformed keys and signatures without throwing', () => {
    const kp = nacl.sign.keyPair();
    const msg = new Uint8Array([1, 2, 3]);
    const sig = ed25519Sign(msg, kp.secretKey);
    expect(ed25519Verify(msg, sig.subarray(0, 63), kp.publicKey)).toBe(false);
    expect(ed25519Verify(msg, sig, kp.publicKey.subarray(0, 31))).toBe(false);
    expect(ed25519Verify(msg, sig, new Uint8Array(32))).toBe(false);
    expect(() => ed25519Sign(msg, kp.secretKey.subarray(0, 32))).toThrow(/64 bytes/);
  });
});
