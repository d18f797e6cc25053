/** The temp file of batch scoring's all-rows mode (./batch.ts): output rows written before their deciles are known. */
import fs from 'node:fs';
import { FedmarkError } from '../errors.ts';

/**
 * The pass-1 temp file holds every output row without its decile, a batch per record:
 * u32 rows, u32 text bytes, then per row u32 q and u32 the byte offset where the decile goes,
 * then the batch's output text (UTF-8). Pass 2 copies the bytes and inserts the deciles, without
 * decoding a single string: customer text of any kind cannot break the framing.
 */
export function pass1Batch(text: string, qs: Uint32Array, marks: Uint32Array, rows: number): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length !== text.length) {
    // Non-ASCII text: character offsets are not byte offsets.
    let at = 0;
    let prevChar = 0;
    for (let r = 0; r < rows; r++) {
      at += Buffer.byteLength(text.slice(prevChar, marks[r]), 'utf8');
      prevChar = marks[r];
      marks[r] = at;
    }
  }
  const head = Buffer.allocUnsafe(8 + 8 * rows);
  head.writeUInt32LE(rows, 0);
  head.writeUInt32LE(bytes.length, 4);
  for (let r = 0; r < rows; r++) {
    head.writeUInt32LE(qs[r], 8 + 8 * r);
    head.writeUInt32LE(marks[r], 12 + 8 * r);
  }
  return Buffer.concat([head, bytes]);
}

const DECILE_TEXT = Array.from({ length: 11 }, (_, k) => Buffer.from(`,${k}`, 'latin1'));

/** Pass 2: the output rows of the pass-1 file with their deciles, handed out in ~1 MiB buffers. */
export async function pass2(file: string, decile: (q: number) => number, write: (bytes: Buffer) => void): Promise<number> {
  const fd = fs.openSync(file, 'r');
  let rows = 0;
  try {
    const head = Buffer.allocUnsafe(8);
    let pos = 0;
    for (;;) {
      if (fs.readSync(fd, head, 0, 8, pos) < 8) break;
      const n = head.readUInt32LE(0);
      const textBytes = head.readUInt32LE(4);
      const body = Buffer.allocUnsafe(8 * n + textBytes);
      if (fs.readSync(fd, body, 0, body.length, pos + 8) !== body.length)
        throw new FedmarkError('SCORING_TEMP_CORRUPT', `${file}: temporary file ends inside a batch`);
      pos += 8 + body.length;
      const text = body.subarray(8 * n);
      let size = textBytes;
      for (let r = 0; r < n; r++) size += DECILE_TEXT[decile(body.readUInt32LE(8 * r))].length;
      const out = Buffer.allocUnsafe(size);
      let prev = 0;
      let at = 0;
      for (let r = 0; r < n; r++) {
        const mark = body.readUInt32LE(8 * r + 4);
        at += text.copy(out, at, prev, mark);
        at += DECILE_TEXT[decile(body.readUInt32LE(8 * r))].copy(out, at);
        prev = mark;
      }
      text.copy(out, at, prev);
      write(out);
      rows += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return rows;
}
