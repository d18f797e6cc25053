/**
 * Parquet files as a data source, read with hyparquet (pure JavaScript, no native build, reads the
 * codecs warehouses write: snappy built in, gzip / zstd / brotli / lz4 through hyparquet-compressors).
 * A path may be one file or a directory of `*.parquet` parts (a warehouse export), read in name
 * order. Only the declared, non-ignored columns are read — Parquet is columnar, so the others never
 * leave the disk — one row group at a time, so memory holds one row group's columns at most.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { asyncBufferFromFile, parquetMetadataAsync, parquetScan, parquetSchema, type AsyncBuffer, type FileMetaData, type SchemaElement } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { FedmarkError } from '../../errors.ts';
import { ValueCells } from '../cells.ts';
import { matchColumns } from '../csv.ts';
import type { DatasetSchema } from '../schema.ts';
import { checkColumnKinds, type DataSource, type ValueKind } from './source.ts';

/** File names of a Parquet data path: the file itself, or the `*.parquet` files of a directory. */
async function parquetFiles(path: string): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FedmarkError(code === 'ENOENT' ? 'DATA_FILE_NOT_FOUND' : 'DATA_FILE_UNREADABLE', `${path}: cannot open data file (${(err as Error).message})`);
  }
  if (info.isFile()) return [path];
  if (!info.isDirectory()) throw new FedmarkError('DATA_FILE_UNREADABLE', `${path}: not a regular file or directory`);
  const files = (await readdir(path)).filter((f) => /\.(parquet|parq|pq)$/i.test(f)).sort();
  if (files.length === 0) throw new FedmarkError('DATA_FILE_NOT_FOUND', `${path}: directory holds no *.parquet files`);
  return files.map((f) => join(path, f));
}

async function openParquet(file: string): Promise<{ buffer: AsyncBuffer; metadata: FileMetaData }> {
  let buffer: AsyncBuffer;
  try {
    buffer = await asyncBufferFromFile(file);
  } catch (err) {
    throw new FedmarkError('DATA_FILE_UNREADABLE', `${file}: cannot open data file (${(err as Error).message})`);
  }
  if (buffer.byteLength === 0) throw new FedmarkError('DATA_EMPTY_FILE', `${file}: file is empty`);
  try {
    return { buffer, metadata: await parquetMetadataAsync(buffer) };
  } catch (err) {
    throw new FedmarkError('DATA_PARQUET_INVALID', `${file}: not a readable Parquet file (${(err as Error).message})`);
  }
}

/** How a top-level Parquet column stores its values. */
export function parquetKind(element: SchemaElement, nested: boolean): ValueKind {
  if (nested || element.repetition_type === 'REPEATED') return { other: 'a nested or repeated field' };
  const logical = element.logical_type?.type;
  const converted = element.converted_type;
  const dateLike = ['DATE', 'TIME_MILLIS', 'TIME_MICROS', 'TIMESTAMP_MILLIS', 'TIMESTAMP_MICROS'];
  if (logical === 'DATE' || logical === 'TIME' || logical === 'TIMESTAMP' || (converted && dateLike.includes(converted))) {
    return { other: `${logical ?? converted} (a date or time)` };
  }
  if (converted === 'DECIMAL' || logical === 'DECIMAL' || logical === 'FLOAT16') return 'number';
  switch (element.type) {
    case 'BOOLEAN':
      return 'boolean';
    case 'INT32':
    case 'INT64':
      return 'integer';
    case 'FLOAT':
    case 'DOUBLE':
      return 'number';
    case 'BYTE_ARRAY':
      if (converted === 'JSON' || converted === 'BSON' || logical === 'JSON' || logical === 'BSON' || logical === 'GEOMETRY' || logical === 'GEOGRAPHY') {
        return { other: String(logical ?? converted) };
      }
      return 'text';
    default:
      return { other: `${element.type}${logical ? ` ${logical}` : ''}` };
  }
}

export function parquetSource(path: string): DataSource {
  /** First global row of each file read so far, for `at`. */
  const firstRows: number[] = [];
  let files: string[] = [];
  return {
    kind: 'Parquet',
    name: path,
    progressUnit: 'rows',
    at(line) {
      let f = firstRows.length - 1;
      while (f > 0 && firstRows[f] >= line) f--;
      return `${files[f] ?? path} row ${line - (firstRows[f] ?? 0)}`;
    },
    async read(schema: DatasetSchema, sink, progress) {
      files = await parquetFiles(path);
      const opened = [];
      for (const file of files) opened.push({ file, ...(await openParquet(file)) });
      const total = opened.reduce((a, o) => a + Number(o.metadata.num_rows), 0);
      sink.expect(total);
      const read = schema.columns.filter((c) => c.role !== 'ignore').map((c) => c.name);
      const slots = read.map((name) => schema.columns.findIndex((c) => c.name === name));
      const width = schema.columns.length;
      const row = new Array<unknown>(width);
      const cells = new ValueCells(Int32Array.from(schema.columns, (_, i) => i));
      let line = 0;
      for (const { file, buffer, metadata } of opened) {
        firstRows.push(line);
        const top = parquetSchema(metadata).children;
        matchColumns(top.map((c) => c.element.name), schema, file, 'column list');
        const byName = new Map(top.map((c) => [c.element.name, c]));
        checkColumnKinds(
          schema,
          schema.columns.map((c) => {
            const col = byName.get(c.name)!;
            return parquetKind(col.element, col.children.length > 0);
          }),
          file,
          'the Parquet file',
        );
        const scan = await parquetScan({ file: buffer, metadata, columns: read, compressors });
        for (const { rowStart, rowEnd } of scan.ranges) {
          let data: ArrayLike<unknown>[];
          try {
            data = await Promise.all(read.map((column) => scan.readColumn({ column, rowStart, rowEnd })));
          } catch (err) {
            throw new FedmarkError('DATA_PARQUET_INVALID', `${file}: cannot decode rows ${rowStart + 1}–${rowEnd} (${(err as Error).message})`);
          }
          const count = rowEnd - rowStart;
          for (let r = 0; r < count; r++) {
            for (let k = 0; k < slots.length; k++) row[slots[k]] = data[k][r];
            cells.set(row);
            sink.row(cells, ++line);
          }
          progress(line, total);
        }
      }
    },
  };
}
