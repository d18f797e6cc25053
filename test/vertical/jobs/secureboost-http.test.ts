import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicIdentity, generateIdentity } from '../../../src/crypto/identity.ts';
import { signManifest } from '../../../src/federation/manifest.ts';
import { composedEpsilon } from '../../../src/privacy/accountant.ts';
import { auditLedgers } from '../../../src/privacy/ledger/audit.ts';
import { readLedger } from '../../../src/privacy/ledger/reader.ts';
import { SPLIT, LEAF } from '../../../src/trees/heap-tree.ts';
import { secureBoostManifest, verticalScoreManifest } from '../../../src/vertical/jobs/manifest.ts';
import { runSecureBoostNode, type SecureBoostNodeResult } from '../../../partner/vertical/secureboost-node.ts';
import { runRelayJobOwner } from '../../../owner/relay-job.ts';
import { startTestCoordinator, type TestCoordinator } from '../../helpers/coordinator.ts';
import { silentLog } from '../../helpers/partners.ts';
import { isDistinctive, scanFiles, vectorNeedles } from '../../helpers/plaintext-scan.ts';
import { bankSplit, pooled, vparams, type BankSplit } from '../secureboost/helpers.ts';
import { POLL_MS, tempDir, together } from './helpers.ts';
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { sha256Canonical } from '../../../src/privacy/ledger/canonical.ts';
import { predictProba } from '../../../src/trees/model.ts';
import { runScoreNode, type ScoreNodeResult } from '../../../partner/vertical/score-node.ts';
import type { BudgetGuard } from '../../../src/privacy/budget/guard.ts';
import { PolicyBudgetGuard } from '../../../src/privacy/budget/policy-guard.ts';
import { BudgetStore } from '../../../src/privacy/budget/store.ts';
import { parsePolicy } from '../../../src/privacy/policy.ts';
import { labelDpPlan, releasePlan } from '../../../src/vertical/secureboost/dp.ts';
import { totalColumns } from '../../../src/vertical/secureboost/params.ts';

let coord: TestCoordinator;
let tmp: ReturnType<typeof tempDir>;
let s: BankSplit;

beforeAll(async () => {
  coord = await startTestCoordinator({ tickMs: 40 });
  tmp = tempDir('fedmark-vsb-http-');
  s = await bankSplit(1600, 11);
});
afterAll(async () => {
  await coord?.close();
  tmp?.cleanup();
});

interface Run {
  owner: { state: string; reason: string | null };
  lh: SecureBoostNodeResult;
  fh: SecureBoostNodeResult;
  manifest: ReturnType<typeof secureBoostManifest>;
  ledgers: { job: string; partners: string[] };
}

async function runJob(
  jobId: string,
  params: ReturnType<typeof vparams>,
  o: { budget?: BudgetGuard; inspect?: Parameters<typeof runSecureBoostNode>[0]['inspect']; url?: string } = {},
): Promise<Run> {
  const owner = generateIdentity('owner');
  const manifest = secureBoostManifest({ jobId, owner: publicIdentity(owner), parties: s.identities.map(publicIdentity), params, roundDeadlineSeconds: 60 });
  const signed = signManifest(manifest, owner);
  const url = o.url ?? coord.url;
  const node = (i: number, signal: AbortSignal) =>
    runSecureBoostNode({
      coordinatorUrl: url,
      identity: s.identities[i],
      jobId,
      rows: i === 0 ? s.bank : s.telco,
      schemaHash: params.parties[i].schemaHash,
      alignment: { psiJobId: params.alignment.psiJobId, orderDigest: params.alignment.orderDigest },
      stateDir: join(tmp.dir, `${jobId}-${i}`),
      log: silentLog,
      pollMs: POLL_MS,
      signal,
      joinTimeoutMs: 30_000,
      recordBodies: i === 1,
      budget: i === 0 ? o.budget : undefined,
      inspect: i === 1 ? o.inspect : undefined,
    });
  const [ownerResult, lh, fh] = await together<[{ state: string; reason: string | null }, SecureBoostNodeResult, SecureBoostNodeResult]>(150_000, [
    (signal) => runRelayJobOwner({ coordinatorUrl: coord.url, identity: owner, signed, log: silentLog, pollMs: POLL_MS, signal }),
    (signal) => node(0, signal),
    (signal) => node(1, signal),
  ]);
  return {
    owner: ownerResult,
    lh,
    fh,
    manifest,
    ledgers: { job: coord.engine.ledgerPath(jobId), partners: [0, 1].map((i) => join(tmp.dir, `${jobId}-${i}`, 'partner.ledger.jsonl')) },
  };
}

