import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  generateIdentity,
  keyId,
  parsePublicIdentity,
  publicIdentity,
  publicIdentitySchema,
  readIdentityFile,
  signBytes,
  verifyBytes,
  writeIdentityFile,
} from '../../src/crypto/identity.ts';
import { FedmarkError } from '../../src/errors.ts';
import { sha256Hex } from '../../src/util/hash.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fedmark-id-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('identities', () => {
  it('generates Ed25519 + X25519 keys and a key id from sha256 of the signing key', () => {
    const id = generateIdentity('bank');
    expect(id.signPublicKey).toHaveLength(32);
    expect(id.signSecretKey).toHaveLength(64);
    expect(id.boxPublicKey).toHaveLength(32);
    expect(id.boxSecretKey).toHaveLength(32);
    expect(keyId(id.signPublicKey)).toBe(sha256Hex(id.signPublicKey).slice(0, 32));
    const pub = publicIdentity(id);
    expect(pub).toEqual({
      name: 'bank',
      keyId: keyId(id.signPublicKey),
      signPublicKey: Buffer.from(id.signPublicKey).toString('base64'),
      boxPublicKey: Buffer.from(id.boxPublicKey).toString('base64'),
    });
    expect(publicIdentitySchema.safeParse(pub).success).toBe(true);
    expect(() => generateIdentity('')).toThrow(FedmarkError);
  });

  it('public identity schema rejects a key id that does not match the key', () => {
    const a = publicIdentity(generateIdentity('a'));
    const b = publicIdentity(generateIdentity('b'));
    expect(() => parsePublicIdentity({ ...a, keyId: b.keyId })).toThrow(/keyId/);
    expect(() => parsePublicIdentity({ ...a, boxPublicKey: 'AAAA' })).toThrow(FedmarkError);
  });

  it('writes mode 0600, reads back identical keys, refuses to overwrite without force', () => {
    const path = join(dir, 'id.json');
    const id = generateIdentity('telco');
    writeIdentityFile(path, id);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const back = readIdentityFile(path);
    expect(back).toEqual(id);
    expect(() => writeIdentityFile(path, generateIdentity('other'))).toThrow(expect.objectContaining({ code: 'IDENTITY_FILE_EXISTS' }));
    expect(readIdentityFile(path)).toEqual(id);
    const replacement = generateIdentity('other');
    chmodSync(path, 0o644);
    writeIdentityFile(path, replacement, { force: true });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readIdentityFile(path).name).toBe('other');
  });

  it('refuses to read an identity file readable by group or others', () => {
    const path = join(dir, 'id.json');
    writeIdentityFile(path, generateIdentity('insurer'));
    for (const mode of [0o640, 0o604, 0o660, 0o644]) {
      chmodSync(path, mode);
      expect(() => readIdentityFile(path)).toThrow(expect.objectContaining({ code: 'IDENTITY_FILE_PERMISSIONS' }));
    }
    chmodSync(path, 0o400);
    expect(readIdentityFile(path).name).toBe('insurer');
  });

  it('refuses a file whose public keys do not match its secret keys', () => {
    const path = join(dir, 'id.json');
    writeIdentityFile(path, generateIdentity('x'));
    const json = JSON.parse(readFileSync(path, 'utf8'));
    json.boxPublicKey = Buffer.from(generateIdentity('y').boxPublicKey).toString('base64');
    writeFileSync(path, JSON.stringify(json), { mode: 0o600 });
    expect(() => readIdentityFile(path)).toThrow(expect.objectContaining({ code: 'IDENTITY_FILE_INVALID' }));
    expect(() => readIdentityFile(join(dir, 'missing.json'))).toThrow(expect.objectContaining({ code: 'IDENTITY_FILE_MISSING' }));
  });

  it('signs and verifies bytes; any change or other key fails', () => {
    const id = generateIdentity('retailer');
    const other = generateIdentity('other');
    const msg = new TextEncoder().encode('round 3 update');
    const sig = signBytes(msg, id);
    const pk = publicIdentity(id).signPublicKey;
    expect(verifyBytes(msg, sig, pk)).toBe(true);
    expect(verifyBytes(new TextEncoder().encode('round 4 update'), sig, pk)).toBe(false);
    expect(verifyBytes(msg, sig, publicIdentity(other).signPublicKey)).toBe(false);
    const flipped = Buffer.from(sig, 'base64');
    flipped[5] ^= 1;
    expect(verifyBytes(msg, flipped.toString('base64'), pk)).toBe(false);
    expect(verifyBytes(msg, 'not base64!', pk)).toBe(false);
    expect(verifyBytes(msg, sig, 'AAAA')).toBe(false);
  });
});
