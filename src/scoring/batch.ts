/**
 * Batch scoring of a partner's customer file: stream the CSV, apply consent and withdrawal, score,
 * explain, rank, and write the scores — in memory that does not grow with the file.
 *
 * Two output modes:
 * - every scored row, in input order, with its decile: the deciles need the whole score
 *   distribution, so rows go to a temp file first and get their decile on a second sequential pass;
 * - `topK`: the k highest-ranked rows (by probability, or by expected value at risk = probability ×
 *   value), best first — the early-warning list.
 *
 * Named steps: `prepare` (columns, encoder), `scoreBatch` (one batch of rows → output records and
 * accumulators), `finish` (deciles, ranking, fairness, hashes).
 */
import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { createHash, randomBytes } from 'node:crypto';
import { FedmarkError } from '../errors.ts';
import { formatIssue, type RowIssue } from '../data/csv.ts';
import { parseNumber } from '../data/encode.ts';
import type { DatasetSchema } from '../data/schema.ts';
import { sensitiveGroups } from '../federation/job-presets.ts';
import { LoyaltyAccumulator, SelectionCounter, type LoyaltyOptions, type LoyaltyResult, type SelectionSegment } from './decision-fairness.ts';
import type { LoadedScoringModel } from './model.ts';
import { csvField, DecileCounter, formatProbability, quantize, TopK } from './ranking.ts';
import { ReasonCoder } from './reasons.ts';
import { readScoringRows, RowEncoder, type EncodedBatch } from './rows.ts';
import { sigmoid } from './scorer.ts';
import type { SidecarBuilder } from './sidecar-builder.ts';

export interface ScoreFileOptions {
  dataPath: string;
  outPath: string;
  schema: DatasetSchema;
  model: LoadedScoringModel;
  /** Reason codes per row (default 3; 0 = none, which skips the attribution work). */
  reasons?: number;
  topK?: number;
  valueColumn?: string;
  strict?: boolean;
  withdrawn?: ReadonlySet<string>;
  loyalty?: LoyaltyOptions;
  /** Salted hash of a customer id, for the data-subject sidecar. */
  hashId?: (id: string) => string;
  sidecar?: SidecarBuilder;
  onProgress?: (p: { bytes: number; totalBytes: number; rowsRead: number; scored: number }) => void;
  /**
   * Runs after the output is complete and hashed but before it appears under `outPath` (e.g. to
   * record the run in the ledger first: a crash in between then over-reports, never under-reports,
   * who was scored). If it throws, no output is published.
   */
  beforePublish?: (summary: ScoreRunSummary) => void | Promise<void>;
  now?: () => Date;
}

export interface ScoreRunSummary {
  model: {
    dir: string;
    kind: string;
    hash: string;
    jobId: string | null;
    purpose: string | null;
    baseValue: number;
    baseline: string;
    attribution: { method: string; exact: boolean; description: string; maxCompletenessGap: number; meanCompletenessGap: number };
  };
  input: { path: string; bytes: number; sha256: string };
  output: { path: string; sha256: string; rows: number; mode: 'all' | 'top-k' };
  rows: { read: number; scored: number; excludedNoConsent: number; excludedWithdrawn: number; rejected: number; clipped: Record<string, number> };
  rejectedExamples: string[];
  deciles: { sizes: number[]; lowestScore: (number | null)[] };
  meanProbability: number | null;
  topK: {
    k: number;
    selected: number;
    rankedBy: 'probability' | 'expected-value';
    valueColumn: string | null;
    rowsWithoutValue: number;
    expectedValueAtRisk: number | null;
  } | null;
  fairness: { selection: SelectionSegment[] } | null;
  loyalty: LoyaltyResult | null;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  rowsPerSecond: number;
}

interface OutputRow {
  q: number;
  /** id and probability fields (before the decile). */
  head: string;
  /** fields after the decile. */
  tail: string;
  groups: string[] | null;
}

/**
 * Pass-1 records: "q headLength tailLength\n" then the two strings. Lengths (not separators) frame
 * the strings, so customer text containing newlines or any other character cannot break them.
 */
function pass1Record(r: OutputRow): string {
  return `${r.q} ${r.head.length} ${r.tail.length}\n${r.head}${r.tail}`;
}

