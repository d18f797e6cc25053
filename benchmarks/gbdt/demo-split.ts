/**
 * The demo's partners for a bundled dataset, exactly as cli/demo.ts builds them: Dirichlet(α) label skew
 * over 5 partners (src/data/partition.ts), then each partner's own stratified 20% hold-out with the same
 * seed; the pooled hold-out is the union of the partners' hold-outs.
 */
import { BUNDLED_DATASETS, type BundledDatasetName } from '../../src/data/bundled.ts';
import { concatDatasets, loadDataset, subsetDataset, type Dataset } from '../../src/data/encode.ts';
import { partitionDirichlet } from '../../src/data/partition.ts';
import { loadSchema, type DatasetSchema } from '../../src/data/schema.ts';
import { trainTestSplit } from '../../src/data/split.ts';

export const DEMO_SEED = 42;
export const DEMO_PARTNERS = 5;
export const DEMO_ALPHA = 1;
export const DEMO_HOLDOUT = 0.2;

export interface DemoSplit {
  schema: DatasetSchema;
  partners: { name: string; train: Dataset; test: Dataset }[];
  pooledTrain: Dataset;
  pooledTest: Dataset;
}

export async function demoSplit(name: BundledDatasetName, seed = DEMO_SEED): Promise<DemoSplit> {
  const schema = await loadSchema(BUNDLED_DATASETS[name].schema);
  const full = await loadDataset(BUNDLED_DATASETS[name].csv, schema);
  const parts = partitionDirichlet(full.y, DEMO_PARTNERS, DEMO_ALPHA, seed);
  const partners = parts.map((idx, i) => {
    const all = subsetDataset(full, idx);
    const s = trainTestSplit(all.y, DEMO_HOLDOUT, seed);
    return { name: `partner-${String.fromCharCode(97 + i)}`, train: subsetDataset(all, s.train), test: subsetDataset(all, s.test) };
  });
  return {
    schema,
    partners,
    pooledTrain: concatDatasets(partners.map((p) => p.train)),
    pooledTest: concatDatasets(partners.map((p) => p.test)),
  };
}
