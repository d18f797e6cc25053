import type { Command } from 'commander';
import { FedmarkError } from '../src/errors.ts';
import { loadDataset, subsetDataset, type BadRowLimit, type Dataset } from '../src/data/encode.ts';
import { loadSource } from '../src/data/load.ts';
import { badRowSummary } from '../src/data/bad-rows.ts';
import { terminalProgress } from '../src/data/progress.ts';
import { resolveDataSource, type DataSource } from '../src/data/sources/index.ts';
import { trainTestSplit } from '../src/data/split.ts';
import { loadSchema, type DatasetSchema } from '../src/data/schema.ts';
import { partitionDirichlet } from '../src/data/partition.ts';
import { BUNDLED_DATASETS, type BundledDatasetName } from '../src/data/bundled.ts';

export interface PartnerDataOptions {
  /** Fail above this many bad rows (default: the loader's, 1%). */
  maxBadRows?: BadRowLimit;
  /** Show loading progress and the skipped bad rows on stderr (the partner node's terminal). */
  terminal?: boolean;
}

/**
 * A partner's local rows split into training rows and its own hold-out. The split is seeded so the
 * demo can reproduce exactly the same hold-out rows for its centralized comparison. `data` is a path
 * or URL as `--data` takes it, or a data source.
 */
export async function loadPartnerData(
  data: string | DataSource,
  schema: DatasetSchema,
  holdout: number,
  seed: number,
  excludeIds?: Set<string>,
  options: PartnerDataOptions = {},
): Promise<{ all: Dataset; train: Dataset; test: Dataset }> {
  const source = typeof data === 'string' ? resolveDataSource({ data }) : data;
  const progress = options.terminal ? terminalProgress() : null;
  let all: Dataset;
  try {
    all = await loadSource(source, schema, { excludeIds, maxBadRows: options.maxBadRows, onProgress: progress?.onProgress });
  } finally {
    progress?.stop();
  }
  const summary = options.terminal ? badRowSummary(source.name, source.at, all.stats) : null;
  if (summary) process.stderr.write(`${summary}\n`);
  try {
    return { all, ...splitPartnerData(all, holdout, seed) };
  } catch (err) {
    if (err instanceof FedmarkError) throw new FedmarkError(err.code, `${source.name}: ${err.message}`, err.details);
    throw err;
  }
}

export function splitPartnerData(all: Dataset, holdout: number, seed: number): { train: Dataset; test: Dataset } {
  const split = trainTestSplit(all.y, holdout, seed);
  return { train: subsetDataset(all, split.train), test: subsetDataset(all, split.test) };
}

/** Options the demo and `simulate` share: which data, how it is split, and the job's privacy. */
export function withJobOptions(cmd: Command): Command {
  return cmd
    .option('--dataset <name>', 'bank (UCI bank marketing) or telco (IBM telco churn)', 'bank')
    .option('--partners <n>', 'number of data partners', '5')
    .option('--rounds <n>', 'training rounds', '20')
    .option('--seed <n>', 'seed of the split, partitioning and initialisation', '42')
    .option('--epsilon <e>', 'target ε per partner (DP-SGD)', '3')
    .option('--no-dp', 'train without differential privacy')
    .option('--insecure-plaintext', 'aggregate PLAINTEXT updates (benchmarks only: the coordinator can read them)', false)
    .option('--alpha <a>', 'Dirichlet label-skew concentration of the non-IID split', '1');
}

export const DATASET_ALIASES: Record<string, BundledDatasetName> = {
  bank: 'bank-marketing',
  'bank-marketing': 'bank-marketing',
  telco: 'telco-churn',
  'telco-churn': 'telco-churn',
};

/** Share of each partner's rows kept as its hold-out in the demo and simulations. */
export const PARTNER_HOLDOUT = 0.2;

export function partnerName(i: number): string {
  return `partner-${String.fromCharCode(97 + (i % 26))}${i >= 26 ? i : ''}`;
}

/**
 * A bundled dataset split across k partners with Dirichlet(α) label skew, and each partner's own
 * seeded train/hold-out split — exactly what the demo's partner nodes do with their CSVs.
 */
export async function bundledPartners(name: BundledDatasetName, k: number, alpha: number, seed: number) {
  const schema = await loadSchema(BUNDLED_DATASETS[name].schema);
  const full = await loadDataset(BUNDLED_DATASETS[name].csv, schema);
  const parts = partitionDirichlet(full.y, k, alpha, seed);
  const names = parts.map((_, i) => partnerName(i));
  const splits = parts.map((idx) => splitPartnerData(subsetDataset(full, idx), PARTNER_HOLDOUT, seed));
  return { schema, full, parts, names, splits };
}