async function* readPass1(file: string): AsyncGenerator<{ q: number; head: string; tail: string }> {
  const decoder = new StringDecoder('utf8');
  let buf = '';
  let at = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    buf = buf.slice(at) + decoder.write(chunk as Buffer);
    at = 0;
    for (;;) {
      const nl = buf.indexOf('\n', at);
      if (nl < 0) break;
      const s1 = buf.indexOf(' ', at);
      const s2 = buf.indexOf(' ', s1 + 1);
      const q = Number(buf.slice(at, s1));
      const h = Number(buf.slice(s1 + 1, s2));
      const t = Number(buf.slice(s2 + 1, nl));
      if (nl + 1 + h + t > buf.length) break;
      const start = nl + 1;
      yield { q, head: buf.slice(start, start + h), tail: buf.slice(start + h, start + h + t) };
      at = start + h + t;
    }
  }
  if (at < buf.length) throw new FedmarkError('SCORING_TEMP_CORRUPT', `${file}: temporary file ends inside a record`);
}

function columnIndex(schema: DatasetSchema, name: string | undefined, what: string): number {
  if (name === undefined) return -1;
  const i = schema.columns.findIndex((c) => c.name === name);
  if (i < 0) {
    throw new FedmarkError('SCORING_UNKNOWN_COLUMN', `${what} "${name}" is not a column of schema "${schema.name}" (declare it, e.g. with role "ignore")`);
  }
  return i;
}

