import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CkksCipher, CkksContext, DEFAULT_HE_PARAMS } from '../../src/crypto/ckks/index.ts';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { createKeyCeremony, openSealed, sealForRecipient } from '../../src/crypto/key-ceremony.ts';
import { FedmarkError } from '../../src/errors.ts';
import { sha256Hex } from '../../src/util/hash.ts';

let ctx: CkksContext;
beforeAll(async () => {
  ctx = await CkksContext.create(DEFAULT_HE_PARAMS);
});
afterAll(() => ctx?.dispose());

const owner = generateIdentity('owner');
const bank = generateIdentity('bank');
const telco = generateIdentity('telco');
const outsider = generateIdentity('outsider');

describe('sealed boxes', () => {
  it('round-trips a secret to its recipient, with a fresh nonce each time', () => {
    const secret = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
    const a = sealForRecipient(secret, bank.boxPublicKey, owner);
    const b = sealForRecipient(secret, bank.boxPublicKey, owner);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(openSealed(a, owner.boxPublicKey, bank)).toEqual(secret);
  });

  it('fails for the wrong recipient, wrong sender key, tampering and truncation', () => {
    const blob = sealForRecipient(new Uint8Array([1, 2, 3]), bank.boxPublicKey, owner);
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(FedmarkError);
        return (err as FedmarkError).code;
      }
      return 'no error';
    };
    expect(code(() => openSealed(blob, owner.boxPublicKey, telco))).toBe('KEY_CEREMONY_OPEN_FAILED');
    expect(code(() => openSealed(blob, outsider.boxPublicKey, bank))).toBe('KEY_CEREMONY_OPEN_FAILED');
    const tampered = Uint8Array.from(blob);
    tampered[tampered.length - 1] ^= 1;
    expect(code(() => openSealed(tampered, owner.boxPublicKey, bank))).toBe('KEY_CEREMONY_OPEN_FAILED');
    expect(code(() => openSealed(blob.subarray(0, 30), owner.boxPublicKey, bank))).toBe('KEY_CEREMONY_OPEN_FAILED');
  });
});

describe('key ceremony', () => {
  it('every participant opens the same CKKS key, and ciphertexts interoperate', () => {
    const ceremony = createKeyCeremony(ctx, owner, [publicIdentity(bank), publicIdentity(telco)]);
    expect(ceremony.sealed.map((s) => s.keyId)).toEqual([publicIdentity(bank).keyId, publicIdentity(telco).keyId]);
    expect(ceremony.secretKeyHash).toBe(sha256Hex(ceremony.secretKey));
    const bankKey = openSealed(ceremony.sealed[0].blob, owner.boxPublicKey, bank);
    const telcoKey = openSealed(ceremony.sealed[1].blob, owner.boxPublicKey, telco);
    expect(sha256Hex(bankKey)).toBe(ceremony.secretKeyHash);
    expect(sha256Hex(telcoKey)).toBe(ceremony.secretKeyHash);
    expect(() => openSealed(ceremony.sealed[0].blob, owner.boxPublicKey, telco)).toThrow(FedmarkError);

    const bankCipher = new CkksCipher(ctx, bankKey);
    const telcoCipher = new CkksCipher(ctx, telcoKey);
    try {
      const v = Float64Array.from([1.5, -2.25, 3]);
      expect(Math.abs(telcoCipher.decryptVector(bankCipher.encryptVector(v), 3)[1] + 2.25)).toBeLessThan(1e-8);
    } finally {
      bankCipher.dispose();
      telcoCipher.dispose();
    }
  });

  it('rejects duplicate or malformed participants', () => {
    expect(() => createKeyCeremony(ctx, owner, [publicIdentity(bank), publicIdentity(bank)])).toThrow(
      expect.objectContaining({ code: 'KEY_CEREMONY_DUPLICATE' }),
    );
    expect(() => createKeyCeremony(ctx, owner, [{ ...publicIdentity(bank), keyId: publicIdentity(telco).keyId }])).toThrow(FedmarkError);
  });
});
