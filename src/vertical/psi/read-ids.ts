/**
 * Reading a party's customer ids from its CSV: the spec's id column, one raw cell per data row, in
 * file order (row i of the PSI result is data row i of the file). Streams with csv.ts, so quoting,
 * BOM and CRLF behave as for training data; a dataset schema, when given, must declare the column
 * with role "id" (the column PSI aligns on is never a model input).
 */
import { readCsvBatches, shorten } from '../../data/csv.ts';
import type { DatasetSchema } from '../../data/schema.ts';
import { FedmarkError } from '../../errors.ts';
import type { PsiSpec } from './spec.ts';

export interface PsiIdFile {
  ids: string[];
  /** File line of each data row (for reporting an id that cannot be normalised). */
  lines: Int32Array;
}

export async function readPsiIds(
  path: string,
  spec: Pick<PsiSpec, 'jobId'> & { id: Pick<PsiSpec['id'], 'column'> },
  options: { delimiter?: ',' | ';'; schema?: DatasetSchema } = {},
): Promise<PsiIdFile> {
  const column = spec.id.column;
  if (options.schema) {
    const declared = options.schema.columns.find((c) => c.name === column);
    if (!declared || declared.role !== 'id') {
      throw new FedmarkError('PSI_ID_COLUMN', `schema "${options.schema.name}" must declare column "${column}" with role "id" for PSI job ${spec.jobId}`);
    }
  }
  const ids: string[] = [];
  const lines: number[] = [];
  let at = -1;
  let width = 0;
  for await (const batch of readCsvBatches(path, options.delimiter ?? options.schema?.delimiter ?? ',')) {
    for (const rec of batch) {
      if (at < 0) {
        at = rec.fields.findIndex((f) => f.trim() === column);
        if (at < 0)
          throw new FedmarkError(
            'PSI_ID_COLUMN',
            `${path}:1: no column "${column}" in the header (${rec.fields.map((f) => `"${shorten(f, 30)}"`).join(', ')})`,
          );
        width = rec.fields.length;
        continue;
      }
      if (rec.fields.length !== width) {
        throw new FedmarkError('DATA_CSV_MALFORMED', `${path}:${rec.line}: expected ${width} fields, found ${rec.fields.length}`, { line: rec.line });
      }
      ids.push(rec.fields[at]);
      lines.push(rec.line);
    }
  }
  if (at < 0) throw new FedmarkError('DATA_EMPTY_FILE', `${path}: no header row`);
  return { ids, lines: Int32Array.from(lines) };
}
