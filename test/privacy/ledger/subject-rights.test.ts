import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, createHmac } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  LedgerWriter,
  signerFromSecretKey,
  toBase64,
  hashCustomerId,
  writeIdSidecar,
  sidecarHas,
  subjectStatement,
  verifyLedger,
  readLedger,
} from '../../../src/privacy/ledger/index.ts';
import { FedmarkError } from '../../../src/errors.ts';

const partner = signerFromSecretKey(nacl.sign.keyPair.fromSeed(createHash('sha256').update('subject-partner').digest()).secretKey);
const SALT = createHash('sha256').update('partner-local-secret-salt').digest();
const h = (s: string): string => createHash('sha256').update(s).digest('hex');
const ids = (prefix: string, n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(from + i).padStart(6, '0')}`);

/** A partner's local ledger over two jobs: job A used customers 0..44,999, job B 30,000..39,999. */
function buildLocal() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-subject-'));
  const sidecars = path.join(dir, 'sidecars');
  const file = path.join(dir, 'bank.jsonl');
  const w = LedgerWriter.open(file, partner, { sync: false });
  w.append('ledger.genesis', {
    ledgerId: 'bank-node',
    role: 'partner',
    owner: { name: 'bank', keyId: partner.keyId, signPublicKey: toBase64(partner.signPublicKey) },
  });
  const t0 = performance.now();
  const scA = writeIdSidecar(sidecars, 'job-A', ids('C', 45_000), SALT);
  const sidecarMs = performance.now() - t0;
  const scB = writeIdSidecar(sidecars, 'job-B', ids('C', 10_000, 30_000), SALT);
  const jobs = [
    { jobId: 'job-A', sc: scA, rounds: [0.41, 0.63, 0.8], model: h('model-A') },
    { jobId: 'job-B', sc: scB, rounds: [1.2], model: h('model-B') },
  ];
  for (const j of jobs) {
    w.append('partner.acceptance', {
      jobId: j.jobId,
      partner: partner.keyId,
      manifestHash: h(`manifest-${j.jobId}`),
      policy: { maxEpsilon: 3, maxDelta: 1e-5 },
    });
    w.append('consent.usage', { jobId: j.jobId, partner: partner.keyId, rowsUsed: j.sc.count, rowsExcludedNoConsent: 17, sidecar: j.sc });
    j.rounds.forEach((eps, i) =>
      w.append('partner.round', {
        jobId: j.jobId,
        round: i + 1,
        samplingRate: 0.02,
        noiseMultiplier: 1.1,
        clipNorm: 1,
        steps: 50,
        delta: 1e-5,
        epsilonSpent: i ? eps - j.rounds[i - 1] : eps,
        epsilonCumulative: eps,
        ciphertextHashes: [h(`${j.jobId}-${i}`)],
      }),
    );
  }
  w.append('model.final', { jobId: 'job-A', modelHash: h('model-A'), rounds: 3, partners: [{ partner: partner.keyId, epsilon: 0.8, delta: 1e-5 }] });
  w.append('consent.withdrawal', {
    partner: partner.keyId,
    idHashes: [hashCustomerId('C-000007', SALT), hashCustomerId('C-031000', SALT)],
    count: 2,
    totalWithdrawn: 2,
    effectiveFrom: '2026-04-01T00:00:00.000Z',
  });
  w.close();
  return { dir, sidecars, file, sidecarMs, scA };
}

describe('salted id hashes and sidecars', () => {
  it('hashes ids with HMAC-SHA-256 under the partner salt, truncated to 128 bits', () => {
    expect(hashCustomerId('C-1', SALT)).toBe(createHmac('sha256', SALT).update('C-1').digest('hex').slice(0, 32));
    expect(hashCustomerId('C-1', SALT)).not.toBe(hashCustomerId('C-1', Buffer.from('another salt')));
    expect(() => hashCustomerId('C-1', '')).toThrow(FedmarkError);
  });

  it('writes a sorted, de-duplicated fixed-width file the ledger can pin', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-sc-'));
    const sc = writeIdSidecar(dir, 'job-x', ['a', 'b', 'a', 'c'], SALT);
    const body = fs.readFileSync(path.join(dir, sc.file));
    expect(sc.count).toBe(3);
    expect(body.length).toBe(3 * 33);
    const rows = body.toString('ascii').trimEnd().split('\n');
    expect(rows).toEqual([...rows].sort());
    expect(sc.sha256).toBe(createHash('sha256').update(body).digest('hex'));
    for (const id of ['a', 'b', 'c']) expect(sidecarHas(body, hashCustomerId(id, SALT))).toBe(true);
    expect(sidecarHas(body, hashCustomerId('d', SALT))).toBe(false);
    expect(() => writeIdSidecar(dir, '../escape', ['a'], SALT)).toThrow(FedmarkError);
  });
});

describe('subjectStatement', () => {
  const local = buildLocal();

  it('scales to 45k ids per job (measured)', () => {
    expect(local.scA.count).toBe(45_000);
    expect(fs.statSync(path.join(local.sidecars, local.scA.file)).size).toBe(45_000 * 33);
    console.log(`sidecar for 45,000 ids: ${((45_000 * 33) / 1e6).toFixed(2)} MB written in ${local.sidecarMs.toFixed(0)} ms`);
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) subjectStatement(local.file, local.sidecars, `C-0${String(i * 997).padStart(5, '0')}`, SALT);
    console.log(`subjectStatement over 2 jobs: ${((performance.now() - t0) / 20).toFixed(1)} ms per query`);
  });

  it('lists every job and model that used the record, with ε, δ and rounds', () => {
    expect(verifyLedger(readLedger(local.file)).findings.filter((f) => f.severity === 'error')).toEqual([]);
    const both = subjectStatement(local.file, local.sidecars, 'C-035000', SALT);
    expect(both.customerIdHash).toBe(hashCustomerId('C-035000', SALT));
    expect(both.partner).toBe(partner.keyId);
    expect(both.problems).toEqual([]);
    expect(both.consentWithdrawn).toBeNull();
    expect(both.uses.map((u) => ({ ...u, consentSeq: undefined }))).toEqual([
      { jobId: 'job-A', modelHash: h('model-A'), epsilon: 0.8, private: true, delta: 1e-5, rounds: 3, consentSeq: undefined, sidecarVerified: true },
      { jobId: 'job-B', modelHash: null, epsilon: 1.2, private: true, delta: 1e-5, rounds: 1, consentSeq: undefined, sidecarVerified: true },
    ]);
    expect(subjectStatement(local.file, local.sidecars, 'C-000001', SALT).uses.map((u) => u.jobId)).toEqual(['job-A']);
    expect(subjectStatement(local.file, local.sidecars, 'C-099999', SALT).uses).toEqual([]);
    // The raw id never appears in the ledger or a sidecar.
    expect(fs.readFileSync(local.file, 'utf8')).not.toContain('C-035000');
  });

  it('reports consent withdrawal for a listed customer', () => {
    const s = subjectStatement(local.file, local.sidecars, 'C-031000', SALT);
    expect(s.consentWithdrawn?.effectiveFrom).toBe('2026-04-01T00:00:00.000Z');
    expect(s.uses.map((u) => u.jobId)).toEqual(['job-A', 'job-B']);
  });

  it('never trusts a sidecar that no longer matches the ledger', () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-sc-tamper-'));
    for (const f of fs.readdirSync(local.sidecars)) fs.copyFileSync(path.join(local.sidecars, f), path.join(copy, f));
    // Remove one customer's line from job A's sidecar, as someone hiding a use would.
    const target = hashCustomerId('C-000123', SALT);
    const fileA = path.join(copy, 'job-A.ids');
    fs.writeFileSync(
      fileA,
      fs
        .readFileSync(fileA, 'ascii')
        .split('\n')
        .filter((l) => l !== target)
        .join('\n'),
    );
    const s = subjectStatement(local.file, copy, 'C-000123', SALT);
    expect(s.uses).toEqual([]);
    expect(s.problems.map((p) => p.code)).toEqual(['SIDECAR_TAMPERED']);
    fs.rmSync(path.join(copy, 'job-B.ids'));
    expect(subjectStatement(local.file, copy, 'C-035000', SALT).problems.map((p) => p.code)).toEqual(['SIDECAR_TAMPERED', 'SIDECAR_MISSING']);
  });

  it('uses the recomputed ε when it is higher than what was recorded', () => {
    const s = subjectStatement(local.file, local.sidecars, 'C-000001', SALT, { epsilonOf: (events) => 0.5 * events.length });
    expect(s.uses[0].epsilon).toBe(1.5);
  });
});

describe('subjectStatement for a job without differential privacy', () => {
  it('says the record took part in unbounded releases (ε = ∞, never 0), counting its rounds', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-subject-nodp-'));
    const sidecars = path.join(dir, 'sidecars');
    const file = path.join(dir, 'bank.jsonl');
    const w = LedgerWriter.open(file, partner, { sync: false });
    w.append('ledger.genesis', {
      ledgerId: 'bank-node',
      role: 'partner',
      owner: { name: 'bank', keyId: partner.keyId, signPublicKey: toBase64(partner.signPublicKey) },
    });
    const sc = writeIdSidecar(sidecars, 'job-plain', ids('C', 100), SALT);
    w.append('partner.acceptance', { jobId: 'job-plain', partner: partner.keyId, manifestHash: h('m'), policy: { maxEpsilon: 3, maxDelta: 1e-5 } });
    w.append('consent.usage', { jobId: 'job-plain', partner: partner.keyId, rowsUsed: 100, rowsExcludedNoConsent: 0, sidecar: sc });
    for (const round of [1, 2])
      w.append('partner.participation', {
        jobId: 'job-plain',
        partner: partner.keyId,
        round,
        ciphertextHashes: [h(`ct-${round}`)],
        globalModelHash: h(`model-${round}`),
      });
    w.close();
    const [use] = subjectStatement(file, sidecars, 'C-000003', SALT).uses;
    expect(use).toMatchObject({ jobId: 'job-plain', private: false, epsilon: Number.POSITIVE_INFINITY, delta: null, rounds: 2, modelHash: h('model-2') });
    expect(JSON.parse(JSON.stringify(use)).epsilon).toBeNull();
  });
});