describe('vertical SecureBoost as a job kind over the real coordinator and partner nodes', () => {
  it("without DP: the pooled GBDT's trees; no byte the feature holder sends holds one of its values or cuts; a clean audit", async () => {
    const params = vparams(s, { trees: 2, depth: 3 });
    const jobId = 'vsb-http-plain';
    const seen: Uint8Array[] = [];
    const {
      owner: ownerResult,
      lh,
      fh,
      manifest,
      ledgers,
    } = await runJob(jobId, params, { inspect: (e) => e.direction === 'sent' && seen.push(...e.sections.map((x) => x.bytes)) });
    expect([ownerResult.state, lh.state, fh.state]).toEqual(['completed', 'completed', 'completed']);
    const ref = pooled(s, params).run.state.trees;
    const mine = lh.active!.heapTrees();
    mine.forEach((t, k) => {
      expect(t.kind).toEqual(ref[k].kind);
      for (let i = 0; i < t.kind.length; i++) {
        if (t.kind[i] === SPLIT) expect([t.group[i], t.cut[i]]).toEqual([ref[k].group[i], ref[k].cut[i]]);
        if (t.kind[i] === LEAF) expect(Math.abs(t.value[i] - ref[k].value[i])).toBeLessThan(1e-6);
      }
    });
    expect(lh.scores!.margins.length).toBeGreaterThan(300);

    // Every byte the feature holder sent — HTTP bodies and the plaintext sections it sealed — against its
    // encoded values (float64 and float32 pairs, text, base64) and its cuts.
    const dir = join(tmp.dir, 'scan');
    mkdirSync(dir, { recursive: true });
    [...fh.sentBodies!, ...seen].forEach((b, i) => writeFileSync(join(dir, `b${i}`), b));
    const values = Float64Array.from(s.telco.X);
    const cuts = Float64Array.from((fh.model as { nodes: { threshold: number }[] }).nodes.map((x) => x.threshold).filter(isDistinctive));
    const needles = [...vectorNeedles('telco-value', values), ...vectorNeedles('telco-cut', cuts)];
    expect(needles.length).toBeGreaterThan(1000);
    const files = [...fh.sentBodies!, ...seen].map((_, i) => join(dir, `b${i}`));
    expect(scanFiles(files, needles)).toEqual([]);
    // The scan would find a leak: the same needles are found in a body that holds the values.
    writeFileSync(join(dir, 'leak'), Buffer.from(values.buffer));
    expect(scanFiles([join(dir, 'leak')], needles).length).toBeGreaterThan(0);

    const types = readLedger(ledgers.job).entries.map((e) => e.type);
    expect(types.filter((t) => t === 'relay.round')).toHaveLength(manifest.rounds);
    const audit = auditLedgers({ coordinator: ledgers.job, partners: ledgers.partners, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);

    // Campaign scoring of every aligned customer with the committed model parts: the pooled model's scores.
    const modelPaths = [0, 1].map((i) => join(tmp.dir, `${jobId}-${i}`, 'model.json'));
    const hashes = modelPaths.map((f) => sha256Canonical(JSON.parse(readFileSync(f, 'utf8'))));
    const committed = ledgers.partners.map(
      (f) => (readLedger(f).entries.find((e) => e.type === 'vertical.party.job')!.payload as { modelHash: string }).modelHash,
    );
    expect(committed).toEqual(hashes);
    const owner = generateIdentity('owner');
    const scoreId = 'vsb-http-score';
    const sm = verticalScoreManifest({
      jobId: scoreId,
      owner: publicIdentity(owner),
      parties: s.identities.map(publicIdentity),
      params: {
        parties: params.parties.map((p, i) => ({ role: p.role, keyId: p.keyId, modelHash: hashes[i] })),
        model: { jobId },
        alignment: params.alignment,
      },
      roundDeadlineSeconds: 60,
    });
    const scorer = (i: number) => (signal: AbortSignal) =>
      runScoreNode({
        coordinatorUrl: coord.url,
        identity: s.identities[i],
        jobId: scoreId,
        modelPath: modelPaths[i],
        rows: i === 0 ? s.bank : s.telco,
        alignment: params.alignment,
        stateDir: join(tmp.dir, `${scoreId}-${i}`),
        log: silentLog,
        pollMs: POLL_MS,
        signal,
        joinTimeoutMs: 30_000,
      });
    const [so, sl, sf] = await together<[{ state: string }, ScoreNodeResult, ScoreNodeResult]>(60_000, [
      (signal) => runRelayJobOwner({ coordinatorUrl: coord.url, identity: owner, signed: signManifest(sm, owner), log: silentLog, pollMs: POLL_MS, signal }),
      scorer(0),
      scorer(1),
    ]);
    expect([so.state, sl.state, sf.state]).toEqual(['completed', 'completed', 'completed']);
    expect(sf.scores).toBeNull();
    const ref2 = pooled(s, params);
    const want = predictProba(ref2.run.model, ref2.X, s.bank.n);
    expect(sl.scores!.probabilities.length).toBe(s.bank.n);
    for (let i = 0; i < s.bank.n; i++) expect(Math.abs(sl.scores!.probabilities[i] - want[i])).toBeLessThan(1e-6);
    // No release is charged for scoring; the feature holder's unnoised directions are on record as the job's declared disclosure.
    const scoreAudit = auditLedgers({
      coordinator: coord.engine.ledgerPath(scoreId),
      partners: [0, 1].map((i) => join(tmp.dir, `${scoreId}-${i}`, 'partner.ledger.jsonl')),
      epsilonOf: composedEpsilon,
    });
    expect(scoreAudit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(scoreAudit.findings.filter((f) => f.code === 'SCORE_DIRECTIONS_DISCLOSED')).toHaveLength(1);
    expect(readLedger(coord.engine.ledgerPath(scoreId)).entries.some((e) => e.type === 'vertical.release')).toBe(false);
  }, 180_000);

  it('with label DP: every release charged to the label holder before its round, recorded in both ledgers, ε recomputed by the audit', async () => {
    const params = vparams(s, { trees: 2, depth: 2, labelDp: { epsilon: 2 } });
    const store = BudgetStore.open(join(tmp.dir, 'bank.budget.json'));
    const policy = parsePolicy({
      partner: 'bank',
      datasetId: 'bank-customers',
      maxEpsilonPerJob: 2,
      lifetimeEpsilon: 10,
      maxDelta: 1e-5,
      allowedColumns: [],
      allowedPurposes: ['propensity-model'],
    });
    const run = await runJob('vsb-http-dp', params, { budget: new PolicyBudgetGuard(policy, store) });
    expect([run.owner.state, run.lh.state, run.fh.state]).toEqual(['completed', 'completed', 'completed']);
    const plan = releasePlan(params, labelDpPlan(params, totalColumns(params)));
    expect(plan.map((x) => x.release.label)).toEqual(['histogram', 'histogram', 'leaf', 'histogram', 'histogram', 'leaf']);
    const charges = BudgetStore.open(store.path).charges('vsb-http-dp');
    expect(charges.map((c) => [c.round, c.label])).toEqual(plan.map((x) => [x.round, x.release.label]));
    const want = composedEpsilon(
      plan.map((x) => x.release),
      1e-5,
    );
    expect(want).toBeLessThanOrEqual(2);
    const job = readLedger(run.ledgers.job).entries.filter((e) => e.type === 'vertical.release');
    const own = readLedger(run.ledgers.partners[0]).entries.filter((e) => e.type === 'vertical.release');
    expect(job.map((e) => (e.payload as { round: number }).round)).toEqual(plan.map((x) => x.round));
    expect(own.map((e) => e.payload)).toEqual(job.map((e) => e.payload));
    // Each release is recorded in the job ledger before the round's first message from the label holder.
    const entries = readLedger(run.ledgers.job).entries;
    for (const x of plan) {
      const rel = entries.findIndex((e) => e.type === 'vertical.release' && (e.payload as { round: number }).round === x.round);
      const relayed = entries.findIndex((e) => e.type === 'relay.round' && (e.payload as { round: number }).round === x.round);
      expect(rel).toBeGreaterThan(-1);
      expect(rel).toBeLessThan(relayed);
    }
    const audit = auditLedgers({ coordinator: run.ledgers.job, partners: run.ledgers.partners, epsilonOf: composedEpsilon });
    expect(audit.findings.filter((f) => f.severity === 'error')).toEqual([]);
    const bank = audit.partners.find((p) => p.partner === params.parties[0].keyId)!;
    expect(bank.epsilonRecomputed).toBeCloseTo(want, 9);
    expect(bank.epsilon).toBeLessThanOrEqual(2);
  }, 180_000);
});
