import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveJobModel, scoreWithState } from '../../cli/job-model.ts';
import { loadBundled } from '../../src/data/bundled.ts';
import { subsetDataset } from '../../src/data/encode.ts';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest } from '../../src/federation/manifest.ts';
import { numericFeatureColumns, withStandardization } from '../../src/federation/presets/standardized.ts';
import { sgdModel } from '../../src/federation/workloads/sgd/index.ts';
import { standardizedRows } from '../../src/federation/workloads/sgd/standardize.ts';
import { initBackend } from '../../src/model/backend.ts';
import { parameterCount, predictProba } from '../../src/model/params.ts';
import { loadScoringModel } from '../../src/scoring/model.ts';
import { createRng } from '../../src/util/rng.ts';
import { makeIdentities } from '../helpers/partners.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedmark-std-score-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A model trained on standardised features (workload.params.standardize) is released on the encoded
 * features: the saved model, loaded by the scoring module, and scoreWithState give the scores the
 * trained model gives on the standardised rows it was trained on.
 */
describe('scoring a model trained on standardised features', () => {
  it.each([{ kind: 'logistic' as const }, { kind: 'mlp' as const, hidden: [4], activation: 'relu' as const }])(
    '%o: same scores as the trained model',
    async (spec) => {
      await initBackend();
      const { schema, dataset } = await loadBundled('telco-churn');
      const rows = subsetDataset(
        dataset,
        Array.from({ length: 200 }, (_, i) => i),
      );
      const columns = numericFeatureColumns(schema);
      const [owner, a] = makeIdentities(['owner', 'a']);
      const m = parseManifest({
        ...withStandardization(jobPreset({ jobId: 'std-score', schema, partners: 1, rounds: 2, epsilon: null, model: spec }), {
          columns,
          mean: columns.map((_, i) => 0.1 + 0.05 * i),
          std: columns.map((_, i) => 0.2 + 0.1 * i),
          n: 200,
        }),
        schemaVersion: MANIFEST_SCHEMA_VERSION,
        createdAt: new Date(0).toISOString(),
        owner: publicIdentity(owner),
        partners: [publicIdentity(a)],
      });
      const d = m.dataset.featureNames.length;
      const rng = createRng(3);
      const params = Float64Array.from({ length: parameterCount(sgdModel(m), d) }, () => rng.next() - 0.5);
      const trained = predictProba(sgdModel(m), d, params, standardizedRows(m, { train: rows, test: rows }).test.X, rows.n);
      const state = { params, optimizerState: null };
      const viaState = scoreWithState(m, state, rows);
      const out = join(dir, spec.kind);
      const saved = await saveJobModel(out, m, state, { jobId: m.jobId });
      const loaded = await loadScoringModel(saved, schema);
      const logits = loaded.scorer.logits(rows.X, rows.n);
      for (let i = 0; i < rows.n; i++) {
        expect(viaState[i]).toBeCloseTo(trained[i], 6); // predictProba returns float32 probabilities
        // The saved model stores float32 weights beside the exact float64 parameters; scores agree to float precision.
        expect(1 / (1 + Math.exp(-logits[i]))).toBeCloseTo(trained[i], 5);
      }
    },
  );
});
