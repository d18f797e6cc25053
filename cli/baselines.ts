import { sgdModel } from '../src/federation/workloads/sgd/index.ts';
import { concatDatasets, type Dataset } from '../src/data/encode.ts';
import { gbdtSettings } from '../src/federation/workloads/gbdt/index.ts';
import { auc } from '../src/metrics/classification.ts';
import { initParameters } from '../src/model/params.ts';
import { trainLocal } from '../src/train/local.ts';
import { modelFromState, parseGbdtParams, predictProba as predictTrees, trainPooled } from '../src/trees/index.ts';
import { scoreWithState } from './job-model.ts';
import type { JobManifest } from '../src/federation/manifest.ts';

/**
 * What the federation is compared with, without DP — the same model family trained on the
 * pooled training rows (centralized) and on each partner's rows alone, scored on the pooled hold-out
 * (the demo's stage 4 and `fedmark simulate --data`).
 * Logistic/MLP: local SGD for as many epochs as the federation ran. Trees: the in-project histogram
 * GBDT with the non-private defaults (what a data scientist would train on pooled data).
 */
export async function trainBaselines(
  s: { manifest: JobManifest; names: string[]; splits: { train: Dataset; test: Dataset }[] },
  rounds: number,
  seed: number,
): Promise<{ aucOf: (state: unknown) => number; centralized: number; local: Record<string, number> }> {
  const { manifest, splits, names } = s;
  const pooledTest = concatDatasets(splits.map((x) => x.test));
  const aucOf = (state: unknown) => auc(scoreWithState(manifest, state, pooledTest), pooledTest.y);
  const local: Record<string, number> = {};
  if (manifest.model.kind === 'gbdt') {
    const { layout } = gbdtSettings(manifest);
    const params = parseGbdtParams({ seed: manifest.seed, dp: null });
    const treesAuc = (train: Dataset) => auc(predictTrees(modelFromState(trainPooled(params, layout, train).state), pooledTest.X, pooledTest.n), pooledTest.y);
    for (const [i, x] of splits.entries()) local[names[i]] = treesAuc(x.train);
    return { aucOf, centralized: treesAuc(concatDatasets(splits.map((x) => x.train))), local };
  }
  const d = manifest.dataset.featureNames.length;
  const spec = sgdModel(manifest);
  const baselineConfig = { epochs: rounds * manifest.localTraining.epochs, batchSize: 64, learningRate: 0.1, optimizer: 'sgd' as const, seed };
  const init = initParameters(spec, d, seed);
  const centralized = await trainLocal(spec, d, init, concatDatasets(splits.map((x) => x.train)), baselineConfig);
  for (const [i, x] of splits.entries()) local[names[i]] = aucOf({ params: (await trainLocal(spec, d, init, x.train, baselineConfig)).params });
  return { aucOf, centralized: aucOf(centralized), local };
}
