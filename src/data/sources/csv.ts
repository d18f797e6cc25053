/** A CSV file as a data source: the byte tokenizer, the header matched against the schema, byte cells. */
import { ByteCells } from '../cells.ts';
import { CsvFileReader, countLines, decodeFields, fieldCountIssue, matchHeader } from '../csv.ts';
import type { RecordSink } from '../csv-tokenizer.ts';
import { FedmarkError } from '../../errors.ts';
import type { DatasetSchema } from '../schema.ts';
import type { DataSource, RowSink } from './source.ts';

export function csvSource(path: string): DataSource {
  return {
    kind: 'CSV',
    name: path,
    progressUnit: 'bytes',
    at: (line) => `${path}:${line}`,
    async read(schema: DatasetSchema, sink: RowSink, progress) {
      // One pass of memchr over the file bounds the rows, so the arrays are allocated once.
      sink.expect(await countLines(path));
      const reader = await CsvFileReader.open(path, schema.delimiter ?? ',');
      let map: Int32Array | null = null;
      let width = 0;
      let cells: ByteCells | null = null;
      const records: RecordSink = (buf, starts, ends, count, line) => {
        if (!map) {
          map = matchHeader(decodeFields(buf, starts, ends, count), schema, path);
          width = count;
          cells = new ByteCells(map);
          return;
        }
        if (count !== width) {
          sink.structural(fieldCountIssue(line, count, width, map, schema, () => buf.toString('utf8', starts[width], ends[width])));
          return;
        }
        cells!.set(buf, starts, ends);
        sink.row(cells!, line);
      };
      try {
        while (await reader.next(records)) progress(reader.bytesRead, reader.size);
      } finally {
        await reader.close();
      }
      if (!map) throw new FedmarkError('DATA_EMPTY_FILE', `${path}: no header row`);
    },
  };
}
