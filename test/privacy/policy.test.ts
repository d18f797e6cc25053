import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { describe, it, expect } from 'vitest';
import { checkJob, loadPolicy, parsePolicy, verifyDualAuthorization, type PartnerPolicy } from '../../src/privacy/policy.ts';
import { FedmarkError } from '../../src/errors.ts';

const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
const officers = [nacl.sign.keyPair(), nacl.sign.keyPair(), nacl.sign.keyPair()];

function basePolicy(): PartnerPolicy {
  return {
    partner: 'bank-a',
    datasetId: 'customers-2026',
    maxEpsilonPerJob: 3,
    lifetimeEpsilon: 10,
    maxDelta: 1e-5,
    allowedColumns: ['age', 'tenure', 'churned'],
    allowedPurposes: ['churn-model'],
    dualAuthorization: {
      officers: [
        { name: 'alice', signPublicKey: b64(officers[0].publicKey) },
        { name: 'bob', signPublicKey: b64(officers[1].publicKey) },
        { name: 'carol', signPublicKey: b64(officers[2].publicKey) },
      ],
      required: 2,
    },
  };
}

const dir = mkdtempSync(join(tmpdir(), 'fedmark-policy-'));
function writePolicy(name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}
function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return err instanceof FedmarkError ? err.code : 'not-fedmark';
  }
  return undefined;
}

describe('loadPolicy', () => {
  it('loads a valid policy file', () => {
    const p = writePolicy('ok.json', JSON.stringify(basePolicy()));
    expect(loadPolicy(p)).toEqual(basePolicy());
  });

  it('gives clear errors for missing files, bad JSON and bad fields', () => {
    expect(codeOf(() => loadPolicy(join(dir, 'missing.json')))).toBe('POLICY_NOT_FOUND');
    expect(codeOf(() => loadPolicy(writePolicy('bad.json', '{ "partner": ')))).toBe('POLICY_INVALID_JSON');
    const bad = { ...basePolicy(), maxEpsilonPerJob: -1 };
    const p = writePolicy('neg.json', JSON.stringify(bad));
    expect(() => loadPolicy(p)).toThrow(/maxEpsilonPerJob/);
    expect(() => loadPolicy(p)).toThrow(new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });

  it('rejects unknown fields, weak dual authorization and shared officer keys', () => {
    expect(() => parsePolicy({ ...basePolicy(), maxEpsilon: 1 })).toThrow(FedmarkError);
    const one = basePolicy();
    one.dualAuthorization = { officers: [one.dualAuthorization!.officers[0]], required: 2 };
    expect(() => parsePolicy(one)).toThrow(/officers/);
    const shared = basePolicy();
    shared.dualAuthorization!.officers[1].signPublicKey = shared.dualAuthorization!.officers[0].signPublicKey;
    expect(() => parsePolicy(shared)).toThrow(/keys must be distinct/);
    const badKey = basePolicy();
    badKey.dualAuthorization!.officers[0].signPublicKey = 'AAAA';
    expect(() => parsePolicy(badKey)).toThrow(/Ed25519/);
    expect(() => parsePolicy({ ...basePolicy(), maxEpsilonPerJob: 20 })).toThrow(/lifetimeEpsilon/);
  });
});

describe('checkJob', () => {
  const job = { purpose: 'churn-model', columns: ['age', 'churned'], targetEpsilon: 2, delta: 1e-6, datasetRows: 50_000 };

  it('accepts a job within every rule', () => {
    expect(checkJob(basePolicy(), job, 5)).toEqual({ ok: true });
  });

  it('reports every violated rule', () => {
    const r = checkJob(basePolicy(), { ...job, purpose: 'ads', columns: ['age', 'income'], targetEpsilon: 4, delta: 2e-5 }, 0);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reasons.some((s) => s.includes('purpose "ads"'))).toBe(true);
    expect(r.reasons.some((s) => s.includes('income'))).toBe(true);
    expect(r.reasons.some((s) => s.includes('maxEpsilonPerJob'))).toBe(true);
    expect(r.reasons.some((s) => s.includes('maxDelta'))).toBe(true);
  });

  it('refuses when the lifetime budget would be exceeded', () => {
    const r = checkJob(basePolicy(), job, 8.5);
    expect(r).toEqual({ ok: false, reasons: [expect.stringContaining('lifetime budget exceeded')] });
  });

  it('requires δ ≤ 1/n', () => {
    const r = checkJob(basePolicy(), { ...job, delta: 1e-5, datasetRows: 200_000 }, 0);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reasons.join()).toMatch(/1\/n/);
    expect(checkJob(basePolicy(), { ...job, delta: 1e-5, datasetRows: 100_000 }, 0)).toEqual({ ok: true });
  });
});

describe('verifyDualAuthorization', () => {
  const payload = new TextEncoder().encode('job manifest sha256:abcd');
  const sign = (i: number, msg = payload) => b64(nacl.sign.detached(msg, officers[i].secretKey));

  it('accepts two distinct officers with valid signatures', () => {
    expect(
      verifyDualAuthorization(payload, [{ officer: 'alice', signature: sign(0) }, { officer: 'carol', signature: sign(2) }], basePolicy()),
    ).toBe(true);
  });

  it('rejects one officer twice, wrong keys, unknown names, tampered payloads and no policy section', () => {
    const p = basePolicy();
    expect(verifyDualAuthorization(payload, [{ officer: 'alice', signature: sign(0) }, { officer: 'alice', signature: sign(0) }], p)).toBe(false);
    // bob's name with alice's signature
    expect(verifyDualAuthorization(payload, [{ officer: 'alice', signature: sign(0) }, { officer: 'bob', signature: sign(0) }], p)).toBe(false);
    expect(verifyDualAuthorization(payload, [{ officer: 'alice', signature: sign(0) }, { officer: 'mallory', signature: sign(1) }], p)).toBe(false);
    const other = new TextEncoder().encode('another manifest');
    expect(verifyDualAuthorization(payload, [{ officer: 'alice', signature: sign(0) }, { officer: 'bob', signature: sign(1, other) }], p)).toBe(false);
    expect(verifyDualAuthorization(payload, [{ officer: 'alice', signature: sign(0) }, { officer: 'bob', signature: 'not base64!' }], p)).toBe(false);
    const { dualAuthorization: _drop, ...noDual } = p;
    expect(verifyDualAuthorization(payload, [{ officer: 'alice', signature: sign(0) }, { officer: 'bob', signature: sign(1) }], noDual)).toBe(false);
  });
});
