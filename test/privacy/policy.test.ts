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

describe('checkJob: who the partner works for and how it is aggregated (every job, private or not)', () => {
  const owner = 'a'.repeat(32);
  const job = {
    purpose: 'churn-model',
    columns: ['age', 'churned'],
    targetEpsilon: 2,
    delta: 1e-6,
    datasetRows: 50_000,
    ownerKeyId: owner,
    encryption: 'ckks',
    quorum: 2,
    rounds: 10,
  };
  const reasons = (r: ReturnType<typeof checkJob>) => (r.ok ? [] : r.reasons);

  it('refuses an owner outside trustedOwnerKeyIds, and accepts one inside', () => {
    const p = { ...basePolicy(), trustedOwnerKeyIds: [owner] };
    expect(checkJob(p, job, 0)).toEqual({ ok: true });
    expect(reasons(checkJob(p, { ...job, ownerKeyId: 'b'.repeat(32) }, 0)).join()).toMatch(/not among this partner's trusted owners/);
  });

  it('refuses plaintext aggregation unless the policy allows it', () => {
    expect(reasons(checkJob(basePolicy(), { ...job, encryption: 'plain-insecure' }, 0)).join()).toMatch(/plaintext/);
    expect(checkJob({ ...basePolicy(), allowPlaintextAggregation: true }, { ...job, encryption: 'plain-insecure' }, 0)).toEqual({ ok: true });
  });

  it('refuses a quorum below 2 by default and below minQuorum when set; minQuorum itself is at least 2', () => {
    expect(reasons(checkJob(basePolicy(), { ...job, quorum: 1 }, 0)).join()).toMatch(/quorum 1 is below this partner's minimum 2/);
    expect(reasons(checkJob({ ...basePolicy(), minQuorum: 3 }, job, 0)).join()).toMatch(/quorum 2 is below this partner's minimum 3/);
    expect(() => parsePolicy({ ...basePolicy(), minQuorum: 1 })).toThrow(/minQuorum must be at least 2/);
  });

  it('refuses more rounds than maxRounds', () => {
    expect(reasons(checkJob({ ...basePolicy(), maxRounds: 5 }, { ...job, rounds: 12 }, 0)).join()).toMatch(/12 rounds exceed this partner's maxRounds 5/);
    expect(checkJob({ ...basePolicy(), maxRounds: 12 }, { ...job, rounds: 12 }, 0)).toEqual({ ok: true });
  });

  it('reviews a job without DP in full: purpose, columns and aggregation still apply, and it needs allowNonPrivateJobs', () => {
    const nonDp = { ...job, targetEpsilon: null, delta: null };
    expect(reasons(checkJob(basePolicy(), nonDp, 0)).join()).toMatch(/not differentially private/);
    const allowing = { ...basePolicy(), allowNonPrivateJobs: true };
    expect(checkJob(allowing, nonDp, 0)).toEqual({ ok: true });
    const r = reasons(checkJob(allowing, { ...nonDp, purpose: 'credit-scoring', columns: ['age', 'gender'], quorum: 1 }, 0));
    expect(r.join()).toMatch(/purpose "credit-scoring"/);
    expect(r.join()).toMatch(/columns not allowed: gender/);
    expect(r.join()).toMatch(/quorum 1/);
  });
});

describe('verifyDualAuthorization', () => {
  const payload = new TextEncoder().encode('job manifest sha256:abcd');
  const sign = (i: number, msg = payload) => b64(nacl.sign.detached(msg, officers[i].secretKey));

  it('accepts two distinct officers with valid signatures', () => {
    expect(
      verifyDualAuthorization(
        payload,
        [
          { officer: 'alice', signature: sign(0) },
          { officer: 'carol', signature: sign(2) },
        ],
        basePolicy(),
      ),
    ).toBe(true);
  });

  it('rejects one officer twice, wrong keys, unknown names, tampered payloads and no policy section', () => {
    const p = basePolicy();
    expect(
      verifyDualAuthorization(
        payload,
        [
          { officer: 'alice', signature: sign(0) },
          { officer: 'alice', signature: sign(0) },
        ],
        p,
      ),
    ).toBe(false);
    // bob's name with alice's signature
    expect(
      verifyDualAuthorization(
        payload,
        [
          { officer: 'alice', signature: sign(0) },
          { officer: 'bob', signature: sign(0) },
        ],
        p,
      ),
    ).toBe(false);
    expect(
      verifyDualAuthorization(
        payload,
        [
          { officer: 'alice', signature: sign(0) },
          { officer: 'mallory', signature: sign(1) },
        ],
        p,
      ),
    ).toBe(false);
    const other = new TextEncoder().encode('another manifest');
    expect(
      verifyDualAuthorization(
        payload,
        [
          { officer: 'alice', signature: sign(0) },
          { officer: 'bob', signature: sign(1, other) },
        ],
        p,
      ),
    ).toBe(false);
    expect(
      verifyDualAuthorization(
        payload,
        [
          { officer: 'alice', signature: sign(0) },
          { officer: 'bob', signature: 'not base64!' },
        ],
        p,
      ),
    ).toBe(false);
    const { dualAuthorization: _drop, ...noDual } = p;
    expect(
      verifyDualAuthorization(
        payload,
        [
          { officer: 'alice', signature: sign(0) },
          { officer: 'bob', signature: sign(1) },
        ],
        noDual,
      ),
    ).toBe(false);
  });
});
