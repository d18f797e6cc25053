import { describe, it, expect, beforeAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { createHash, createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { RdpAccountant } from '../../../src/privacy/accountant.ts';
import type { DpEvent } from '../../../src/privacy/dp-event.ts';
import { createRng } from '../../../src/util/rng.ts';
import {
  LedgerWriter,
  readLedger,
  parseLedgerBytes,
  auditLedgers,
  formatAuditSummary,
  summarizePrivacy,
  verifyLedger,
  signerFromSecretKey,
  attestPayload,
  entryHash,
  signEntry,
  canonicalJson,
  toBase64,
  headPath,
  readHead,
  type LedgerEntry,
  type LedgerSigner,
  type PolicyLimits,
  type AuditResult,
  type ReadLedgerResult,
  type UnsignedEntry,
} from '../../../src/privacy/ledger/index.ts';
import { signHead } from '../../../src/privacy/ledger/head.ts';

// ---------------------------------------------------------------------------------------------
// Fixture: a realistic three-partner job (manifest, acceptances, key ceremony, consent counts,
// three rounds with one drop, evaluation, final model) plus each partner's local ledger.
// ---------------------------------------------------------------------------------------------

type Who = 'owner' | 'coordinator' | 'bank' | 'telco' | 'insurer' | 'outsider';
type Key = LedgerSigner & { signPublicKey: Uint8Array; name: Who };
// The ledger accepts any signer; these sign with node:crypto's Ed25519 (deterministic, so the
// signatures are byte-identical to tweetnacl's) because fixtures sign hundreds of entries.
// Verification in the code under test is still tweetnacl.
const key = (name: Who): Key => {
  const seed = createHash('sha256').update(`ledger-test-key:${name}`).digest();
  const nacled = signerFromSecretKey(nacl.sign.keyPair.fromSeed(seed).secretKey);
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const priv = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  return { keyId: nacled.keyId, signPublicKey: nacled.signPublicKey, sign: (bytes) => new Uint8Array(cryptoSign(null, bytes, priv)), name };
};
const K = Object.fromEntries((['owner', 'coordinator', 'bank', 'telco', 'insurer', 'outsider'] as Who[]).map((w) => [w, key(w)])) as Record<Who, Key>;
const byKeyId = new Map(Object.values(K).map((k) => [k.keyId, k]));
const party = (k: Key) => ({ name: k.name, keyId: k.keyId, signPublicKey: toBase64(k.signPublicKey) });
const PARTNERS = ['bank', 'telco', 'insurer'] as const;
type PartnerName = (typeof PARTNERS)[number];
const h = (s: string): string => createHash('sha256').update(s).digest('hex');

// ε through the project's RDP accountant (memoised: the tamper loops audit hundreds of copies).
const epsMemo = new Map<string, number>();
const epsilonOf = (events: DpEvent[], delta: number): number => {
  const k = JSON.stringify([events, delta]);
  let v = epsMemo.get(k);
  if (v === undefined) {
    const acc = new RdpAccountant();
    for (const e of events) acc.step(e);
    v = acc.getEpsilon(delta).epsilon;
    epsMemo.set(k, v);
  }
  return v;
};

const DELTA = 1e-5;
const Q: Record<PartnerName, number> = { bank: 0.02, telco: 0.01, insurer: 0.03 };
const ROWS: Record<PartnerName, [number, number]> = { bank: [45_000, 1_312], telco: [30_000, 410], insurer: [12_000, 95] };
const POLICY: Record<PartnerName, PolicyLimits> = {
  bank: {
    maxEpsilon: 3,
    maxDelta: 1e-5,
    remainingLifetimeEpsilon: 8,
    minNoiseMultiplier: 0.8,
    allowedPurposes: ['churn'],
    allowedColumns: ['tenure', 'balance', 'age', 'churned'],
  },
  telco: { maxEpsilon: 2.5, maxDelta: 1e-5, maxRounds: 5 },
  insurer: { maxEpsilon: 4, maxDelta: 1e-4 },
};
// Round plan: who is selected, who submits (insurer drops out of round 2 before training).
const PLAN: { selected: PartnerName[]; submitted: PartnerName[] }[] = [
  { selected: ['bank', 'telco', 'insurer'], submitted: ['bank', 'telco', 'insurer'] },
  { selected: ['bank', 'telco', 'insurer'], submitted: ['bank', 'telco'] },
  { selected: ['bank', 'telco', 'insurer'], submitted: ['bank', 'telco', 'insurer'] },
];

interface RoundRec {
  partner: string;
  samplingRate: number;
  noiseMultiplier: number;
  clipNorm: number;
  steps: number;
  delta: number;
  epsilonSpent: number;
  epsilonCumulative: number;
  ciphertextHashes: string[];
}

interface FixtureOptions {
  /** Edit what the coordinator records for a partner's round. */
  coordRound?: (p: PartnerName, round: number, rec: RoundRec) => RoundRec;
  /** Edit what a partner records in its own ledger. */
  localRound?: (p: PartnerName, round: number, rec: RoundRec) => RoundRec;
  policy?: Partial<Record<PartnerName, PolicyLimits>>;
  /** Stop before model.final (a running job). */
  running?: boolean;
  /** Extra coordinator entries after round 2. */
  afterRound2?: (w: LedgerWriter) => void;
}

interface Fixture {
  dir: string;
  coordinator: string;
  partners: Record<PartnerName, string>;
}

let counter = 0;
function buildJob(opts: FixtureOptions = {}): Fixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-ledger-'));
  let t = Date.parse('2026-03-02T09:00:00.000Z');
  const now = (): Date => new Date((t += 1000));
  const coordinator = path.join(dir, `job-${++counter}.jsonl`);
  // sync: false — fixtures need no durability; crash safety is tested in writer.test.ts.
  const cw = LedgerWriter.open(coordinator, K.coordinator, { now, sync: false });
  const locals = Object.fromEntries(PARTNERS.map((p) => [p, LedgerWriter.open(path.join(dir, `${p}.jsonl`), K[p], { now, sync: false })])) as Record<
    PartnerName,
    LedgerWriter
  >;
  for (const p of PARTNERS) locals[p].append('ledger.genesis', { ledgerId: `${p}-node`, role: 'partner', owner: party(K[p]) });

  const jobId = 'churn-2026-q1';
  const manifest = cw.append(
    'job.manifest',
    {
      jobId,
      owner: party(K.owner),
      coordinator: party(K.coordinator),
      partners: PARTNERS.map((p) => party(K[p])),
      purpose: 'churn',
      columns: ['tenure', 'balance', 'age', 'churned'],
      rounds: 3,
      partnersPerRound: 3,
      quorum: 2,
      dp: { targetEpsilon: 2, delta: DELTA, clipNorm: 1, noiseMultiplier: 1.1 },
    },
    { signer: K.owner },
  );
  const manifestHash = entryHash(manifest);
  for (const p of PARTNERS) {
    const acceptance = { jobId, partner: K[p].keyId, manifestHash, policy: opts.policy?.[p] ?? POLICY[p] };
    locals[p].append('partner.acceptance', acceptance);
    cw.append('partner.acceptance', attestPayload(acceptance, K[p]));
  }
  cw.append(
    'key.ceremony',
    {
      jobId,
      heParamsHash: h('ckks-8192-60-40-40-60'),
      publicKeyHash: h('pk'),
      sealedKeys: PARTNERS.map((p) => ({ partner: K[p].keyId, sealedKeyHash: h(`sealed-${p}`) })),
    },
    { signer: K.owner },
  );
  for (const p of PARTNERS) {
    const sidecar = { file: `${jobId}.ids`, sha256: h(`sidecar-${p}`), count: ROWS[p][0], scheme: 'hmac-sha256-128' as const };
    const usage = { jobId, partner: K[p].keyId, rowsUsed: ROWS[p][0], rowsExcludedNoConsent: ROWS[p][1], sidecar };
    locals[p].append('consent.usage', usage);
    cw.append('consent.usage', usage);
  }

  const acc = Object.fromEntries(PARTNERS.map((p) => [p, [] as DpEvent[]])) as Record<PartnerName, DpEvent[]>;
  PLAN.forEach((plan, i) => {
    const round = i + 1;
    const witness = { seq: cw.lastSeq, hash: cw.lastHash };
    const model = h(`global-model-r${round}`);
    const recs: RoundRec[] = [];
    for (const p of plan.submitted) {
      const before = acc[p].length ? epsilonOf(acc[p], DELTA) : 0;
      const event = { samplingRate: Q[p], noiseMultiplier: 1.1, steps: 50 };
      acc[p].push(event);
      const after = epsilonOf(acc[p], DELTA);
      const rec: RoundRec = {
        partner: K[p].keyId,
        ...event,
        clipNorm: 1,
        delta: DELTA,
        epsilonSpent: after - before,
        epsilonCumulative: after,
        ciphertextHashes: [0, 1].map((c) => h(`ct-${p}-r${round}-${c}`)),
      };
      recs.push(opts.coordRound ? opts.coordRound(p, round, { ...rec }) : rec);
      const local = opts.localRound ? opts.localRound(p, round, { ...rec }) : rec;
      const { partner: _p, ...localRec } = local;
      locals[p].append('partner.round', { jobId, round, ...localRec, rowsUsed: ROWS[p][0], globalModelHash: model, coordinatorHead: witness });
    }
    cw.append('round', {
      jobId,
      round,
      selected: plan.selected.map((p) => K[p].keyId),
      submitted: plan.submitted.map((p) => K[p].keyId),
      dropped: plan.selected.filter((p) => !plan.submitted.includes(p)).map((p) => K[p].keyId),
      partners: recs,
      aggregateHash: h(`aggregate-r${round}`),
      globalModelHash: model,
      modelHashes: plan.submitted.map((p) => ({ partner: K[p].keyId, hash: model })),
      modelHashesAgreed: true,
    });
    if (round === 2 && opts.afterRound2) opts.afterRound2(cw);
  });
  if (!opts.running) {
    cw.append('evaluation', { jobId, round: 3, metrics: { auc: 0.781, logLoss: 0.412, brier: 0.131, liftTopDecile: 2.9 } });
    const final = h('global-model-r3');
    cw.append('model.final', {
      jobId,
      modelHash: final,
      rounds: 3,
      partners: PARTNERS.map((p) => ({ partner: K[p].keyId, epsilon: epsilonOf(acc[p], DELTA), delta: DELTA })),
    });
    for (const p of PARTNERS) {
      locals[p].append('model.final', {
        jobId,
        modelHash: final,
        rounds: 3,
        partners: [{ partner: K[p].keyId, epsilon: epsilonOf(acc[p], DELTA), delta: DELTA }],
      });
    }
  }
  cw.close();
  for (const p of PARTNERS) locals[p].close();
  return { dir, coordinator, partners: Object.fromEntries(PARTNERS.map((p) => [p, path.join(dir, `${p}.jsonl`)])) as Record<PartnerName, string> };
}

// ---------------------------------------------------------------------------------------------
// Helpers to tamper with a ledger in memory.
// ---------------------------------------------------------------------------------------------

const lines = (file: string): string[] => fs.readFileSync(file, 'utf8').split('\n').slice(0, -1);
const fromLines = (ls: string[], file: string, withHead = true): ReadLedgerResult => {
  const r = parseLedgerBytes(Buffer.from(ls.map((l) => l + '\n').join(''), 'utf8'), file);
  return { ...r, head: withHead ? readHead(file).head : null };
};
const errorsAt = (res: AuditResult, seq: number): string[] => res.findings.filter((f) => f.severity === 'error' && f.seq === seq).map((f) => f.code);
const codes = (res: AuditResult): string[] => res.findings.map((f) => f.code);

/** Re-signs entry `seq` (after `edit`) and, if `rechain`, every later entry and the head. */
function rewrite(file: string, seq: number, edit: (e: LedgerEntry) => LedgerEntry, signer: LedgerSigner | null, rechain = false): ReadLedgerResult {
  const entries = lines(file).map((l) => JSON.parse(l) as LedgerEntry);
  const out: LedgerEntry[] = [];
  for (let i = 0; i < entries.length; i++) {
    let e = entries[i];
    if (i === seq) {
      e = edit(structuredClone(e));
      if (signer) {
        const { sig: _s, ...u } = { ...e, author: signer.keyId };
        e = signEntry(u as UnsignedEntry, signer);
      }
    } else if (i > seq && rechain) {
      const { sig: _s, ...u } = { ...e, prev: entryHash(out[i - 1]) };
      e = signEntry(u as UnsignedEntry, byKeyId.get(e.author)!);
    }
    out.push(e);
  }
  const r = fromLines(
    out.map((e) => canonicalJson(e)),
    file,
  );
  if (rechain) {
    const last = out[out.length - 1];
    r.head = signHead({ schemaVersion: 1, seq: last.seq, hash: entryHash(last), ts: last.ts, author: K.coordinator.keyId }, K.coordinator);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------

let clean: Fixture;
beforeAll(() => {
  clean = buildJob();
});

describe('clean job ledger', () => {
  it('test signers produce the same signatures as tweetnacl', () => {
    const msg = new TextEncoder().encode('same bytes');
    const seed = createHash('sha256').update('ledger-test-key:bank').digest();
    expect(Buffer.from(K.bank.sign(msg))).toEqual(Buffer.from(nacl.sign.detached(msg, nacl.sign.keyPair.fromSeed(seed).secretKey)));
  });

  it('passes with ok=true, no findings, and a per-partner summary', () => {
    const res = auditLedgers({ coordinator: clean.coordinator, partners: PARTNERS.map((p) => clean.partners[p]), epsilonOf });
    expect(res.findings).toEqual([]);
    expect(res.ok).toBe(true);
    expect(res.jobId).toBe('churn-2026-q1');
    const bank = res.partners.find((p) => p.name === 'bank')!;
    const insurer = res.partners.find((p) => p.name === 'insurer')!;
    expect(bank.rounds).toBe(3);
    expect(insurer.rounds).toBe(2); // dropped round 2 before training
    expect(bank.rowsUsed).toBe(45_000);
    expect(bank.rowsWithoutConsent).toBe(1_312);
    const bankEps = epsilonOf(Array(3).fill({ samplingRate: 0.02, noiseMultiplier: 1.1, steps: 50 }), DELTA);
    expect(bank.epsilon).toBeCloseTo(bankEps, 12);
    expect(bank.epsilonRecomputed).toBeCloseTo(bankEps, 12);
    expect(bank.delta).toBe(DELTA);
    expect(bank.epsilonLimit).toBe(3);
    expect(bank.budgetLeft).toBeCloseTo(3 - bankEps, 12);
    expect(res.partners.every((p) => p.status === 'accepted' && p.localLedgerChecked)).toBe(true);
    // Sanity: the fixture is realistic, not trivially tiny or over budget.
    expect(bankEps).toBeGreaterThan(0.1);
    expect(bankEps).toBeLessThan(3);
  });

  it('formats a human table naming every partner and rounding ε up', () => {
    const res = auditLedgers({ coordinator: clean.coordinator, partners: PARTNERS.map((p) => clean.partners[p]), epsilonOf });
    const text = formatAuditSummary(res);
    expect(text).toMatch(/churn-2026-q1: OK \(0 error\(s\), 0 warning\(s\)\)/);
    for (const p of PARTNERS) expect(text).toContain(p);
    const bank = res.partners.find((p) => p.name === 'bank')!;
    const shown = Number(/bank\s+\S+\s+accepted\s+3\s+45000\s+1312\s+(\S+)/.exec(text)![1]);
    expect(shown).toBeGreaterThanOrEqual(bank.epsilon);
    expect(shown - bank.epsilon).toBeLessThan(1e-4);
  });

  it('summarizePrivacy reads the same per-partner figures without auditing', () => {
    const s = summarizePrivacy(clean.coordinator, { epsilonOf });
    expect(s.jobId).toBe('churn-2026-q1');
    expect(s.partners.map((p) => [p.name, p.rounds])).toEqual([
      ['bank', 3],
      ['telco', 3],
      ['insurer', 2],
    ]);
  });

  it('a running job (no final model) is a warning only with allowRunning', () => {
    const f = buildJob({ running: true });
    const strict = auditLedgers({ coordinator: f.coordinator, epsilonOf });
    expect(strict.ok).toBe(false);
    expect(codes(strict)).toContain('JOB_NOT_FINALIZED');
    const lenient = auditLedgers({ coordinator: f.coordinator, epsilonOf, allowRunning: true });
    expect(lenient.ok).toBe(true);
    expect(lenient.findings.map((x) => [x.code, x.severity])).toEqual([['JOB_NOT_FINALIZED', 'warning']]);
  });
});

describe('tampering is detected and names the entry', () => {
  it('flipping any single bit of any entry is caught at that entry', () => {
    const bytes = fs.readFileSync(clean.coordinator);
    const head = readHead(clean.coordinator).head;
    const starts: number[] = [0];
    for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a) starts.push(i + 1);
    const nEntries = starts.length - 1;
    const rng = createRng(20260302);
    let tried = 0;
    for (let seq = 0; seq < nEntries; seq++) {
      const from = starts[seq];
      const to = starts[seq + 1] - 1; // inclusive: the newline belongs to the entry
      // The first byte, the newline, and random positions in between (header fields and payload).
      const positions = new Set<number>([from, to, from + 12, from + 30]);
      while (positions.size < 14) positions.add(from + rng.int(to - from + 1));
      for (const pos of positions) {
        const mutated = Buffer.from(bytes);
        mutated[pos] ^= 1 << rng.int(8);
        const read = { ...parseLedgerBytes(mutated, clean.coordinator), head };
        const res = auditLedgers({ coordinator: read, epsilonOf });
        expect(res.ok, `flip at byte ${pos} (seq ${seq})`).toBe(false);
        expect(errorsAt(res, seq).length, `flip at byte ${pos} (seq ${seq}) not attributed: ${JSON.stringify(res.findings)}`).toBeGreaterThan(0);
        tried++;
      }
    }
    expect(nEntries).toBe(13);
    expect(tried).toBe(14 * nEntries);
  });

  it('deleting an entry in the middle', () => {
    const ls = lines(clean.coordinator);
    const k = 9; // a round entry
    expect(JSON.parse(ls[k]).type).toBe('round');
    const res = auditLedgers({ coordinator: fromLines([...ls.slice(0, k), ...ls.slice(k + 1)], clean.coordinator), epsilonOf });
    expect(res.ok).toBe(false);
    expect(errorsAt(res, k)).toContain('SEQ_GAP');
  });

  it('reordering two entries', () => {
    const ls = lines(clean.coordinator);
    const swapped = [...ls];
    [swapped[5], swapped[6]] = [swapped[6], swapped[5]];
    const res = auditLedgers({ coordinator: fromLines(swapped, clean.coordinator), epsilonOf });
    expect(res.ok).toBe(false);
    expect(errorsAt(res, 5)).toContain('SEQ_GAP');
    expect(errorsAt(res, 5)).toContain('CHAIN_BROKEN');
  });

  it('truncating mid-line reports the torn tail at the entry it cut', () => {
    const bytes = fs.readFileSync(clean.coordinator);
    const ls = lines(clean.coordinator);
    const cutAt = bytes.length - Math.floor(ls[ls.length - 1].length / 2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-trunc-'));
    const file = path.join(dir, 'job.jsonl');
    fs.writeFileSync(file, bytes.subarray(0, cutAt));
    fs.copyFileSync(headPath(clean.coordinator), headPath(file));
    const res = auditLedgers({ coordinator: file, epsilonOf });
    expect(res.ok).toBe(false);
    expect(errorsAt(res, ls.length - 1)).toContain('TRUNCATED_TAIL');
  });

  it('truncating at a line boundary: caught by the head pointer, by the missing final entry, and by partner witnesses', () => {
    const ls = lines(clean.coordinator);
    // (a) head pointer present: names the first missing seq.
    const cut = ls.slice(0, ls.length - 1);
    const withHead = auditLedgers({ coordinator: fromLines(cut, clean.coordinator, true), epsilonOf });
    expect(errorsAt(withHead, ls.length - 1)).toContain('TRUNCATED_AT_LINE_BOUNDARY');
    // (b) head pointer deleted too: the job ends without model.final / job.halt.
    const noHead = auditLedgers({ coordinator: fromLines(cut, clean.coordinator, false), epsilonOf });
    expect(noHead.ok).toBe(false);
    expect(errorsAt(noHead, ls.length - 1)).toContain('JOB_NOT_FINALIZED');
    // (c) cut back before round 3 with no head: partners' ledgers still hold round 3 and witnesses.
    const r3 = ls.findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === 3);
    const res = auditLedgers({ coordinator: fromLines(ls.slice(0, r3), clean.coordinator, false), partners: [clean.partners.bank], epsilonOf });
    expect(res.ok).toBe(false);
    const bankRound3 = lines(clean.partners.bank).findIndex((l) => JSON.parse(l).type === 'partner.round' && JSON.parse(l).payload.round === 3);
    const f = res.findings.find((x) => x.code === 'CROSS_ROUND_MISSING_IN_COORDINATOR');
    expect(f?.seq).toBe(bankRound3);
    expect(f?.ledger).toBe(clean.partners.bank);
  });

  it('a changed DP parameter re-signed by a non-partner key', () => {
    const k = lines(clean.coordinator).findIndex((l) => JSON.parse(l).type === 'round');
    const read = rewrite(
      clean.coordinator,
      k,
      (e) => {
        (e.payload as { partners: RoundRec[] }).partners[0].noiseMultiplier = 2.5;
        return e;
      },
      K.outsider,
      true,
    );
    const res = auditLedgers({ coordinator: read, epsilonOf });
    expect(res.ok).toBe(false);
    expect(errorsAt(res, k)).toContain('UNKNOWN_AUTHOR');
  });

  it('a changed DP parameter re-signed by nobody (old signature kept)', () => {
    const k = lines(clean.coordinator).findIndex((l) => JSON.parse(l).type === 'round');
    const read = rewrite(
      clean.coordinator,
      k,
      (e) => {
        (e.payload as { partners: RoundRec[] }).partners[1].samplingRate = 0.001;
        return e;
      },
      null,
    );
    const res = auditLedgers({ coordinator: read, epsilonOf });
    expect(res.ok).toBe(false);
    expect(errorsAt(res, k)).toContain('BAD_SIGNATURE');
    expect(errorsAt(res, k + 1)).toContain('CHAIN_BROKEN');
  });

  it('a changed DP parameter re-signed by the coordinator itself with the whole chain rebuilt is caught by the partner ledger', () => {
    const k = lines(clean.coordinator).findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === 2);
    const read = rewrite(
      clean.coordinator,
      k,
      (e) => {
        (e.payload as { partners: RoundRec[] }).partners[0].steps = 5; // bank: pretend fewer steps
        return e;
      },
      K.coordinator,
      true,
    );
    const alone = auditLedgers({ coordinator: read, epsilonOf });
    // The coordinator kept ε as recorded, which is now *more* than the doctored parameters give:
    // conservative, so the coordinator ledger alone looks consistent.
    expect(alone.ok).toBe(true);
    const res = auditLedgers({ coordinator: read, partners: [clean.partners.bank], epsilonOf });
    expect(res.ok).toBe(false);
    expect(errorsAt(res, k)).toContain('CROSS_DP_PARAMS_MISMATCH');
    expect(codes(res)).toContain('CROSS_WITNESS_MISMATCH');
  });

  it('understating ε (validly signed by the coordinator) is flagged at that round', () => {
    const f = buildJob({ coordRound: (p, round, rec) => (p === 'telco' && round === 2 ? { ...rec, epsilonCumulative: rec.epsilonCumulative * 0.8 } : rec) });
    const res = auditLedgers({ coordinator: f.coordinator, epsilonOf });
    const k = lines(f.coordinator).findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === 2);
    expect(res.ok).toBe(false);
    expect(errorsAt(res, k)).toContain('EPSILON_UNDERSTATED');
    expect(res.findings.filter((x) => x.code === 'EPSILON_UNDERSTATED')).toHaveLength(1);
    // The summary never reports less than the recomputed ε.
    const telco = res.partners.find((p) => p.name === 'telco')!;
    expect(telco.epsilon).toBeGreaterThanOrEqual(telco.epsilonRecomputed!);
  });

  it('understating ε spent per round is flagged even when the cumulative figure is right', () => {
    const f = buildJob({ coordRound: (p, round, rec) => (p === 'bank' && round === 3 ? { ...rec, epsilonSpent: rec.epsilonSpent / 3 } : rec) });
    const res = auditLedgers({ coordinator: f.coordinator, epsilonOf });
    const k = lines(f.coordinator).findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === 3);
    expect(errorsAt(res, k)).toContain('EPSILON_SPENT_UNDERSTATED');
  });

  it('an edited manifest (re-signed by an impostor owner) is caught by trusted keys and by partners', () => {
    const read = rewrite(
      clean.coordinator,
      0,
      (e) => {
        const p = e.payload as { owner: object };
        p.owner = party(K.outsider);
        return e;
      },
      K.outsider,
      true,
    );
    const trusted = auditLedgers({ coordinator: read, epsilonOf, trustedOwnerKeys: [K.owner.keyId] });
    expect(errorsAt(trusted, 0)).toContain('UNTRUSTED_OWNER');
    const crossed = auditLedgers({ coordinator: read, epsilonOf, partners: [clean.partners.telco] });
    expect(codes(crossed)).toContain('CROSS_MANIFEST_MISMATCH');
  });
});

