import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { composedEpsilon } from '../../../../src/privacy/accountant.ts';
import {
  attestPayload,
  auditLedgers,
  entryHash,
  LedgerWriter,
  signerFromSecretKey,
  toBase64,
  type AttemptReleases,
  type LedgerSigner,
} from '../../../../src/privacy/ledger/index.ts';

/**
 * Ledger version 3: every labelled release of every attempt is on record — failed attempts and the
 * evaluation round included — and the audit recomputes each partner's ε from all of them, in the
 * coordinator's ledger and in the partner's own.
 */
const h = (s: string) => createHash('sha256').update(s).digest('hex');
const key = (name: string) => ({ ...signerFromSecretKey(nacl.sign.keyPair.fromSeed(createHash('sha256').update(`rel:${name}`).digest()).secretKey), name });
type Key = LedgerSigner & { signPublicKey: Uint8Array; name: string };
const party = (k: Key) => ({ name: k.name, keyId: k.keyId, signPublicKey: toBase64(k.signPublicKey) });
const owner = key('owner');
const coord = key('coordinator');
const partners = [key('bank'), key('telco')];
const DELTA = 1e-5;
const weight = { label: 'weight', samplingRate: 1, noiseMultiplier: 80, steps: 1, sensitivity: 1 };
const update = { label: 'update', samplingRate: 0.02, noiseMultiplier: 1.3, steps: 50, sensitivity: 1 };
const evaluation = { label: 'evaluation', samplingRate: 1, noiseMultiplier: 20, steps: 1, sensitivity: 2.2 };

interface Edit {
  /** Edits what the coordinator records for a partner's attempt (return null to leave it out). */
  coord?: (partner: number, round: number, attempt: number, r: AttemptReleases) => AttemptReleases | null;
  /** Edits what the partner records in its own ledger (null: not written). */
  local?: (partner: number, round: number, attempt: number, r: AttemptReleases) => AttemptReleases | null;
}

/** Round 1 fails its quorum once (both partners charged), closes on attempt 1; round 2 evaluates; the job completes. */
function build(edit: Edit = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-releases-'));
  const cw = LedgerWriter.open(path.join(dir, 'job.jsonl'), coord, { sync: false });
  const locals = partners.map((p) => LedgerWriter.open(path.join(dir, `${p.name}.jsonl`), p, { sync: false }));
  partners.forEach((p, i) => locals[i].append('ledger.genesis', { ledgerId: p.name, role: 'partner', owner: party(p) }));
  const jobId = 'rel-job';
  const m = cw.append(
    'job.manifest',
    {
      jobId,
      owner: party(owner),
      coordinator: party(coord),
      partners: partners.map(party),
      purpose: 'churn',
      columns: ['a'],
      rounds: 1,
      partnersPerRound: 2,
      quorum: 2,
      dp: { targetEpsilon: 3, delta: DELTA, clipNorm: 1, noiseMultiplier: 1.3 },
    },
    { signer: owner },
  );
  partners.forEach((p, i) => {
    const acceptance = { jobId, partner: p.keyId, manifestHash: entryHash(m), policy: { maxEpsilon: 3, maxDelta: DELTA } };
    locals[i].append('partner.acceptance', acceptance);
    cw.append('partner.acceptance', attestPayload(acceptance, p));
  });
  const history = partners.map(() => [] as (typeof update)[]);
  const charge = (i: number, round: number, attempt: number, kind: string, releases: (typeof update)[]) => {
    const before = history[i].length ? composedEpsilon(history[i], DELTA) : 0;
    history[i].push(...releases);
    const after = composedEpsilon(history[i], DELTA);
    const r: AttemptReleases = {
      partner: partners[i].keyId,
      attempt,
      releases,
      delta: DELTA,
      epsilonSpent: after - before,
      epsilonCumulative: after,
      ciphertextHashes: [h(`${i}-${round}-${attempt}`)],
    };
    const local = edit.local ? edit.local(i, round, attempt, structuredClone(r)) : r;
    if (local) locals[i].append('partner.release', { jobId, round, kind, ...local });
    return edit.coord ? edit.coord(i, round, attempt, structuredClone(r)) : r;
  };
  const ids = partners.map((p) => p.keyId);
  const failed = [0, 1].map((i) => charge(i, 1, 0, 'train', [weight, update])).filter((r) => r !== null);
  cw.append('attempt.failed', {
    jobId,
    round: 1,
    attempt: 0,
    kind: 'train',
    reason: '2 submission(s) by the deadline, quorum is 3',
    selected: ids,
    submitted: ids,
    partners: failed,
  });
  const closed = [0, 1].map((i) => charge(i, 1, 1, 'train', [update])).filter((r) => r !== null);
  const model = h('model');
  for (const r of closed) {
    const i = ids.indexOf(r.partner);
    const { partner: _p, ...rest } = r;
    locals[i].append('partner.round', {
      jobId,
      round: 1,
      samplingRate: update.samplingRate,
      noiseMultiplier: update.noiseMultiplier,
      clipNorm: 1,
      steps: update.steps,
      ...rest,
      globalModelHash: model,
    });
  }
  cw.append('round', {
    jobId,
    round: 1,
    attempt: 1,
    selected: ids,
    submitted: ids,
    dropped: [],
    partners: closed.map((r) => ({
      partner: r.partner,
      samplingRate: update.samplingRate,
      noiseMultiplier: update.noiseMultiplier,
      clipNorm: 1,
      steps: update.steps,
      delta: DELTA,
      epsilonSpent: r.epsilonSpent,
      epsilonCumulative: r.epsilonCumulative,
      ciphertextHashes: r.ciphertextHashes,
      attempt: r.attempt,
      releases: r.releases,
    })),
    aggregateHash: h('agg'),
    globalModelHash: model,
    modelHashes: ids.map((k) => ({ partner: k, hash: model })),
    modelHashesAgreed: true,
  });
  const evals = [0, 1].map((i) => charge(i, 2, 0, 'evaluate', [evaluation])).filter((r) => r !== null);
  cw.append('evaluation', { jobId, round: 2, attempt: 0, metrics: { partners: 2 }, partners: evals });
  const finals = partners.map((p, i) => ({ partner: p.keyId, epsilon: composedEpsilon(history[i], DELTA), delta: DELTA }));
  cw.append('model.final', { jobId, modelHash: model, rounds: 1, partners: finals });
  partners.forEach((p, i) => locals[i].append('model.final', { jobId, modelHash: model, rounds: 1, partners: [finals[i]] }));
  cw.close();
  locals.forEach((l) => l.close());
  return {
    coordinator: path.join(dir, 'job.jsonl'),
    partnerLedgers: partners.map((p) => path.join(dir, `${p.name}.jsonl`)),
    epsilon: history.map((e) => composedEpsilon(e, DELTA)),
  };
}

