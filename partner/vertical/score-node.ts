import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { keyId as keyIdOf, type Identity } from '../../src/crypto/identity.ts';
import { FedmarkError } from '../../src/errors.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { builtinWorkloads } from '../../src/federation/workloads/index.ts';
import { sha256Canonical } from '../../src/privacy/ledger/canonical.ts';
import { openMessage, sealMessage } from '../../src/vertical/envelope.ts';
import { SCORE_KINDS, scoreJobOf } from '../../src/vertical/jobs/score-workload.ts';
import { featureModelSchema, labelModelSchema, sigmoid, type FeatureModel, type LabelModel } from '../../src/vertical/secureboost/model.ts';
import { i32Bytes, readI32, type PartyRows } from '../../src/vertical/secureboost/rows.ts';
import { featureAnswers, labelMargins, ownedSplits, readAnswers, type Answers } from '../../src/vertical/secureboost/scoring.ts';
import { PartnerLedger } from '../ledger.ts';
import { joinJob } from '../steps/join.ts';
import { runRelayRounds, sentDigest, type RelayParty, type RelayNodeConnection, joinConnection } from './relay-loop.ts';

export interface ScoreNodeOptions extends RelayNodeConnection {
  coordinatorUrl: string;
  identity: Identity;
  jobId: string;
  /** The model part this party kept from training (<training stateDir>/model.json). */
  modelPath: string;
  /** Its own columns of the customers, in the order of the scoring job's alignment. */
  rows: PartyRows;
  alignment: { psiJobId: string; orderDigest: string };
  stateDir: string;
  log: Logger;
  /** Label holder: the aligned rows to score (default: all). */
  score?: Int32Array;
  /** Label holder: where the scores go (default <stateDir>/<jobId>.scores.csv). */
  outPath?: string;
}

export interface ScoreNodeResult {
  state: string;
  reason: string | null;
  /** Label holder: the scored rows and their probabilities. */
  scores: { rows: Int32Array; probabilities: Float64Array } | null;
}

/**
 * A party of a vertical scoring job. The label holder sends which rows to score and walks the trees;
 * a feature holder answers, for each split it owns, which of those rows go left. Only the label holder
 * ends up with scores (written locally as `position,score`).
 */
