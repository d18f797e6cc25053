/**
 * Joining a campaign's outcomes to the scores: the count table (decile × arm × outcome) that
 * uplift.ts measures. The scores file is what `fedmark score` wrote (an id column, `probability`,
 * `decile`); the outcomes file has one row per customer in the campaign: id, arm, outcome.
 */
import { FedmarkError } from '../errors.ts';
import { readCsvRecords } from '../data/csv.ts';
import { cellIndex, UPLIFT_CELLS, type Arm } from './uplift.ts';

export interface OutcomeColumns {
  idColumn?: string;
  armColumn: string;
  outcomeColumn: string;
  treatment: readonly string[];
  control: readonly string[];
  positive: readonly string[];
  negative: readonly string[];
}

export interface CampaignCounts {
  counts: Float64Array;
  idColumn: string;
  scored: number;
  matched: number;
  /** Outcome rows whose customer is not in the scores file (e.g. not scored for lack of consent). */
  unmatched: number;
  /** Outcome rows with an arm or outcome value that is not declared. */
  invalid: number;
  invalidExamples: string[];
}

function columnOf(header: string[], name: string, file: string): number {
  const i = header.findIndex((h) => h.trim() === name);
  if (i < 0) throw new FedmarkError('UPLIFT_MISSING_COLUMN', `${file}:1: no column "${name}" (columns: ${header.map((h) => `"${h.trim()}"`).join(', ')})`);
  return i;
}

/** id → decile from a scores file. */
async function readDeciles(scoresPath: string, idColumn: string | undefined): Promise<{ deciles: Map<string, number>; idColumn: string }> {
  const deciles = new Map<string, number>();
  let idIdx = -1;
  let decIdx = -1;
  let name = '';
  for await (const rec of readCsvRecords(scoresPath)) {
    if (idIdx < 0) {
      const h = rec.fields.map((f) => f.trim());
      // fedmark score writes the id first, or second after "rank" in an early-warning list.
      name = idColumn ?? (h[0] === 'rank' ? h[1] : h[0]);
      idIdx = columnOf(h, name, scoresPath);
      decIdx = columnOf(h, 'decile', scoresPath);
      continue;
    }
    const id = rec.fields[idIdx]?.trim() ?? '';
    const dec = Number(rec.fields[decIdx]);
    if (!id || !Number.isInteger(dec) || dec < 1 || dec > 10) {
      throw new FedmarkError('UPLIFT_BAD_SCORES', `${scoresPath}:${rec.line}: expected an id and a decile 1–10, got "${id}", "${rec.fields[decIdx] ?? ''}"`);
    }
    if (deciles.has(id)) throw new FedmarkError('UPLIFT_BAD_SCORES', `${scoresPath}:${rec.line}: customer "${id}" is scored twice`);
    deciles.set(id, dec);
  }
  if (idIdx < 0) throw new FedmarkError('UPLIFT_BAD_SCORES', `${scoresPath}: no header row`);
  return { deciles, idColumn: name };
}

export async function campaignCounts(scoresPath: string, outcomesPath: string, cols: OutcomeColumns): Promise<CampaignCounts> {
  const { deciles, idColumn } = await readDeciles(scoresPath, cols.idColumn);
  const counts = new Float64Array(UPLIFT_CELLS);
  const arms = new Map<string, Arm>([...cols.treatment.map((v) => [v, 'treatment'] as const), ...cols.control.map((v) => [v, 'control'] as const)]);
  const outcomes = new Map<string, boolean>([...cols.positive.map((v) => [v, true] as const), ...cols.negative.map((v) => [v, false] as const)]);
  const seen = new Set<string>();
  let idx: [number, number, number] | null = null;
  let matched = 0;
  let unmatched = 0;
  let invalid = 0;
  const invalidExamples: string[] = [];
  for await (const rec of readCsvRecords(outcomesPath)) {
    if (!idx) {
      const h = rec.fields.map((f) => f.trim());
      idx = [columnOf(h, idColumn, outcomesPath), columnOf(h, cols.armColumn, outcomesPath), columnOf(h, cols.outcomeColumn, outcomesPath)];
      continue;
    }
    const [id, armCell, outCell] = idx.map((i) => rec.fields[i]?.trim() ?? '');
    if (seen.has(id)) throw new FedmarkError('UPLIFT_DUPLICATE_OUTCOME', `${outcomesPath}:${rec.line}: customer "${id}" has two outcome rows`);
    seen.add(id);
    const arm = arms.get(armCell);
    const responded = outcomes.get(outCell);
    if (arm === undefined || responded === undefined) {
      invalid++;
      if (invalidExamples.length < 10) {
        invalidExamples.push(
          `${outcomesPath}:${rec.line}: ${arm === undefined ? `arm "${armCell}" is neither treatment (${cols.treatment.join('/')}) nor control (${cols.control.join('/')})` : `outcome "${outCell}" is neither positive (${cols.positive.join('/')}) nor negative (${cols.negative.join('/')})`}`,
        );
      }
      continue;
    }
    const dec = deciles.get(id);
    if (dec === undefined) {
      unmatched++;
      continue;
    }
    counts[cellIndex(dec, arm, responded)]++;
    matched++;
  }
  if (!idx) throw new FedmarkError('UPLIFT_BAD_OUTCOMES', `${outcomesPath}: no header row`);
  return { counts, idColumn, scored: deciles.size, matched, unmatched, invalid, invalidExamples };
}
