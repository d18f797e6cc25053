import { sgdModel } from '../../src/federation/workloads/sgd/index.ts';
import { concatDatasets } from '../../src/data/encode.ts';
import { auc } from '../../src/metrics/classification.ts';
import { initParameters, predictProba } from '../../src/model/params.ts';
import { trainLocal } from '../../src/train/local.ts';
import type { DemoSetup } from './setup.ts';

/** Stage 4: centralized training (all rows pooled) and each partner alone, scored on the same pooled hold-out as the federated model. */
export async function trainBaselines(s: DemoSetup, rounds: number, seed: number): Promise<{ aucOf: (params: Float64Array) => number; centralized: number; local: Record<string, number> }> {
  const { manifest, splits, names } = s;
  const d = manifest.dataset.featureNames.length;
  const pooledTest = concatDatasets(splits.map((x) => x.test));
  const aucOf = (params: Float64Array) => auc(predictProba(sgdModel(manifest), d, params, pooledTest.X, pooledTest.n), pooledTest.y);
  const baselineConfig = { epochs: rounds * manifest.localTraining.epochs, batchSize: 64, learningRate: 0.1, optimizer: 'sgd' as const, seed };
  const init = initParameters(sgdModel(manifest), d, seed);
  const centralized = await trainLocal(sgdModel(manifest), d, init, concatDatasets(splits.map((x) => x.train)), baselineConfig);
  const local: Record<string, number> = {};
  for (const [i, x] of splits.entries()) local[names[i]] = aucOf((await trainLocal(sgdModel(manifest), d, init, x.train, baselineConfig)).params);
  return { aucOf, centralized: aucOf(centralized.params), local };
}
