/**
 * Gradient-boosted trees through the scoring seam: a fedmark ensemble saved in XGBoost JSON, and a
 * model trained by Python XGBoost itself (Debian's python3-xgboost, installed by .ci/run; those
 * tests skip, saying so, without it). Scores must be the model's own predictions, and each row's
 * reason contributions plus the base value must be its margin (logit) exactly.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../../src/data/encode.ts';
import { featureNames } from '../../src/data/schema.ts';
import { schemaHash } from '../../src/federation/job-presets.ts';
import { featureLayout, parseGbdtParams, predictMargin, predictProba, trainPooled } from '../../src/trees/index.ts';
import { sha256Hex } from '../../src/util/hash.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';
import { scoreFile } from '../../src/scoring/batch.ts';
import { loadScoringModel } from '../../src/scoring/model.ts';
import { formatProbability } from '../../src/scoring/ranking.ts';
import { completenessGap } from '../../src/scoring/scorer.ts';
import { GBDT_MODEL_FILE, saveGbdtModelDir } from '../../src/scoring/tree-scorer.ts';
import { fedmark, fixtureSchema, makeCustomers, partnerFiles, PURPOSE, SCHEMA_PATH, tempDir, toCsv, partnerArgs } from './helpers.ts';

const schema = await fixtureSchema();
const layout = featureLayout(schema);

/** The scores file as id → { probability, reasons: [text, logit][] }. */
function readScores(file: string): Map<string, { p: string; reasons: [string, number][] }> {
  const [header, ...lines] = readFileSync(file, 'utf8').trim().split('\n');
  const cols = header.split(',');
  const out = new Map<string, { p: string; reasons: [string, number][] }>();
  for (const line of lines) {
    // Reason texts in the fixture contain no commas or quotes.
    const f = line.split(',');
    const reasons: [string, number][] = [];
    for (let r = 1; cols.includes(`reason_${r}`); r++) {
      const t = f[cols.indexOf(`reason_${r}`)];
      if (t) reasons.push([t, Number(f[cols.indexOf(`reason_${r}_logit`)])]);
    }
    out.set(f[cols.indexOf('customer')], { p: f[cols.indexOf('probability')], reasons });
  }
  return out;
}

/** A trained fedmark ensemble, its training file, and the encoded rows of a file to score. */
async function trained(dir: string) {
  writeFileSync(join(dir, 'train.csv'), toCsv(makeCustomers(3000, 41)));
  const train = await loadDataset(join(dir, 'train.csv'), schema);
  const { model } = trainPooled(parseGbdtParams({ trees: 30, depth: 3, learningRate: 0.3, baseScore: 0.3 }), layout, train);
  const customers = makeCustomers(500, 42);
  writeFileSync(join(dir, 'customers.csv'), toCsv(customers, { label: false }));
  // The same customers with their label: loadDataset gives the encoded rows the scorer must see.
  writeFileSync(join(dir, 'labelled.csv'), toCsv(customers));
  const encoded = await loadDataset(join(dir, 'labelled.csv'), schema);
  return { model, encoded };
}