const audit = (f: ReturnType<typeof build>, withPartners = true) =>
  auditLedgers({ coordinator: f.coordinator, partners: withPartners ? f.partnerLedgers : [], epsilonOf: composedEpsilon });
const codes = (r: ReturnType<typeof audit>) => r.findings.map((x) => `${x.severity}:${x.code}`);

describe('audit of every labelled release (ledger version 3)', () => {
  it('recomputes each partner’s ε from every attempt, failed ones and the evaluation included, in both ledgers', () => {
    const f = build();
    const r = audit(f);
    expect(codes(r)).toEqual([]);
    expect(r.ok).toBe(true);
    for (const [i, p] of partners.entries()) {
      const s = r.partners.find((x) => x.partner === p.keyId)!;
      expect(s.epsilonRecomputed).toBeCloseTo(f.epsilon[i], 12);
      // Four releases: weight + update (failed attempt), update, evaluation — more than the round alone.
      expect(s.epsilon).toBeGreaterThan(composedEpsilon([update], DELTA));
    }
    expect(audit(f, false).ok).toBe(true);
  });

  it('catches understated ε in a failed attempt and in the evaluation round', () => {
    const low = (r: AttemptReleases) => ({ ...r, epsilonCumulative: r.epsilonCumulative / 2 });
    const failed = audit(build({ coord: (i, round, attempt, r) => (i === 0 && round === 1 && attempt === 0 ? low(r) : r) }), false);
    expect(codes(failed)).toContain('error:EPSILON_UNDERSTATED');
    const evaluated = audit(build({ coord: (i, round, _a, r) => (i === 1 && round === 2 ? low(r) : r) }), false);
    expect(evaluated.findings.find((x) => x.code === 'EPSILON_UNDERSTATED')?.message).toMatch(/evaluation round 2: telco's cumulative ε/);
  });

  it("a coordinator that leaves a failed attempt's charges out is contradicted by the partner's own ledger, whose ε the summary reports", () => {
    const f = build({ coord: (i, round, attempt, r) => (i === 0 && round === 1 && attempt === 0 ? null : r) });
    const r = audit(f);
    expect(codes(r)).toContain('warning:CROSS_RELEASE_NOT_RECORDED');
    const bank = r.partners.find((x) => x.partner === partners[0].keyId)!;
    expect(bank.epsilon).toBeGreaterThanOrEqual(f.epsilon[0] * (1 - 1e-12));
    // And the recorded cumulative ε of later attempts exceeds what the coordinator's own records give: not understated.
    expect(codes(r)).not.toContain('error:EPSILON_UNDERSTATED');
  });

  it('flags a release the coordinator records that the partner never wrote, and releases that differ between the ledgers', () => {
    const missing = audit(build({ local: (i, round, _a, r) => (i === 1 && round === 2 ? null : r) }));
    expect(missing.findings.find((x) => x.code === 'CROSS_RELEASE_MISSING_IN_PARTNER')?.message).toMatch(
      /round 2 attempt 0: the coordinator records telco's releases/,
    );
    const differ = audit(
      build({
        coord: (i, round, attempt, r) =>
          i === 0 && round === 1 && attempt === 0 ? { ...r, releases: [r.releases[0], { ...r.releases[1], noiseMultiplier: 2.6 }] } : r,
      }),
    );
    expect(codes(differ)).toContain('error:CROSS_DP_PARAMS_MISMATCH');
  });

  it("compares the manifest's σ and C with the update release a round record lists (other releases carry their own)", () => {
    const f = build({
      coord: (_i, round, attempt, r) => (round === 1 && attempt === 1 ? { ...r, releases: [{ ...update, noiseMultiplier: 2.6, sensitivity: 2 }] } : r),
    });
    const found = audit(f, false).findings.filter((x) => x.code === 'NOISE_MULTIPLIER_MISMATCH' || x.code === 'CLIP_NORM_MISMATCH');
    expect(found.map((x) => x.message)).toEqual([
      'round 1: bank clipped at C=2, manifest says 1',
      'round 1: bank used σ=2.6, manifest says 1.3',
      'round 1: telco clipped at C=2, manifest says 1',
      'round 1: telco used σ=2.6, manifest says 1.3',
    ]);
    expect(codes(audit(build(), false))).toEqual([]);
  });

  it('refuses the releases of one attempt recorded twice for a partner', () => {
    const f = build({ coord: (i, round, attempt, r) => (round === 2 ? { ...r, partner: partners[0].keyId, attempt } : r) });
    expect(codes(audit(f, false))).toContain('error:DUPLICATE_PARTICIPATION');
  });
});
