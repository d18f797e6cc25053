import { loadDataset, subsetDataset, type Dataset } from '../src/data/encode.ts';
import { trainTestSplit } from '../src/data/split.ts';
import type { DatasetSchema } from '../src/data/schema.ts';

/**
 * A partner's local rows split into training rows and its own hold-out. The split is seeded so the
 * demo can reproduce exactly the same hold-out rows for its centralized comparison.
 */
export async function loadPartnerData(csv: string, schema: DatasetSchema, holdout: number, seed: number, excludeIds?: Set<string>): Promise<{ all: Dataset; train: Dataset; test: Dataset }> {
  const all = await loadDataset(csv, schema, { excludeIds });
  return { all, ...splitPartnerData(all, holdout, seed) };
}

export function splitPartnerData(all: Dataset, holdout: number, seed: number): { train: Dataset; test: Dataset } {
  const split = trainTestSplit(all.y, holdout, seed);
  return { train: subsetDataset(all, split.train), test: subsetDataset(all, split.test) };
}