describe('gradient-boosted trees in scoring', () => {
  it('scores a tree model saved in XGBoost JSON with its own predictions; reasons + base value = the logit exactly', async () => {
    const dir = tempDir();
    const { model, encoded } = await trained(dir);
    const hash = saveGbdtModelDir(join(dir, 'gbdt'), model, { jobId: 'churn-trees', purpose: PURPOSE, schemaHash: schemaHash(schema) });
    expect(hash).toBe(sha256Hex(readFileSync(join(dir, 'gbdt', GBDT_MODEL_FILE))));

    const m = await loadScoringModel(join(dir, 'gbdt'), schema);
    expect(m.scorer.kind).toBe('gbdt');
    expect(m.modelHash).toBe(hash);
    expect(m.provenance).toMatchObject({ jobId: 'churn-trees', purpose: PURPOSE, featureNames: featureNames(schema) });
    expect(m.scorer.attribution).toMatchObject({ method: 'tree-path', exact: true });

    // Exactness on the encoded rows: Σ contributions + base value = margin, for every row.
    const { X, n } = encoded;
    const z = m.scorer.logits(X, n);
    expect(Array.from(z)).toEqual(Array.from(predictMargin(model, X, n)));
    expect(Math.max(...completenessGap(m.scorer, X, n))).toBeLessThan(1e-12);

    const s = await scoreFile({ dataPath: join(dir, 'customers.csv'), outPath: join(dir, 'scores.csv'), schema, model: m, reasons: 3 });
    expect(s.rows.scored).toBe(n);
    expect(s.model.attribution.maxCompletenessGap).toBeLessThan(1e-12);
    const scores = readScores(join(dir, 'scores.csv'));
    const p = predictProba(model, X, n);
    const phi = m.scorer.contributions(X, n);
    const d = m.scorer.d;
    let withReasons = 0;
    encoded.ids!.forEach((id, i) => {
      const row = scores.get(id)!;
      expect(row.p, id).toBe(formatProbability(p[i]));
      // Each reason is a column's total contribution: positive, largest first, as printed (4 decimals).
      const columns = layout.groups.map((g) => {
        const [from, width] = g.kind === 'categorical' ? [g.offset, g.slots] : [g.feature, 1];
        let t = 0;
        for (let k = 0; k < width; k++) t += phi[i * d + from + k];
        return t;
      });
      const expected = columns
        .filter((v) => v > 0)
        .sort((a, b) => b - a)
        .slice(0, 3);
      expect(row.reasons.map(([, v]) => v)).toEqual(expected.map((v) => Number(v.toFixed(4))));
      if (row.reasons.length) withReasons++;
    });
    expect(withReasons).toBeGreaterThan(n / 2);
  });

  it('`fedmark score` on a GBDT model directory: early-warning list, ledger entry with the tree model', async () => {
    const dir = tempDir();
    const { model } = await trained(dir);
    const hash = saveGbdtModelDir(join(dir, 'gbdt'), model, { jobId: 'churn-trees', purpose: PURPOSE, schemaHash: schemaHash(schema) });
    const p = partnerFiles(dir);
    const r = fedmark(
      'score',
      '--model',
      join(dir, 'gbdt'),
      '--data',
      join(dir, 'customers.csv'),
      '--schema',
      SCHEMA_PATH,
      '--out',
      join(dir, 'top.csv'),
      ...partnerArgs(p),
      '--top-k',
      '25',
      '--value-column',
      'clv',
      '--json',
    );
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.model).toMatchObject({ kind: 'gbdt', hash, attribution: { method: 'tree-path', exact: true } });
    expect(summary.model.attribution.maxCompletenessGap).toBeLessThan(1e-12);
    const lines = readFileSync(join(dir, 'top.csv'), 'utf8').trim().split('\n');
    expect(lines[0]).toBe('rank,customer,probability,decile,clv,expected_value,reason_1,reason_1_logit,reason_2,reason_2_logit,reason_3,reason_3_logit');
    expect(lines).toHaveLength(26);
    const ev = lines.slice(1).map((l) => Number(l.split(',')[5]));
    expect([...ev].sort((a, b) => b - a)).toEqual(ev);
    const run = readLedger(p.ledger).entries.find((e) => e.type === 'model.scoring')!;
    expect(run.payload).toMatchObject({ mode: 'batch', modelHash: hash, modelKind: 'gbdt', modelJobId: 'churn-trees', purpose: PURPOSE });
  });

  it('refuses a tree model for another schema, and a model.json that is not a binary logistic ensemble', async () => {
    const dir = tempDir();
    const { model } = await trained(dir);
    saveGbdtModelDir(join(dir, 'other'), model, { purpose: PURPOSE, schemaHash: 'a'.repeat(64) });
    await expect(loadScoringModel(join(dir, 'other'), schema)).rejects.toMatchObject({ code: 'MODEL_SCHEMA_MISMATCH' });
    saveGbdtModelDir(join(dir, 'multi'), model, { purpose: PURPOSE });
    const json = JSON.parse(readFileSync(join(dir, 'multi', GBDT_MODEL_FILE), 'utf8'));
    json.learner.objective.name = 'multi:softprob';
    writeFileSync(join(dir, 'multi', GBDT_MODEL_FILE), JSON.stringify(json));
    await expect(loadScoringModel(join(dir, 'multi'), schema)).rejects.toMatchObject({
      code: 'GBDT_XGB_UNSUPPORTED',
      message: expect.stringMatching(/multi:softprob/),
    });
    writeFileSync(join(dir, 'other', 'metadata.json'), '{"purpose": 3}');
    await expect(loadScoringModel(join(dir, 'other'), schema)).rejects.toMatchObject({ code: 'MODEL_METADATA_INVALID' });
  });
});

