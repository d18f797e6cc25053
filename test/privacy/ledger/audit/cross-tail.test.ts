/**
 * The tail of a job ledger against the partners' own ledgers (src/privacy/ledger/audit/cross-tail.ts),
 * and how the audit names a job without differential privacy.
 */
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateIdentity, keyId } from '../../../../src/crypto/identity.ts';
import { composedEpsilon } from '../../../../src/privacy/accountant.ts';
import { auditLedgers, formatAuditSummary } from '../../../../src/privacy/ledger/audit.ts';
import { LEDGER_SCHEMA_VERSION } from '../../../../src/privacy/ledger/entries.ts';
import { headPath, signHead } from '../../../../src/privacy/ledger/head.ts';
import { attestPayload, entryHash, signerFromSecretKey, toBase64 } from '../../../../src/privacy/ledger/signing.ts';
import { LedgerWriter } from '../../../../src/privacy/ledger/writer.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-tail-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const ids = Object.fromEntries(['owner', 'coordinator', 'bank', 'telco'].map((n) => [n, generateIdentity(n)]));
const signer = (n: string) => signerFromSecretKey(ids[n].signSecretKey);
const party = (n: string) => ({ name: n, keyId: keyId(ids[n].signPublicKey), signPublicKey: toBase64(ids[n].signPublicKey) });
const h = (s: string) => Buffer.from(s.padEnd(32, '.')).toString('hex').slice(0, 64).padEnd(64, '0');
const PARTNERS = ['bank', 'telco'];
let n = 0;

/** A completed 1-round job (`dp`: with DP-SGD or without), both partners' ledgers, and their witnesses of the final head. */
function job(o: { dp: boolean }) {
  const d = path.join(dir, `job-${n++}`);
  fs.mkdirSync(d);
  const jobId = 'tail-job';
  const cw = LedgerWriter.open(path.join(d, 'job.jsonl'), signer('coordinator'), { sync: false });
  const locals = Object.fromEntries(PARTNERS.map((p) => [p, LedgerWriter.open(path.join(d, `${p}.jsonl`), signer(p), { sync: false })]));
  for (const p of PARTNERS) locals[p].append('ledger.genesis', { ledgerId: p, role: 'partner', owner: party(p) });
  const manifest = cw.append(
    'job.manifest',
    {
      jobId,
      owner: party('owner'),
      coordinator: party('coordinator'),
      partners: PARTNERS.map(party),
      purpose: 'churn',
      columns: ['a'],
      rounds: 1,
      quorum: 2,
      dp: o.dp ? { targetEpsilon: 2, delta: 1e-5, clipNorm: 1, noiseMultiplier: 1.1 } : null,
    },
    { signer: signer('owner') },
  );
  for (const p of PARTNERS) {
    const acceptance = { jobId, partner: party(p).keyId, manifestHash: entryHash(manifest), policy: { maxEpsilon: 3, maxDelta: 1e-5 } };
    locals[p].append('partner.acceptance', acceptance);
    cw.append('partner.acceptance', attestPayload(acceptance, signer(p)));
  }
  const model = h('model-1');
  const dpRec = (p: string) => ({
    partner: party(p).keyId,
    samplingRate: 0.02,
    noiseMultiplier: 1.1,
    clipNorm: 1,
    steps: 50,
    delta: 1e-5,
    epsilonSpent: composedEpsilon([{ samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50 }], 1e-5),
    epsilonCumulative: composedEpsilon([{ samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50 }], 1e-5),
    ciphertextHashes: [h(`ct-${p}`)],
  });
  for (const p of PARTNERS) {
    if (o.dp) {
      const { partner: _p, ...rec } = dpRec(p);
      locals[p].append('partner.round', { jobId, round: 1, ...rec, globalModelHash: model });
    } else {
      locals[p].append('partner.participation', { jobId, partner: party(p).keyId, round: 1, ciphertextHashes: [h(`ct-${p}`)], globalModelHash: model });
    }
  }
  const keys = PARTNERS.map((p) => party(p).keyId);
  cw.append('round', {
    jobId,
    round: 1,
    selected: keys,
    submitted: keys,
    dropped: [],
    partners: o.dp ? PARTNERS.map(dpRec) : [],
    aggregateHash: h('agg'),
    globalModelHash: model,
    modelHashes: keys.map((k) => ({ partner: k, hash: model })),
    modelHashesAgreed: true,
  });
  cw.append('evaluation', { jobId, round: 2, metrics: { auc: 0.8 } });
  cw.append('model.final', {
    jobId,
    modelHash: model,
    rounds: 1,
    partners: o.dp ? PARTNERS.map((p) => ({ partner: party(p).keyId, epsilon: dpRec(p).epsilonCumulative, delta: 1e-5 })) : [],
  });
  const head = signHead(
    { schemaVersion: LEDGER_SCHEMA_VERSION, seq: cw.lastSeq, hash: cw.lastHash, ts: new Date().toISOString(), author: party('coordinator').keyId },
    signer('coordinator'),
  );
  for (const p of PARTNERS) {
    locals[p].append('model.final', {
      jobId,
      modelHash: model,
      rounds: 1,
      partners: o.dp ? [{ partner: party(p).keyId, epsilon: dpRec(p).epsilonCumulative, delta: 1e-5 }] : [],
    });
    locals[p].append('partner.witness', { jobId, partner: party(p).keyId, state: 'completed', coordinatorHead: head });
  }
  cw.close();
  for (const p of PARTNERS) locals[p].close();
  return { coordinator: path.join(d, 'job.jsonl'), partners: PARTNERS.map((p) => path.join(d, `${p}.jsonl`)), jobId };
}
const audit = (coordinator: string, partners: string[], extra: Record<string, unknown> = {}) =>
  auditLedgers({ coordinator, partners, epsilonOf: composedEpsilon, ...extra });