async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Writes `text` to fd in full, and into the running output hash. */
function writeAll(fd: number, text: string, hash?: ReturnType<typeof createHash>): void {
  const bytes = Buffer.from(text, 'utf8');
  hash?.update(bytes);
  for (let off = 0; off < bytes.length; ) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

export async function scoreFile(o: ScoreFileOptions): Promise<ScoreRunSummary> {
  const now = o.now ?? (() => new Date());
  const started = now();
  const t0 = performance.now();
  const { schema, model } = o;
  const scorer = model.scorer;
  const reasonsK = o.reasons ?? 3;
  if (!Number.isInteger(reasonsK) || reasonsK < 0 || reasonsK > 20) throw new FedmarkError('SCORING_BAD_OPTION', `reason codes per row must be 0..20, got ${o.reasons}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 1 && o.topK <= 10_000_000)) {
    throw new FedmarkError('SCORING_BAD_OPTION', `top-k must be an integer in 1..10,000,000, got ${o.topK}`);
  }
  // --- prepare
  const valueIndex = columnIndex(schema, o.valueColumn, 'value column');
  const offerIndex = columnIndex(schema, o.loyalty?.offerColumn, 'offer column');
  const tenureIndex = columnIndex(schema, o.loyalty?.tenureColumn, 'tenure column');
  const encoder = new RowEncoder(schema, { strict: o.strict ?? schema.strict ?? false, withdrawn: o.withdrawn, source: o.dataPath });
  const idName = encoder.idIndex >= 0 ? schema.columns[encoder.idIndex].name : 'line';
  const coder = new ReasonCoder(schema, model.baseline.x0);
  const declared = sensitiveGroups(schema);
  const segments = Object.keys(declared).sort();
  const selection = new SelectionCounter(declared);
  const loyalty = o.loyalty ? new LoyaltyAccumulator(o.loyalty) : null;
  const deciles = new DecileCounter();
  const top = o.topK !== undefined ? new TopK<OutputRow>(o.topK) : null;
  let totalBytes: number;
  try {
    totalBytes = fs.statSync(o.dataPath).size;
  } catch (err) {
    throw new FedmarkError('DATA_FILE_NOT_FOUND', `${o.dataPath}: cannot open data file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (path.resolve(o.outPath) === path.resolve(o.dataPath)) throw new FedmarkError('SCORING_BAD_OPTION', 'the output file must not be the input file');
  if (!fs.existsSync(path.dirname(path.resolve(o.outPath)))) throw new FedmarkError('SCORING_OUT_DIR', `the directory of ${o.outPath} does not exist`);
  // Hashed alongside the parse; a failure here surfaces as the parse's own clear error.
  const inputHash = fileSha256(o.dataPath).catch(() => null);

  const header = [
    ...(top ? ['rank'] : []),
    idName,
    'probability',
    'decile',
    ...(valueIndex >= 0 ? [schema.columns[valueIndex].name, 'expected_value'] : []),
    ...Array.from({ length: reasonsK }, (_, i) => [`reason_${i + 1}`, `reason_${i + 1}_logit`]).flat(),
  ].map(csvField).join(',');

  const outDir = path.dirname(path.resolve(o.outPath));
  const tmpTag = `${process.pid}.${randomBytes(4).toString('hex')}`;
  const pass1 = top ? null : path.join(outDir, `.${path.basename(o.outPath)}.${tmpTag}.pass1`);
  const partial = path.join(outDir, `.${path.basename(o.outPath)}.${tmpTag}.partial`);
  let pass1Fd = pass1 ? fs.openSync(pass1, 'wx', 0o600) : null;

  const counts = { read: 0, scored: 0, noConsent: 0, withdrawn: 0, rejected: 0 };
  const clipped: Record<string, number> = {};
  const rejectedExamples: string[] = [];
  let bytes = 0;
  let seq = 0;
  let sumP = 0;
  let gapMax = 0;
  let gapSum = 0;
  let valueMissing = 0;

  // --- one batch
  const scoreBatch = (enc: EncodedBatch): void => {
    const n = enc.n;
    if (n === 0) return;
    const z = scorer.logits(enc.X, n);
    const phi = reasonsK > 0 ? scorer.contributions(enc.X, n) : null;
    const d = scorer.d;
    let lines = '';
    // One function per batch (not a closure per row): the output fields of row i.
    const outputRow = (i: number, p: number, q: number, id: string, value: number | null, groups: string[] | null): OutputRow => {
      const row = enc.rows[i];
      let tail = '';
      if (valueIndex >= 0) tail += `,${csvField(row.values[valueIndex].trim())},${value === null ? '' : (p * value).toFixed(4)}`;
      if (phi) {
        const reasons = coder.top(phi.subarray(i * d, (i + 1) * d), enc.X.subarray(i * d, (i + 1) * d), row.values, reasonsK);
        for (let r = 0; r < reasonsK; r++) {
          const rc = reasons[r];
          tail += rc ? `,${csvField(rc.text)},${rc.contribution.toFixed(4)}` : ',,';
        }
      }
      return { q, head: `${csvField(id)},${formatProbability(p)}`, tail, groups };
    };
    for (let i = 0; i < n; i++) {
      const row = enc.rows[i];
      const p = sigmoid(z[i]);
      const q = quantize(p);
      deciles.add(q);
      sumP += p;
      const id = enc.ids ? enc.ids[i] : String(row.line);
      const groups = segments.length ? segments.map((s) => enc.sensitive[s][i]) : null;
      if (groups) for (let s = 0; s < segments.length; s++) selection.addScored(segments[s], groups[s]);
      if (enc.ids && o.sidecar && o.hashId) o.sidecar.add(o.hashId(id));
      if (loyalty) {
        const t = parseNumber(row.values[tenureIndex]);
        const off = parseNumber(row.values[offerIndex]);
        loyalty.add(p, t, off);
      }
      let value: number | null = null;
      if (valueIndex >= 0) {
        value = parseNumber(row.values[valueIndex]);
        if (value === null) valueMissing++;
      }
      const key = valueIndex >= 0 ? (value === null ? -Infinity : p * value) : p;
      if (phi) {
        let s = scorer.baseValue;
        for (let j = 0; j < d; j++) s += phi[i * d + j];
        const gap = Math.abs(s - z[i]);
        gapSum += gap;
        if (gap > gapMax) gapMax = gap;
      }
      const rowSeq = seq++;
      if (top && !top.wouldAccept(key, rowSeq)) continue;
      const r = outputRow(i, p, q, id, value, groups);
      if (top) top.offer(key, rowSeq, () => r);
      else lines += pass1Record(r);
    }
    if (pass1Fd !== null && lines) writeAll(pass1Fd, lines);
  };

  const keepRejected = (issues: RowIssue[]): void => {
    counts.rejected += issues.length;
    for (const issue of issues) if (rejectedExamples.length < 20) rejectedExamples.push(formatIssue(o.dataPath, issue));
  };

  let outSha = '';
  let outRows = 0;
  let summary: ScoreRunSummary | undefined;
  try {
    for await (const batch of readScoringRows(o.dataPath, schema)) {
      counts.read += batch.rows.length + batch.structural.length;
      bytes += batch.bytes;
      const enc = encoder.encode(batch.rows, batch.structural);
      counts.noConsent += enc.excludedNoConsent;
      counts.withdrawn += enc.excludedWithdrawn;
      counts.scored += enc.n;
      keepRejected(enc.rejected);
      for (const [k, v] of Object.entries(enc.clipped)) clipped[k] = (clipped[k] ?? 0) + v;
      scoreBatch(enc);
      o.onProgress?.({ bytes: Math.min(bytes, totalBytes), totalBytes, rowsRead: counts.read, scored: counts.scored });
    }
    // --- finish: deciles, ranking, output
    const outFd = fs.openSync(partial, 'wx', 0o600);
    const outHash = createHash('sha256');
    try {
      writeAll(outFd, header + '\n', outHash);
      if (top) {
        const ranked = top.sorted();
        let text = '';
        ranked.forEach((r, i) => {
          text += `${i + 1},${r.item.head},${deciles.decile(r.item.q)}${r.item.tail}\n`;
          if (r.item.groups) r.item.groups.forEach((g, s) => selection.addSelected(segments[s], g));
        });
        writeAll(outFd, text, outHash);
        outRows = ranked.length;
      } else {
        fs.closeSync(pass1Fd!);
        pass1Fd = null;
        let text = '';
        for await (const r of readPass1(pass1!)) {
          text += `${r.head},${deciles.decile(r.q)}${r.tail}\n`;
          outRows++;
          if (text.length > 1 << 20) {
            writeAll(outFd, text, outHash);
            text = '';
          }
        }
        writeAll(outFd, text, outHash);
      }
      fs.fsyncSync(outFd);
    } finally {
      fs.closeSync(outFd);
    }
    outSha = outHash.digest('hex');
    summary = await summarize();
    await o.beforePublish?.(summary);
    fs.renameSync(partial, o.outPath);
  } catch (err) {
    o.sidecar?.abort();
    fs.rmSync(partial, { force: true });
    throw err;
  } finally {
    if (pass1Fd !== null) fs.closeSync(pass1Fd);
    if (pass1) fs.rmSync(pass1, { force: true });
  }

  return summary!;

  async function summarize(): Promise<ScoreRunSummary> {
    const finished = now();
    const seconds = (performance.now() - t0) / 1000;
    const topRows = top ? top.sorted() : [];
    return {
      model: {
        dir: model.dir,
        kind: scorer.kind,
        hash: model.modelHash,
        jobId: model.provenance.jobId,
        purpose: model.provenance.purpose,
        baseValue: scorer.baseValue,
        baseline: model.baseline.description,
        attribution: {
          method: scorer.attribution.method,
          exact: scorer.attribution.exact,
          description: scorer.attribution.description,
          maxCompletenessGap: gapMax,
          meanCompletenessGap: counts.scored && reasonsK > 0 ? gapSum / counts.scored : 0,
        },
      },
      input: { path: o.dataPath, bytes: totalBytes, sha256: (await inputHash) ?? '' },
      output: { path: o.outPath, sha256: outSha, rows: outRows, mode: top ? 'top-k' : 'all' },
      rows: { read: counts.read, scored: counts.scored, excludedNoConsent: counts.noConsent, excludedWithdrawn: counts.withdrawn, rejected: counts.rejected, clipped },
      rejectedExamples,
      deciles: { sizes: counts.scored ? deciles.sizes() : new Array(10).fill(0), lowestScore: counts.scored ? deciles.cutoffs() : new Array(10).fill(null) },
      meanProbability: counts.scored ? sumP / counts.scored : null,
      topK: top
        ? {
            k: top.k,
            selected: topRows.length,
            rankedBy: valueIndex >= 0 ? 'expected-value' : 'probability',
            valueColumn: o.valueColumn ?? null,
            rowsWithoutValue: valueMissing,
            expectedValueAtRisk: valueIndex >= 0 ? topRows.reduce((a, r) => a + (Number.isFinite(r.key) ? r.key : 0), 0) : null,
          }
        : null,
      fairness: top && segments.length ? { selection: selection.result() } : null,
      loyalty: loyalty ? loyalty.result() : null,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      seconds,
      rowsPerSecond: seconds > 0 ? counts.read / seconds : 0,
    };
  }
}