describe('cross-checks between partner and coordinator ledgers', () => {
  it('finds a ciphertext-hash and ε mismatch in one round', () => {
    const f = buildJob({
      localRound: (p, round, rec) =>
        p === 'insurer' && round === 3
          ? {
              ...rec,
              ciphertextHashes: [h('other-ct'), rec.ciphertextHashes[1]],
              epsilonSpent: rec.epsilonSpent * 1.5,
              epsilonCumulative: rec.epsilonCumulative * 1.2,
            }
          : rec,
    });
    const res = auditLedgers({ coordinator: f.coordinator, partners: PARTNERS.map((p) => f.partners[p]), epsilonOf });
    const k = lines(f.coordinator).findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === 3);
    expect(res.ok).toBe(false);
    expect(errorsAt(res, k)).toEqual(expect.arrayContaining(['CROSS_CIPHERTEXT_MISMATCH', 'CROSS_EPSILON_MISMATCH']));
    expect(res.findings.every((x) => x.seq === k)).toBe(true);
  });

  it('finds a round the coordinator records but the partner does not', () => {
    const f = buildJob();
    const ls = lines(f.partners.telco);
    const r1 = ls.findIndex((l) => JSON.parse(l).type === 'partner.round');
    // Rebuild telco's ledger without round 1 (validly signed by telco: the content differs, not the chain).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-x-'));
    const file = path.join(dir, 'telco.jsonl');
    const w = LedgerWriter.open(file, K.telco, { sync: false });
    for (const [i, l] of ls.entries()) {
      if (i === r1) continue;
      const e = JSON.parse(l) as LedgerEntry;
      w.append(e.type, e.payload as never);
    }
    w.close();
    const res = auditLedgers({ coordinator: f.coordinator, partners: [file], epsilonOf });
    const k = lines(f.coordinator).findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === 1);
    expect(res.findings.find((x) => x.code === 'CROSS_ROUND_MISSING_IN_PARTNER')?.seq).toBe(k);
  });

  it('rejects a partner ledger whose key is not in the manifest', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fedmark-x-'));
    const file = path.join(dir, 'outsider.jsonl');
    const w = LedgerWriter.open(file, K.outsider);
    w.append('ledger.genesis', { ledgerId: 'x', role: 'partner', owner: party(K.outsider) });
    w.close();
    const res = auditLedgers({ coordinator: clean.coordinator, partners: [file], epsilonOf });
    expect(res.findings.map((x) => [x.code, x.ledger])).toContainEqual(['PARTNER_NOT_IN_MANIFEST', file]);
  });
});