/** The coordinator rewriting its own ledger: it drops the last `cut` entries and the head pointer, then (given `halt`) appends a signed job.halt. */
function rewriteTail(j: ReturnType<typeof job>, cut: number, halt?: string) {
  const lines = fs.readFileSync(j.coordinator, 'utf8').split('\n').filter(Boolean);
  fs.writeFileSync(
    j.coordinator,
    lines
      .slice(0, -cut)
      .map((l) => `${l}\n`)
      .join(''),
  );
  fs.rmSync(headPath(j.coordinator));
  if (halt === undefined) return;
  const w = LedgerWriter.open(j.coordinator, signer('coordinator'), { sync: false });
  w.append('job.halt', { jobId: j.jobId, reason: halt, afterRound: 1 });
  w.close();
}
const errors = (r: ReturnType<typeof audit>) => r.findings.filter((f) => f.severity === 'error').map((f) => f.code);

describe('the tail of the job ledger against the partners', () => {
  it('passes a genuine job with both partners witnessing the final head', () => {
    const j = job({ dp: true });
    const r = audit(j.coordinator, j.partners);
    expect(r.findings.map((f) => `${f.severity}:${f.code}:${f.message}`)).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('catches a coordinator that cuts its evaluation and final entries, appends its own halt and re-signs the head', () => {
    const j = job({ dp: true });
    rewriteTail(j, 2, 'halted by the coordinator');
    const r = audit(j.coordinator, j.partners);
    expect(r.ok).toBe(false);
    expect(errors(r)).toEqual(expect.arrayContaining(['CROSS_FINAL_MISSING_IN_COORDINATOR', 'CROSS_WITNESS_MISSING']));
    expect(r.findings.find((f) => f.code === 'CROSS_FINAL_MISSING_IN_COORDINATOR')!.message).toMatch(
      /but a job\.halt at seq \d+ \("halted by the coordinator"\)/,
    );
    // Without the partners' ledgers the rewrite is consistent: that is what the partners' witness is for.
    expect(audit(j.coordinator, []).ok).toBe(true);
  });

  it('catches a final entry replaced by a halt at the same seq (the witnessed entry is another one)', () => {
    const j = job({ dp: true });
    rewriteTail(j, 1, 'halted');
    expect(errors(audit(j.coordinator, j.partners))).toEqual(expect.arrayContaining(['CROSS_FINAL_MISSING_IN_COORDINATOR', 'CROSS_WITNESS_MISMATCH']));
  });

  it('catches a tail cut without anything appended (the witnessed seq is gone) and a missing head pointer is an error', () => {
    const j = job({ dp: true });
    rewriteTail(j, 1);
    const r = audit(j.coordinator, j.partners);
    expect(errors(r)).toEqual(expect.arrayContaining(['HEAD_MISSING', 'CROSS_WITNESS_MISSING', 'CROSS_FINAL_MISSING_IN_COORDINATOR']));
  });

  it("refuses a witness that is not the coordinator's own signed statement", () => {
    const j = job({ dp: true });
    const w = LedgerWriter.open(j.partners[0], signer('bank'), { sync: false });
    const forged = signHead(
      { schemaVersion: LEDGER_SCHEMA_VERSION, seq: 0, hash: h('x'), ts: new Date().toISOString(), author: party('coordinator').keyId },
      signer('bank'),
    );
    w.append('partner.witness', { jobId: j.jobId, partner: party('bank').keyId, state: 'completed', coordinatorHead: forged });
    w.close();
    expect(errors(audit(j.coordinator, j.partners))).toContain('WITNESS_NOT_SIGNED');
  });

  it('anchors the ledger to trusted owner and coordinator keys', () => {
    const j = job({ dp: true });
    const other = keyId(generateIdentity('other').signPublicKey);
    expect(audit(j.coordinator, j.partners, { trustedOwnerKeys: [party('owner').keyId], trustedCoordinatorKeys: [party('coordinator').keyId] }).ok).toBe(true);
    expect(errors(audit(j.coordinator, j.partners, { trustedOwnerKeys: [other] }))).toContain('UNTRUSTED_OWNER');
    const r = audit(j.coordinator, j.partners, { trustedCoordinatorKeys: [other] });
    expect(errors(r)).toContain('UNTRUSTED_COORDINATOR');
    expect(r.findings.find((f) => f.code === 'UNTRUSTED_COORDINATOR')!.message).toMatch(/coordinator .* not among the trusted coordinator keys/);
  });
});

describe('a job without differential privacy', () => {
  it('is shown as not differentially private (ε = ∞), never ε = 0, with the rounds each partner took part in', () => {
    const j = job({ dp: false });
    const r = audit(j.coordinator, j.partners);
    expect(r.ok).toBe(true);
    for (const p of r.partners) {
      expect(p.private).toBe(false);
      expect(p.epsilon).toBe(Number.POSITIVE_INFINITY);
      expect(p.rounds).toBe(1);
      expect(p.budgetLeft).toBeNull();
    }
    expect(JSON.parse(JSON.stringify(r)).partners[0].epsilon).toBeNull();
    const text = formatAuditSummary(r);
    expect(text).toMatch(/not differentially private \(ε = ∞\)/);
    expect(
      text
        .split('\n')
        .filter((l) => /^(bank|telco) /.test(l))
        .every((l) => l.includes('∞ (not DP)') && !/\s0\.0+\s/.test(l)),
    ).toBe(true);
  });

  it("flags a partner round the coordinator has no entry for, and a submission missing from the partner's ledger", () => {
    const j = job({ dp: false });
    const w = LedgerWriter.open(j.partners[0], signer('bank'), { sync: false });
    w.append('partner.participation', { jobId: j.jobId, partner: party('bank').keyId, round: 7, ciphertextHashes: [] });
    w.close();
    const r = audit(j.coordinator, j.partners);
    expect(r.findings.find((f) => f.code === 'CROSS_ROUND_MISSING_IN_COORDINATOR')?.message).toMatch(/partner\.participation for round 7/);
  });
});
