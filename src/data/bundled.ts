/**
 * The real datasets shipped in data/ (provenance in data/SOURCES.md). Paths are resolved from this
 * module's location so the library works from any working directory.
 */
import { fileURLToPath } from 'node:url';
import { loadDataset, type Dataset, type EncodeOptions } from './encode.ts';
import { loadSchema, type DatasetSchema } from './schema.ts';

export interface BundledDataset {
  /** Absolute path of the CSV file. */
  csv: string;
  /** Absolute path of the schema JSON. */
  schema: string;
  /** What the model predicts. */
  task: string;
}

const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));

export const BUNDLED_DATASETS = {
  'bank-marketing': {
    csv: here('../../data/bank-marketing.csv'),
    schema: here('../../data/bank-marketing.schema.json'),
    task: 'propensity: term-deposit subscription after a phone campaign (UCI Bank Marketing, 45,211 rows)',
  },
  'telco-churn': {
    csv: here('../../data/telco-churn.csv'),
    schema: here('../../data/telco-churn.schema.json'),
    task: 'churn: customer left within the last month (IBM Telco Customer Churn, 7,043 rows)',
  },
} as const satisfies Record<string, BundledDataset>;

export type BundledDatasetName = keyof typeof BUNDLED_DATASETS;

export function isBundledDatasetName(name: string): name is BundledDatasetName {
  return Object.prototype.hasOwnProperty.call(BUNDLED_DATASETS, name);
}

export async function loadBundledSchema(name: BundledDatasetName): Promise<DatasetSchema> {
  return loadSchema(BUNDLED_DATASETS[name].schema);
}

/** Loads a bundled dataset with its bundled schema. */
export async function loadBundled(
  name: BundledDatasetName,
  options: EncodeOptions = {},
): Promise<{ schema: DatasetSchema; dataset: Dataset }> {
  const schema = await loadBundledSchema(name);
  return { schema, dataset: await loadDataset(BUNDLED_DATASETS[name].csv, schema, options) };
}