function findPython(): { python: string | null; reason: string } {
  for (const python of ['/usr/bin/python3', 'python3']) {
    try {
      const v = execFileSync(python, ['-c', 'import xgboost; print(xgboost.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      return { python, reason: `xgboost ${v}` };
    } catch {
      // try the next interpreter
    }
  }
  return { python: null, reason: 'python3-xgboost is not installed (apt-get install -y python3-xgboost)' };
}
const { python, reason } = findPython();
if (!python) console.warn(`[scoring/trees] skipping the model trained by Python XGBoost: ${reason}`);

describe.skipIf(!python)(`a model trained by Python XGBoost (${reason})`, () => {
  it("scores with XGBoost's own predictions, and its covers give XGBoost's own approx_contribs as reasons", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'train.csv'), toCsv(makeCustomers(2000, 51)));
    const train = await loadDataset(join(dir, 'train.csv'), schema);
    const customers = makeCustomers(300, 52);
    writeFileSync(join(dir, 'customers.csv'), toCsv(customers, { label: false }));
    writeFileSync(join(dir, 'labelled.csv'), toCsv(customers));
    const encoded = await loadDataset(join(dir, 'labelled.csv'), schema);
    const matrix = (X: Float32Array, n: number, d: number) =>
      Array.from({ length: n }, (_, i) => Array.from(X.subarray(i * d, (i + 1) * d)).join(',')).join('\n');
    const d = train.d;
    writeFileSync(join(dir, 'train.txt'), matrix(train.X, train.n, d));
    writeFileSync(join(dir, 'train-y.txt'), Array.from(train.y).join('\n'));
    writeFileSync(join(dir, 'score.txt'), matrix(encoded.X, encoded.n, d));
    const script = `
import sys, json, numpy as np, xgboost as xgb
d = sys.argv[1]
X = np.loadtxt(d + '/train.txt', delimiter=',', dtype=np.float32); y = np.loadtxt(d + '/train-y.txt')
b = xgb.train({'objective': 'binary:logistic', 'max_depth': 3, 'eta': 0.3, 'base_score': 0.3, 'tree_method': 'exact'}, xgb.DMatrix(X, label=y), num_boost_round=20)
import os; os.makedirs(d + '/xgb', exist_ok=True); b.save_model(d + '/xgb/model.json')
S = xgb.DMatrix(np.loadtxt(d + '/score.txt', delimiter=',', dtype=np.float32))
json.dump({'p': b.predict(S).tolist(), 'margin': b.predict(S, output_margin=True).tolist(), 'contribs': b.predict(S, pred_contribs=True, approx_contribs=True).tolist()}, open(d + '/xgb.json', 'w'))
`;
    execFileSync(python!, ['-c', script, dir], { encoding: 'utf8' });
    const ref = JSON.parse(readFileSync(join(dir, 'xgb.json'), 'utf8')) as { p: number[]; margin: number[]; contribs: number[][] };
    writeFileSync(join(dir, 'xgb', 'metadata.json'), JSON.stringify({ purpose: PURPOSE, schemaHash: schemaHash(schema) }));

    const m = await loadScoringModel(join(dir, 'xgb'), schema);
    expect(m.scorer.attribution.description).toMatch(/covers/);
    const { X, n } = encoded;
    const z = m.scorer.logits(X, n);
    const phi = m.scorer.contributions(X, n);
    for (let i = 0; i < n; i++) {
      expect(z[i]).toBeCloseTo(ref.margin[i], 5);
      for (let j = 0; j < d; j++) expect(phi[i * d + j]).toBeCloseTo(ref.contribs[i][j], 5);
      expect(m.scorer.baseValue).toBeCloseTo(ref.contribs[i][d], 5);
    }
    expect(Math.max(...completenessGap(m.scorer, X, n))).toBeLessThan(1e-12);
    await scoreFile({ dataPath: join(dir, 'customers.csv'), outPath: join(dir, 'scores.csv'), schema, model: m, reasons: 2 });
    const scores = readScores(join(dir, 'scores.csv'));
    encoded.ids!.forEach((id, i) => expect(Math.abs(Number(scores.get(id)!.p) - ref.p[i])).toBeLessThan(2e-6));
  });
});
