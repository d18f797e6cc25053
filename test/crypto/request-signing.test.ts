import { describe, expect, it } from 'vitest';
import { generateIdentity, keyId, publicIdentity } from '../../src/crypto/identity.ts';
import { MemoryNonceStore, bodyMatches, signRequest, verifyRequest, verifyRequestHeaders, type VerifyResult } from '../../src/crypto/request-signing.ts';
import { sha256Hex } from '../../src/util/hash.ts';

const alice = generateIdentity('alice');
const mallory = generateIdentity('mallory');
const registry = new Map([[keyId(alice.signPublicKey), publicIdentity(alice).signPublicKey]]);
const lookupKey = (id: string) => registry.get(id);
const NOW = 1_700_000_000_000;
const body = new TextEncoder().encode('ciphertext bytes');
const req = { method: 'POST', path: '/jobs/j1/rounds/2/updates', body };

function sign(overrides: Partial<Parameters<typeof signRequest>[0]> = {}) {
  return signRequest({ ...req, jobId: 'j1', round: 2, identity: alice, now: NOW, ...overrides });
}

function expectReject(result: VerifyResult, status: number, code: string) {
  expect(result.ok).toBe(false);
  if (!result.ok) {
    expect(result.status).toBe(status);
    expect(result.code).toBe(code);
    expect(result.error.length).toBeGreaterThan(0);
  }
}