export async function runScoreNode(o: ScoreNodeOptions): Promise<ScoreNodeResult> {
  const client = new CoordinatorClient(o.coordinatorUrl, o.identity, { signal: o.signal });
  const me = keyIdOf(o.identity.signPublicKey);
  const pollMs = o.pollMs ?? 150;
  mkdirSync(o.stateDir, { recursive: true });
  const ledger = PartnerLedger.open(join(o.stateDir, 'partner.ledger.jsonl'), o.identity, o.stateDir);
  const log = o.log.child({ jobId: o.jobId, node: o.identity.name });
  try {
    const raw = JSON.parse(readFileSync(o.modelPath, 'utf8')) as unknown;
    const modelHash = sha256Canonical(raw);
    const review = (m: JobManifest): string[] => {
      if (m.workload.kind !== 'vertical-score') return [`job ${m.jobId} is not a vertical scoring job`];
      const { params } = scoreJobOf(m);
      const mine = params.parties.find((p) => p.keyId === me);
      if (!mine) return ['this node is not a party of the job'];
      const out: string[] = [];
      if (mine.modelHash !== modelHash) out.push(`the job scores with model part ${mine.modelHash.slice(0, 12)}…, this node holds ${modelHash.slice(0, 12)}…`);
      if (params.alignment.psiJobId !== o.alignment.psiJobId || params.alignment.orderDigest !== o.alignment.orderDigest)
        out.push('the job aligns customers by another PSI result than this node holds');
      if (params.alignment.size !== o.rows.n) out.push(`the job has ${params.alignment.size} aligned customers, this node ${o.rows.n}`);
      return out;
    };
    const joined = await joinJob(
      {
        ...joinConnection(o, pollMs),
        reviewJob: review,
        schemaHash: (m) => m.dataset.schemaHash,
      },
      client,
      ledger,
      me,
      () => [],
      log,
    );
    if (!joined.joined) return { state: joined.state, reason: joined.reason, scores: null };
    const { manifest } = joined;
    const { params, specHash } = scoreJobOf(manifest);
    const role = params.parties[0].keyId === me ? 'label' : 'features';
    const keyOf = (k: string) => manifest.partners.find((p) => p.keyId === k);
    const label = params.parties[0].keyId;
    const addressing = (round: number, from: string, to: string) => ({ jobId: o.jobId, specHash, round, kind: SCORE_KINDS[round - 1], from, to });
    const rows = o.score ?? Int32Array.from({ length: o.rows.n }, (_, i) => i);
    let requested: Int32Array | null = null;
    let scores: ScoreNodeResult['scores'] = null;
    const answers: Answers = new Map();
    const labelModel: LabelModel | null = role === 'label' ? labelModelSchema.parse(raw) : null;
    const featureModel: FeatureModel | null = role === 'features' ? featureModelSchema.parse(raw) : null;
    const party: RelayParty = {
      send: async (round) => {
        if (role === 'label')
          return params.parties.slice(1).map((p) => ({
            to: p.keyId,
            body: sealMessage(addressing(round, me, p.keyId), [{ name: 'rows', bytes: i32Bytes(rows) }], o.identity, keyOf(p.keyId)!),
          }));
        if (!requested) throw new FedmarkError('VERTICAL_BAD_ROUND', 'no rows were requested');
        return [
          {
            to: label,
            body: sealMessage(addressing(round, me, label), featureAnswers(featureModel!, o.rows.layout, o.rows.X, requested), o.identity, keyOf(label)!),
          },
        ];
      },
      receive: async (round, messages) => {
        for (const m of messages) {
          const sections = openMessage(m.body, { ...o.identity, keyId: me }, addressing(round, m.from, me), keyOf);
          if (role === 'features') {
            const r = readI32(sections, 'rows', 'score-req');
            for (const x of r) if (!(x >= 0 && x < o.rows.n)) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `score-req: row ${x} is not an aligned row`);
            requested = r;
          } else {
            const index = params.parties.findIndex((p) => p.keyId === m.from);
            readAnswers(answers, sections, ownedSplits(labelModel!, index), rows.length, `party ${index} (score-resp)`);
          }
        }
        if (role === 'label' && round === 2) scores = { rows, probabilities: sigmoid(labelMargins(labelModel!, o.rows.layout, o.rows.X, rows, answers)) };
      },
    };
    const run = await runRelayRounds({
      client,
      manifest,
      workload: builtinWorkloads.resolve(manifest),
      me,
      coordinatorKeyId: joined.coordinator.keyId,
      party,
      log,
      pollMs,
      longPollMs: o.longPollMs,
      signal: o.signal,
    });
    ledger.record('vertical.party.job', {
      jobId: o.jobId,
      party: me,
      role,
      rounds: run.rounds,
      messagesSent: run.sent.length,
      bytesSent: run.sent.reduce((a, s) => a + s.bytes, 0),
      sentDigest: sentDigest(run.sent),
      modelHash,
      alignedRows: o.rows.n,
    });
    if (run.state !== 'completed') return { state: run.state, reason: run.reason, scores: null };
    const done = scores as ScoreNodeResult['scores'];
    if (done) {
      const outPath = o.outPath ?? join(o.stateDir, `${o.jobId}.scores.csv`);
      mkdirSync(dirname(outPath), { recursive: true });
      writeFileSync(outPath, `position,score\n${Array.from(done.rows, (r, i) => `${r},${done.probabilities[i]}`).join('\n')}\n`, { mode: 0o600 });
    }
    return { state: run.state, reason: null, scores: done };
  } finally {
    ledger.close();
  }
}
