/**
 * Issue 18 item 4: batch scoring with the logits and reason codes on worker threads writes the bytes
 * and the summary of the single-thread run (batches are consumed in file order).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../../src/data/encode.ts';
import { schemaHash } from '../../src/federation/job-presets.ts';
import { scoreFile, type ScoreFileOptions } from '../../src/scoring/batch.ts';
import { loadScoringModel } from '../../src/scoring/model.ts';
import { SCORING_BATCH_ROWS } from '../../src/scoring/rows.ts';
import { saveGbdtModelDir } from '../../src/scoring/tree-scorer.ts';
import { featureLayout, parseGbdtParams, trainPooled } from '../../src/trees/index.ts';
import { closeWorkers } from '../../src/util/worker-pool.ts';
import { fixtureSchema, makeCustomers, PURPOSE, saveFixtureModel, tempDir, toCsv } from './helpers.ts';

const schema = await fixtureSchema();
afterAll(() => closeWorkers());

/** The summary without what depends on the clock or the output path. */
function comparable(s: Awaited<ReturnType<typeof scoreFile>>) {
  const { startedAt: _a, finishedAt: _b, seconds: _c, rowsPerSecond: _d, output, ...rest } = s;
  return { ...rest, output: { ...output, path: null } };
}

describe('batch scoring on worker threads', () => {
  it('gives the single-thread output bytes and summary for an MLP and a tree model, all rows and top-k', async () => {
    const dir = tempDir();
    const data = join(dir, 'customers.csv');
    // Three and a half batches, so several are in flight at once.
    writeFileSync(data, toCsv(makeCustomers(Math.round(3.5 * SCORING_BATCH_ROWS), 9), { label: false }));
    await saveFixtureModel(join(dir, 'mlp'), schema, { kind: 'mlp', hidden: [8], activation: 'relu' });
    writeFileSync(join(dir, 'train.csv'), toCsv(makeCustomers(2000, 41)));
    const train = await loadDataset(join(dir, 'train.csv'), schema);
    const { model: trees } = trainPooled(parseGbdtParams({ trees: 10, depth: 3, learningRate: 0.3, baseScore: 0.3 }), featureLayout(schema), train);
    saveGbdtModelDir(join(dir, 'gbdt'), trees, { jobId: 'churn-trees', purpose: PURPOSE, schemaHash: schemaHash(schema) });
    for (const kind of ['mlp', 'gbdt']) {
      const model = await loadScoringModel(join(dir, kind), schema);
      for (const extra of [{}, { topK: 500, valueColumn: 'clv' }] as Partial<ScoreFileOptions>[]) {
        const run = async (threads: number, tag: string) => {
          const outPath = join(dir, `${kind}-${tag}.csv`);
          const summary = await scoreFile({ dataPath: data, outPath, schema, model, threads, threadMinRows: 0, ...extra });
          return { bytes: readFileSync(outPath), summary: comparable(summary) };
        };
        const one = await run(1, 'one');
        const two = await run(2, 'two');
        expect(two.bytes.equals(one.bytes), `${kind} ${JSON.stringify(extra)}`).toBe(true);
        expect(two.summary).toEqual(one.summary);
        expect(one.summary.rows.scored).toBeGreaterThan(3 * SCORING_BATCH_ROWS);
      }
    }
  }, 120_000);

  it('refuses, naming the model, when a worker would score with another model than the one loaded', async () => {
    const dir = tempDir();
    const data = join(dir, 'customers.csv');
    writeFileSync(data, toCsv(makeCustomers(600, 3), { label: false }));
    await saveFixtureModel(join(dir, 'model'), schema);
    const model = await loadScoringModel(join(dir, 'model'), schema);
    // The directory now holds other parameters than the model in memory.
    await saveFixtureModel(join(dir, 'model'), schema, { kind: 'logistic' }, { seed: 99 });
    await expect(scoreFile({ dataPath: data, outPath: join(dir, 'out.csv'), schema, model, threads: 2, threadMinRows: 0 })).rejects.toThrow(
      /a scoring worker loaded logistic model \w+, not the logistic model \w+ being scored/,
    );
  });
});