describe('policy limits declared in acceptances', () => {
  it('flags the round in which a partner exceeded its ε limit (and not the round before)', () => {
    const e = { samplingRate: 0.03, noiseMultiplier: 1.1, steps: 50 };
    const afterR1 = epsilonOf([e], DELTA);
    const afterR3 = epsilonOf([e, e], DELTA); // insurer skipped round 2
    const limit = (afterR1 + afterR3) / 2;
    const f = buildJob({ policy: { insurer: { maxEpsilon: limit, maxDelta: 1e-4 } } });
    const res = auditLedgers({ coordinator: f.coordinator, epsilonOf });
    const ls = lines(f.coordinator);
    const roundSeq = (n: number) => ls.findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === n);
    const over = res.findings.filter((x) => x.code === 'POLICY_EPSILON_EXCEEDED').map((x) => x.seq);
    expect(over).toContain(roundSeq(3));
    expect(over).not.toContain(roundSeq(1));
    const insurer = res.partners.find((p) => p.name === 'insurer')!;
    expect(insurer.budgetLeft!).toBeLessThan(0);
  });

  it('flags a limit the job already breaks at acceptance, and participation after withdrawal', () => {
    const f = buildJob({
      policy: { telco: { maxEpsilon: 1.5, maxDelta: 1e-5, minNoiseMultiplier: 1.5, allowedPurposes: ['fraud'] } },
      afterRound2: (w) => {
        const withdraw = { jobId: 'churn-2026-q1', partner: K.bank.keyId, reason: 'board decision', afterRound: 2 };
        w.append('partner.withdraw', attestPayload(withdraw, K.bank));
      },
    });
    const res = auditLedgers({ coordinator: f.coordinator, epsilonOf });
    const ls = lines(f.coordinator);
    const telcoAcc = ls.findIndex((l) => JSON.parse(l).type === 'partner.acceptance' && JSON.parse(l).payload.partner === K.telco.keyId);
    expect(errorsAt(res, telcoAcc)).toEqual(expect.arrayContaining(['POLICY_EPSILON_EXCEEDED', 'POLICY_PURPOSE', 'POLICY_NOISE_TOO_LOW']));
    const r3 = ls.findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === 3);
    expect(errorsAt(res, r3)).toContain('PARTICIPATION_AFTER_WITHDRAW');
    expect(res.partners.find((p) => p.name === 'bank')!.status).toBe('withdrawn');
  });

  it('an acceptance recorded by the coordinator without the partner attestation is flagged', () => {
    const k = lines(clean.coordinator).findIndex((l) => JSON.parse(l).type === 'partner.acceptance');
    const read = rewrite(
      clean.coordinator,
      k,
      (e) => {
        delete (e.payload as { attestation?: unknown }).attestation;
        (e.payload as { policy: PolicyLimits }).policy.maxEpsilon = 100;
        return e;
      },
      K.coordinator,
      true,
    );
    const res = auditLedgers({ coordinator: read, epsilonOf });
    expect(errorsAt(res, k)).toContain('ATTESTATION_MISSING');
  });

  it('a halted job may not run further rounds', () => {
    const f = buildJob({
      afterRound2: (w) => w.append('job.halt', { jobId: 'churn-2026-q1', reason: 'emergency brake: label leak suspected', afterRound: 2 }, { signer: K.telco }),
    });
    const res = auditLedgers({ coordinator: f.coordinator, epsilonOf });
    const r3 = lines(f.coordinator).findIndex((l) => JSON.parse(l).type === 'round' && JSON.parse(l).payload.round === 3);
    expect(errorsAt(res, r3)).toContain('ROUND_AFTER_HALT');
  });
});

