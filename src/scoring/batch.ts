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
import { createHash, randomBytes } from 'node:crypto';
import { FedmarkError } from '../errors.ts';
import { formatIssueAt } from '../data/bad-rows.ts';
import type { BadRowLimit } from '../data/dataset.ts';
import { parseNumber } from '../data/encode.ts';
import type { DatasetSchema } from '../data/schema.ts';
import { sensitiveGroups } from '../federation/job-presets.ts';
import { LoyaltyAccumulator, SelectionCounter, type LoyaltyOptions, type LoyaltyResult, type SelectionSegment } from './decision-fairness.ts';
import type { LoadedScoringModel } from './model.ts';
import { csvField, DecileCounter, formatFixed4, formatProbability, quantize, TopK } from './ranking.ts';
import { ReasonCoder } from './reasons.ts';
import { readScoringBatches, SCORING_BATCH_ROWS, ScoringEncoder, type ScoringBatch } from './rows.ts';
import { sigmoid } from './scorer.ts';
import type { SidecarBuilder } from './sidecar-builder.ts';
import { ScoringPipeline } from './batch-threads.ts';
import { pass1Batch, pass2 } from './pass-file.ts';
import type { BatchScores } from './score-task.ts';
import { threadMinRows, workerThreads } from '../util/worker-pool.ts';

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
  /** Non-strict runs fail above this many bad rows (default: as loading, 1 % of the rows). */
  maxBadRows?: BadRowLimit;
  withdrawn?: ReadonlySet<string>;
  loyalty?: LoyaltyOptions;
  /** Salted hash of a customer id, for the data-subject sidecar. */
  hashId?: (id: string) => string;
  sidecar?: SidecarBuilder;
  onProgress?: (p: { bytes: number; totalBytes: number; rowsRead: number; scored: number }) => void;
  /** Threads for the logits and reason codes (default FEDMARK_THREADS, else every core; 1: none), used from `threadMinRows` rows (default FEDMARK_THREAD_MIN_ROWS, else 100,000). */
  threads?: number;
  threadMinRows?: number;
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
  /** Sensitive group codes (ScoringEncoder.sensitive order). */
  groups: number[] | null;
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

