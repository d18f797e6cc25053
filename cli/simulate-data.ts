/**
 * `fedmark simulate --data`: the user's own file (CSV or Parquet, as `--data` takes it elsewhere)
 * split into simulated partners, either by the value of one column (natural silos: region, branch,
 * job…) or by a seeded Dirichlet(α) label-skew split. Each partner then keeps its own seeded hold-out,
 * exactly as the bundled datasets do, so the federated, pooled and partner-alone models are all
 * scored on the same pooled hold-out.
 */
import { existsSync } from 'node:fs';
import { FedmarkError } from '../src/errors.ts';
import { subsetDataset, type Dataset } from '../src/data/encode.ts';
import { loadSource } from '../src/data/load.ts';
import { partitionByColumnGroups, partitionDirichlet } from '../src/data/partition.ts';
import { isFeature, isTypedColumn, loadSchema, type DatasetSchema } from '../src/data/schema.ts';
import { isDatabaseUrl, resolveDataSource } from '../src/data/sources/index.ts';
import { partnerName, PARTNER_HOLDOUT, splitPartnerData } from './partner-data.ts';

/** More partners than this in one process is a mistake (an id-like column), not a federation. */
export const MAX_SIMULATED_PARTNERS = 50;
/** Fewest rows a simulated partner may hold: below this its hold-out and "alone" model mean nothing. */
export const MIN_PARTNER_ROWS = 50;

export type SplitSpec = { by: 'column'; column: string } | { by: 'dirichlet'; partners: number; alpha: number };

export interface UserPartners {
  schema: DatasetSchema;
  names: string[];
  splits: { train: Dataset; test: Dataset }[];
  /** What each partner holds: its column values (--partition-by), or its share of positive labels (Dirichlet). */
  describe: string[];
}

async function readSchema(path: string): Promise<DatasetSchema> {
  if (!existsSync(path)) throw new FedmarkError('CLI_SCHEMA_NOT_FOUND', `--schema ${path}: no such file`);
  return loadSchema(path);
}

/**
 * The schema used for loading: the partition column is marked sensitive, so the loader keeps each
 * row's group (declared value, "<other>" or band label) without changing whether it is a model input.
 */
function schemaKeepingGroups(schema: DatasetSchema, column: string): DatasetSchema {
  const c = schema.columns.find((x) => x.name === column);
  const names = schema.columns.map((x) => x.name).join(', ');
  if (!c) throw new FedmarkError('CLI_PARTITION_COLUMN', `--partition-by ${column}: schema "${schema.name}" has no such column (columns: ${names})`);
  if (!isTypedColumn(c))
    throw new FedmarkError(
      'CLI_PARTITION_COLUMN',
      `--partition-by ${column}: a ${c.role} column cannot define partners; use a categorical, boolean or banded numeric column`,
    );
  if (c.type === 'numeric' && !c.groups)
    throw new FedmarkError(
      'CLI_PARTITION_COLUMN',
      `--partition-by ${column}: numeric column without declared bands ("groups" in the schema); partition by a categorical column or declare its bands`,
    );
  return { ...schema, columns: schema.columns.map((x) => (x === c ? { ...c, sensitive: true, feature: isFeature(c) } : x)) };
}

function checkSizes(parts: Int32Array[], labels: string[], what: string): void {
  if (parts.length < 2) throw new FedmarkError('CLI_PARTITION_TOO_FEW', `${what} gives ${parts.length} partner; a federation needs at least 2`);
  if (parts.length > MAX_SIMULATED_PARTNERS)
    throw new FedmarkError('CLI_PARTITION_TOO_MANY', `${what} gives ${parts.length} partners; at most ${MAX_SIMULATED_PARTNERS} can be simulated`);
  const small = parts.map((p, i) => [labels[i], p.length] as const).filter(([, n]) => n < MIN_PARTNER_ROWS);
  if (small.length)
    throw new FedmarkError(
      'CLI_PARTITION_TOO_SMALL',
      `${what}: partner(s) below ${MIN_PARTNER_ROWS} rows: ${small.map(([l, n]) => `${l} (${n})`).join(', ')}; merge or drop them, or use fewer partners`,
    );
}

export async function userPartners(data: string, schemaPath: string, split: SplitSpec, seed: number): Promise<UserPartners> {
  if (!isDatabaseUrl(data) && !existsSync(data)) throw new FedmarkError('CLI_DATA_NOT_FOUND', `--data ${data}: no such file or directory`);
  const schema = await readSchema(schemaPath);
  const loadWith = split.by === 'column' ? schemaKeepingGroups(schema, split.column) : schema;
  let all: Dataset;
  try {
    all = await loadSource(resolveDataSource({ data }), loadWith);
  } catch (err) {
    if (err instanceof FedmarkError && /^DATA_(HEADER_MISMATCH|CSV_MALFORMED|COLUMN_TYPE|BAD_ROW|TOO_MANY_BAD_ROWS|NO_ROWS)$/.test(err.code))
      throw new FedmarkError('CLI_DATA_SCHEMA_MISMATCH', `--data does not fit --schema: ${err.message}`, { dataCode: err.code });
    throw err;
  }
  let parts: Int32Array[];
  let describe: string[];
  if (split.by === 'column') {
    const g = partitionByColumnGroups(all.sensitive[split.column]);
    parts = g.partitions;
    describe = g.groups.map((gs) => gs.join('+'));
    checkSizes(parts, describe, `--partition-by ${split.column}`);
  } else {
    if (!(split.alpha > 0) || !Number.isFinite(split.alpha)) throw new FedmarkError('CLI_ALPHA', `--alpha must be a number > 0, got ${split.alpha}`);
    if (!Number.isInteger(split.partners) || split.partners < 2)
      throw new FedmarkError('CLI_PARTNERS', `--partners must be an integer ≥ 2, got ${split.partners}`);
    parts = partitionDirichlet(all.y, split.partners, split.alpha, seed);
    describe = parts.map((p) => {
      let pos = 0;
      for (const i of p) pos += all.y[i];
      return `${((100 * pos) / p.length).toFixed(1)} % positive`;
    });
    checkSizes(
      parts,
      parts.map((_, i) => partnerName(i)),
      `--partners ${split.partners} --alpha ${split.alpha} on ${all.n} rows`,
    );
  }
  const names = parts.map((_, i) => partnerName(i));
  const splits = parts.map((idx) => splitPartnerData(subsetDataset(all, idx), PARTNER_HOLDOUT, seed));
  return { schema, names, splits, describe };
}