describe('robustness', () => {
  it('an accountant that throws yields a finding, not an exception, and ε is treated as unbounded', () => {
    const res = auditLedgers({
      coordinator: clean.coordinator,
      epsilonOf: () => {
        throw new Error('order grid too small');
      },
    });
    expect(res.ok).toBe(false);
    expect(codes(res)).toContain('EPSILON_UNCOMPUTABLE');
    expect(res.partners.every((p) => p.epsilon === Infinity)).toBe(true);
  });
});

describe('verifyLedger on in-memory entries', () => {
  it('accepts the clean entries and rejects an entry by an unauthorized role', () => {
    const entries = readLedger(clean.coordinator).entries;
    expect(verifyLedger(entries).ok).toBe(true);
    // A partner may pull the brake but may not write a round.
    const last = entries[entries.length - 1];
    const forged = signEntry(
      {
        schemaVersion: 1,
        seq: last.seq + 1,
        ts: last.ts,
        type: 'evaluation',
        author: K.bank.keyId,
        prev: entryHash(last),
        payload: { jobId: 'churn-2026-q1', metrics: { auc: 0.99 } },
      } as UnsignedEntry,
      K.bank,
    );
    const v = verifyLedger([...entries, forged]);
    expect(v.findings.map((f) => [f.code, f.seq])).toEqual([['UNAUTHORIZED_AUTHOR', last.seq + 1]]);
  });
});