/** Writes `bytes` to fd in full, and into the running output hash. */
function writeAll(fd: number, bytes: Buffer, hash?: ReturnType<typeof createHash>): void {
  hash?.update(bytes);
  for (let off = 0; off < bytes.length;) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

export async function scoreFile(o: ScoreFileOptions): Promise<ScoreRunSummary> {
  const now = o.now ?? (() => new Date());
  const started = now();
  const t0 = performance.now();
  const { schema, model } = o;
  const scorer = model.scorer;
  const reasonsK = o.reasons ?? 3;
  if (!Number.isInteger(reasonsK) || reasonsK < 0 || reasonsK > 20)
    throw new FedmarkError('SCORING_BAD_OPTION', `reason codes per row must be 0..20, got ${o.reasons}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 1 && o.topK <= 10_000_000)) {
    throw new FedmarkError('SCORING_BAD_OPTION', `top-k must be an integer in 1..10,000,000, got ${o.topK}`);
  }
  // --- prepare
  const valueIndex = columnIndex(schema, o.valueColumn, 'value column');
  const offerIndex = columnIndex(schema, o.loyalty?.offerColumn, 'offer column');
  const tenureIndex = columnIndex(schema, o.loyalty?.tenureColumn, 'tenure column');
  const encoder = new ScoringEncoder(schema, {
    strict: o.strict ?? schema.strict ?? false,
    withdrawn: o.withdrawn,
    where: { name: o.dataPath, at: (line) => `${o.dataPath}:${line}` },
    maxBadRows: o.maxBadRows,
  });
  const idName = encoder.idIndex >= 0 ? schema.columns[encoder.idIndex].name : 'line';
  const coder = new ReasonCoder(schema, model.baseline.x0);
  const selection = new SelectionCounter(sensitiveGroups(schema));
  const segments = encoder.sensitive;
  const scoredByGroup = segments.map((s) => new Float64Array(s.groups.length));
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
  ]
    .map(csvField)
    .join(',');

  const outDir = path.dirname(path.resolve(o.outPath));
  const tmpTag = `${process.pid}.${randomBytes(4).toString('hex')}`;
  const pass1 = top ? null : path.join(outDir, `.${path.basename(o.outPath)}.${tmpTag}.pass1`);
  const partial = path.join(outDir, `.${path.basename(o.outPath)}.${tmpTag}.partial`);
  let pass1Fd = pass1 ? fs.openSync(pass1, 'wx', 0o600) : null;

  let seq = 0;
  let sumP = 0;
  let gapMax = 0;
  let gapSum = 0;
  let valueMissing = 0;
  const d = scorer.d;
  const qs = new Uint32Array(SCORING_BATCH_ROWS);
  const marks = new Uint32Array(SCORING_BATCH_ROWS);

  // --- one batch: scores, reasons, accumulators, and the rows' output text
  const consumeBatch = (b: ScoringBatch, { z, phi }: BatchScores): void => {
    const n = b.n;
    const X = b.X.subarray(0, n * d);
    // The rows' output fields after the decile (value, expected value, reasons).
    const tailOf = (i: number, p: number, value: number | null): string => {
      let tail = '';
      if (valueIndex >= 0) tail += `,${csvField(b.text(i, valueIndex))},${value === null ? '' : formatFixed4(p * value)}`;
      if (phi) {
        const reasons = coder.top(phi, X, i * d, (column) => b.text(i, column), reasonsK);
        for (let r = 0; r < reasonsK; r++) {
          const rc = reasons[r];
          tail += rc ? `,${csvField(rc.text)},${formatFixed4(rc.contribution)}` : ',,';
        }
      }
      return tail;
    };
    let text = '';
    let rows = 0;
    for (let i = 0; i < n; i++) {
      const p = sigmoid(z[i]);
      const q = quantize(p);
      deciles.add(q);
      sumP += p;
      const id = encoder.idIndex >= 0 ? b.ids[i] : String(b.lines[i]);
      for (let s = 0; s < segments.length; s++) scoredByGroup[s][b.groups[s][i]]++;
      if (o.sidecar && o.hashId && encoder.idIndex >= 0) o.sidecar.add(o.hashId(id));
      if (loyalty) loyalty.add(p, parseNumber(b.text(i, tenureIndex)), parseNumber(b.text(i, offerIndex)));
      let value: number | null = null;
      if (valueIndex >= 0) {
        value = parseNumber(b.text(i, valueIndex));
        if (value === null) valueMissing++;
      }
      if (phi) {
        let sum = scorer.baseValue;
        for (let j = i * d, end = j + d; j < end; j++) sum += phi[j];
        const gap = Math.abs(sum - z[i]);
        gapSum += gap;
        if (gap > gapMax) gapMax = gap;
      }
      const rowSeq = seq++;
      const head = `${csvField(id)},${formatProbability(p)}`;
      if (top) {
        const key = valueIndex >= 0 ? (value === null ? -Infinity : p * value) : p;
        if (!top.wouldAccept(key, rowSeq)) continue;
        const groups = segments.length ? segments.map((_, s) => b.groups[s][i]) : null;
        const row: OutputRow = { q, head, tail: tailOf(i, p, value), groups };
        top.offer(key, rowSeq, () => row);
      } else {
        text += head;
        qs[rows] = q;
        marks[rows] = text.length;
        text += `${tailOf(i, p, value)}\n`;
        rows++;
      }
    }
    if (pass1Fd !== null && rows) writeAll(pass1Fd, pass1Batch(text, qs, marks, rows));
  };
  // Large files: logits and reasons on worker threads, batches consumed in file order (./batch-threads.ts).
  const threads = o.threads ?? workerThreads();
  const minRows = o.threadMinRows ?? threadMinRows();
  const pipeline = threads > 1 ? new ScoringPipeline(threads, model, schema, reasonsK > 0, consumeBatch) : null;
  const scoreBatch = (b: ScoringBatch): void => {
    if (pipeline && encoder.rowsExpected >= minRows) return pipeline.push(b.detach());
    const X = b.X.subarray(0, b.n * d);
    consumeBatch(b, { z: scorer.logits(X, b.n), phi: reasonsK > 0 ? scorer.contributions(X, b.n) : null });
  };

  let outSha = '';
  let outRows = 0;
  let summary: ScoreRunSummary | undefined;
  try {
    await readScoringBatches(
      o.dataPath,
      encoder,
      scoreBatch,
      (bytes) => {
        o.onProgress?.({ bytes: Math.min(bytes, totalBytes), totalBytes, rowsRead: encoder.counts.read, scored: deciles.n });
      },
      pipeline ? () => pipeline.drain(false) : undefined,
    );
    await pipeline?.drain(true);
    segments.forEach((seg, s) => seg.groups.forEach((g, k) => selection.addScored(seg.name, g, scoredByGroup[s][k])));
    // --- finish: deciles, ranking, output
    const outFd = fs.openSync(partial, 'wx', 0o600);
    const outHash = createHash('sha256');
    try {
      writeAll(outFd, Buffer.from(header + '\n', 'utf8'), outHash);
      if (top) {
        const ranked = top.sorted();
        let text = '';
        ranked.forEach((r, i) => {
          text += `${i + 1},${r.item.head},${deciles.decile(r.item.q)}${r.item.tail}\n`;
          if (r.item.groups) r.item.groups.forEach((g, s) => selection.addSelected(segments[s].name, segments[s].groups[g]));
        });
        writeAll(outFd, Buffer.from(text, 'utf8'), outHash);
        outRows = ranked.length;
      } else {
        fs.closeSync(pass1Fd!);
        pass1Fd = null;
        outRows = await pass2(
          pass1!,
          (q) => deciles.decile(q),
          (bytes) => writeAll(outFd, bytes, outHash),
        );
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
    const counts = encoder.counts;
    const scored = deciles.n;
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
          meanCompletenessGap: scored && reasonsK > 0 ? gapSum / scored : 0,
        },
      },
      input: { path: o.dataPath, bytes: totalBytes, sha256: (await inputHash) ?? '' },
      output: { path: o.outPath, sha256: outSha, rows: outRows, mode: top ? 'top-k' : 'all' },
      rows: {
        read: counts.read,
        scored,
        excludedNoConsent: counts.noConsent,
        excludedWithdrawn: counts.withdrawn,
        rejected: counts.rejected,
        clipped: encoder.clipped,
      },
      rejectedExamples: encoder.rejectedExamples.map((issue) => formatIssueAt(`${o.dataPath}:${issue.line}`, issue)),
      deciles: { sizes: scored ? deciles.sizes() : new Array(10).fill(0), lowestScore: scored ? deciles.cutoffs() : new Array(10).fill(null) },
      meanProbability: scored ? sumP / scored : null,
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
