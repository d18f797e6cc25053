/**
 * A party's rows for a vertical job, from its own CSV, its own schema and its PSI alignment file
 * (`position,row,id`, written by the PSI node): its encoded columns of the aligned customers in the
 * common order (row i is the i-th common customer at every party), with the labels at the label holder.
 *
 * A feature holder's schema has no label column; the data layer's schemas require one, so a party
 * schema without one gets a synthetic constant label (never read, never sent). Every row must load
 * (`strict`): the alignment refers to file rows, and a skipped row would shift every later one.
 */
import { readFileSync } from 'node:fs';
import { readCsvBatches } from '../data/csv.ts';
import { encodeRows } from '../data/encode.ts';
import { parseSchema, type DatasetSchema } from '../data/schema.ts';
import { FedmarkError } from '../errors.ts';
import { featureLayout } from '../trees/layout.ts';
import type { PartyRows } from './secureboost/rows.ts';

const NO_LABEL = '__fedmark_no_label';

/** A party's schema file: as is when it declares a label, else with the synthetic label column. */
export function verticalPartySchema(raw: unknown, source = 'schema'): { schema: DatasetSchema; labelled: boolean } {
  const cols = (raw as { columns?: { role?: string }[] } | null)?.columns;
  const labelled = Array.isArray(cols) && cols.some((c) => c?.role === 'label');
  if (labelled || !Array.isArray(cols)) return { schema: parseSchema(raw, source), labelled };
  return {
    schema: parseSchema({ ...(raw as object), columns: [...cols, { name: NO_LABEL, role: 'label', positive: ['1'], negative: ['0'] }] }, source),
    labelled: false,
  };
}

export function loadVerticalPartySchema(path: string): { schema: DatasetSchema; labelled: boolean } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FedmarkError('SCHEMA_INVALID', `${path}: ${(err as Error).message}`);
  }
  return verticalPartySchema(raw, path);
}

export interface Alignment {
  psiJobId: string;
  orderDigest: string;
  size: number;
  /** Position → the first file row (0-based data row) of that common customer. */
  rowOf: Int32Array;
}

export function readAlignment(path: string): Alignment {
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  const head = /^# fedmark-psi-alignment\/1 job=(\S+) intersection=(\d+) order=([0-9a-f]{64})$/.exec(lines[0] ?? '');
  if (!head || lines[1] !== 'position,row,id')
    throw new FedmarkError('VERTICAL_BAD_ALIGNMENT', `${path}: not a fedmark PSI alignment file (fedmark psi party writes one)`);
  const size = Number(head[2]);
  const rowOf = new Int32Array(size).fill(-1);
  for (let k = 2; k < lines.length; k++) {
    const [pos, row] = lines[k].split(',', 2).map(Number);
    if (!(Number.isInteger(pos) && pos >= 0 && pos < size && Number.isInteger(row) && row >= 0))
      throw new FedmarkError('VERTICAL_BAD_ALIGNMENT', `${path}:${k + 1}: bad position or row`);
    if (rowOf[pos] < 0) rowOf[pos] = row;
  }
  const missing = rowOf.indexOf(-1);
  if (missing >= 0) throw new FedmarkError('VERTICAL_BAD_ALIGNMENT', `${path}: position ${missing} of ${size} has no row`);
  return { psiJobId: head[1], orderDigest: head[3], size, rowOf };
}

/** The party's aligned rows: every file row loaded (strict), then picked in the common order. */
export async function loadAlignedRows(
  csvPath: string,
  party: { schema: DatasetSchema; labelled: boolean },
  alignment: Alignment,
): Promise<PartyRows & { y?: Float32Array }> {
  const { schema, labelled } = party;
  const records: Record<string, string>[] = [];
  let header: string[] | null = null;
  for await (const batch of readCsvBatches(csvPath, schema.delimiter ?? ',')) {
    for (const rec of batch) {
      if (!header) {
        header = rec.fields.map((f) => f.trim());
        continue;
      }
      const r: Record<string, string> = {};
      header.forEach((h, i) => (r[h] = rec.fields[i]));
      if (!labelled) r[NO_LABEL] = '0';
      records.push(r);
    }
  }
  const ds = encodeRows(schema, records, { source: csvPath, strict: true });
  const layout = featureLayout(schema);
  const d = layout.d;
  const X = new Float32Array(alignment.size * d);
  const y = new Float32Array(alignment.size);
  alignment.rowOf.forEach((r, i) => {
    if (r >= ds.n) throw new FedmarkError('VERTICAL_BAD_ALIGNMENT', `the alignment names data row ${r} of ${csvPath}, which has ${ds.n}`);
    X.set(ds.X.subarray(r * d, (r + 1) * d), i * d);
    y[i] = ds.y[r];
  });
  return labelled ? { layout, X, n: alignment.size, y } : { layout, X, n: alignment.size };
}