describe('signed requests', () => {
  it('accepts a correctly signed request once', () => {
    const nonces = new MemoryNonceStore();
    const headers = sign();
    expect(Object.keys(headers).sort()).toEqual([
      'x-fedmark-body-sha256',
      'x-fedmark-job',
      'x-fedmark-key',
      'x-fedmark-nonce',
      'x-fedmark-public-key',
      'x-fedmark-round',
      'x-fedmark-signature',
      'x-fedmark-timestamp',
    ]);
    const result = verifyRequest(headers, req, { lookupKey, nonces, now: NOW + 1000 });
    expect(result).toEqual({ ok: true, keyId: keyId(alice.signPublicKey), jobId: 'j1', round: 2, bodySha256: sha256Hex(req.body) });
  });

  it('rejects a replayed nonce with 409', () => {
    const nonces = new MemoryNonceStore();
    const headers = sign();
    expect(verifyRequest(headers, req, { lookupKey, nonces, now: NOW }).ok).toBe(true);
    expectReject(verifyRequest(headers, req, { lookupKey, nonces, now: NOW + 5 }), 409, 'AUTH_REPLAY');
    // the same nonce re-signed with a new timestamp is still a replay
    expectReject(verifyRequest(sign({ nonce: headers['x-fedmark-nonce'], now: NOW + 10 }), req, { lookupKey, nonces, now: NOW + 10 }), 409, 'AUTH_REPLAY');
  });

  it('rejects a forged signature (other key claiming alice’s key id)', () => {
    const forged = { ...signRequest({ ...req, jobId: 'j1', round: 2, identity: mallory, now: NOW }), 'x-fedmark-key': keyId(alice.signPublicKey) };
    expectReject(verifyRequest(forged, req, { lookupKey, nonces: new MemoryNonceStore(), now: NOW }), 401, 'AUTH_BAD_SIGNATURE');
    const garbled = { ...sign(), 'x-fedmark-signature': Buffer.alloc(64, 7).toString('base64') };
    expectReject(verifyRequest(garbled, req, { lookupKey, nonces: new MemoryNonceStore(), now: NOW }), 401, 'AUTH_BAD_SIGNATURE');
  });

  it('rejects stale and future timestamps beyond the allowed skew', () => {
    const nonces = new MemoryNonceStore();
    expectReject(verifyRequest(sign(), req, { lookupKey, nonces, now: NOW + 5 * 60_000 + 1 }), 401, 'AUTH_STALE');
    expectReject(verifyRequest(sign(), req, { lookupKey, nonces, now: NOW - 5 * 60_000 - 1 }), 401, 'AUTH_STALE');
    expect(verifyRequest(sign(), req, { lookupKey, nonces, now: NOW + 5 * 60_000 }).ok).toBe(true);
    expectReject(verifyRequest(sign(), req, { lookupKey, nonces, now: NOW + 2000, maxSkewMs: 1000 }), 401, 'AUTH_STALE');
  });

  it('rejects an unknown key', () => {
    const headers = signRequest({ ...req, jobId: 'j1', round: 2, identity: mallory, now: NOW });
    expectReject(verifyRequest(headers, req, { lookupKey, nonces: new MemoryNonceStore(), now: NOW }), 401, 'AUTH_UNKNOWN_KEY');
  });

  it('rejects a tampered body, path, method, job or round', () => {
    const nonces = new MemoryNonceStore();
    const headers = sign();
    const opts = { lookupKey, nonces, now: NOW };
    const tamperedBody = Uint8Array.from(body);
    tamperedBody[0] ^= 1;
    expectReject(verifyRequest(headers, { ...req, body: tamperedBody }, opts), 401, 'AUTH_BAD_SIGNATURE');
    expectReject(verifyRequest(headers, { ...req, path: '/jobs/j2/rounds/2/updates' }, opts), 401, 'AUTH_BAD_SIGNATURE');
    expectReject(verifyRequest(headers, { ...req, method: 'PUT' }, opts), 401, 'AUTH_BAD_SIGNATURE');
    expectReject(verifyRequest({ ...headers, 'x-fedmark-job': 'j2' }, req, opts), 401, 'AUTH_BAD_SIGNATURE');
    expectReject(verifyRequest({ ...headers, 'x-fedmark-round': '3' }, req, opts), 401, 'AUTH_BAD_SIGNATURE');
    // failed attempts did not burn the nonce
    expect(verifyRequest(headers, req, opts).ok).toBe(true);
  });

  it('authenticates from the headers alone; the body is checked against the signed hash once it arrives', () => {
    const headers = sign();
    const result = verifyRequestHeaders(headers, { method: req.method, path: req.path }, { lookupKey, nonces: new MemoryNonceStore(), now: NOW });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(bodyMatches(result.bodySha256, body)).toBe(true);
    const other = Uint8Array.from(body);
    other[3] ^= 1;
    expect(bodyMatches(result.bodySha256, other)).toBe(false);
    // The hash header is signed: replacing it with the hash of another body breaks the signature.
    expectReject(
      verifyRequestHeaders({ ...headers, 'x-fedmark-body-sha256': sha256Hex(other) }, req, { lookupKey, nonces: new MemoryNonceStore(), now: NOW }),
      401,
      'AUTH_BAD_SIGNATURE',
    );
  });

  it('checks the clock before the key, so a stale request says nothing about which keys are registered', () => {
    const stale = { lookupKey, nonces: new MemoryNonceStore(), now: NOW + 10 * 60_000 };
    expectReject(verifyRequest(signRequest({ ...req, jobId: 'j1', round: 2, identity: mallory, now: NOW }), req, stale), 401, 'AUTH_STALE');
    expectReject(verifyRequest(sign(), req, stale), 401, 'AUTH_STALE');
  });

  it('rejects missing or malformed headers', () => {
    const headers = sign();
    const opts = { lookupKey, nonces: new MemoryNonceStore(), now: NOW };
    const { ['x-fedmark-signature']: _sig, ...unsigned } = headers;
    expectReject(verifyRequest(unsigned, req, opts), 401, 'AUTH_MISSING');
    expectReject(verifyRequest({}, req, opts), 401, 'AUTH_MISSING');
    expectReject(verifyRequest({ ...headers, 'x-fedmark-round': '-1' }, req, opts), 401, 'AUTH_MALFORMED');
    expectReject(verifyRequest({ ...headers, 'x-fedmark-nonce': 'short' }, req, opts), 401, 'AUTH_MALFORMED');
    expectReject(verifyRequest({ ...headers, 'x-fedmark-nonce': [headers['x-fedmark-nonce'], 'x'] }, req, opts), 401, 'AUTH_MISSING');
  });

  it('memory nonce store forgets expired nonces only', () => {
    let clock = 0;
    const store = new MemoryNonceStore({ now: () => clock });
    expect(store.checkAndRecord('k', 'n1', 100)).toBe(true);
    expect(store.checkAndRecord('k', 'n1', 100)).toBe(false);
    expect(store.checkAndRecord('other', 'n1', 100)).toBe(true);
    expect(store.checkAndRecord('k', 'n2', 1000)).toBe(true);
    clock = 500;
    store.prune();
    expect(store.size).toBe(1);
    expect(store.checkAndRecord('k', 'n2', 1000)).toBe(false);
    for (let i = 0; i < 600; i++) store.checkAndRecord('k', `bulk${i}`, 600);
    clock = 700;
    for (let i = 0; i < 300; i++) store.checkAndRecord('k', `later${i}`, 2000);
    expect(store.size).toBeLessThan(600);
  });
});
