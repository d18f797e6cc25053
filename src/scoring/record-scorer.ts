/**
 * Scoring customers handed over as records (column → value), one or a small batch at a time — the
 * service's path. It uses the same row encoder, scorer and reason coder as the batch command, so a
 * customer gets the same probability and the same reasons either way.
 *
 * Records are checked against the schema before anything is encoded: an undeclared column, a
 * missing model input (or consent/id column), and — since the service is always strict — a
 * category outside the declared vocabulary or a number outside its declared range are refused
 * with a FedmarkError naming the customer, column and value.
 */
import { FedmarkError } from '../errors.ts';
import { isFeature, isTypedColumn, type DatasetSchema } from '../data/schema.ts';
import type { LoadedScoringModel } from './model.ts';
import { ReasonCoder, type ReasonCode } from './reasons.ts';
import { ValueCells } from '../data/cells.ts';
import { ScoringEncoder } from './rows.ts';
import { sigmoid } from './scorer.ts';

export type RecordValue = string | number | boolean | null;

export type RecordResult =
  | { index: number; id: string | null; status: 'scored'; probability: number; logit: number; reasons: ReasonCode[] }
  | { index: number; id: string | null; status: 'not-scored'; reason: 'no-consent' | 'withdrawn' };

export interface RecordBatchResult {
  results: RecordResult[];
  /** Ids (raw) of the customers scored, for the caller to record. */
  scoredIds: string[];
  noConsent: number;
  withdrawn: number;
}

/**
 * The schema as the service reads a record: typed columns that are not model inputs (sensitive
 * columns kept for fairness reports) may be sent but are not needed, so they are read as "ignore".
 */
function serviceSchema(schema: DatasetSchema): DatasetSchema {
  return {
    ...schema,
    columns: schema.columns.map((c) => (isTypedColumn(c) && !isFeature(c) ? { name: c.name, role: 'ignore' as const } : c)),
  };
}

export class RecordScorer {
  private readonly view: DatasetSchema;
  private readonly required: string[];
  private readonly known: Set<string>;
  private readonly coder: ReasonCoder;
  private readonly idIndex: number;
  private encoder: ScoringEncoder | null = null;
  private encoderFor: ReadonlySet<string> | undefined;
  private readonly cells: ValueCells;

  constructor(
    private readonly schema: DatasetSchema,
    private readonly model: LoadedScoringModel,
  ) {
    this.view = serviceSchema(schema);
    this.known = new Set(schema.columns.map((c) => c.name));
    this.required = schema.columns.filter((c) => isFeature(c) || c.role === 'consent' || c.role === 'id').map((c) => c.name);
    this.coder = new ReasonCoder(schema, model.baseline.x0);
    this.idIndex = schema.columns.findIndex((c) => c.role === 'id');
    this.cells = new ValueCells(Int32Array.from(schema.columns, (_, i) => i));
  }

  /** Cells in schema order, or a FedmarkError naming the first problem. */
  private toValues(record: Record<string, RecordValue>, index: number): string[] {
    const unknown = Object.keys(record).filter((k) => !this.known.has(k));
    if (unknown.length) {
      throw new FedmarkError(
        'SCORING_UNKNOWN_COLUMN',
        `customer ${index}: unknown column(s) ${unknown
          .slice(0, 5)
          .map((k) => JSON.stringify(k))
          .join(', ')}${unknown.length > 5 ? ', …' : ''} (schema "${this.schema.name}")`,
      );
    }
    // Own properties only: a column named like an Object.prototype member must not read the prototype.
    const get = (k: string): RecordValue | undefined => (Object.prototype.hasOwnProperty.call(record, k) ? record[k] : undefined);
    const missing = this.required.filter((k) => get(k) === undefined || get(k) === null);
    if (missing.length) {
      throw new FedmarkError(
        'SCORING_MISSING_COLUMN',
        `customer ${index}: missing column(s) ${missing
          .slice(0, 5)
          .map((k) => JSON.stringify(k))
          .join(', ')}${missing.length > 5 ? ', …' : ''}`,
      );
    }
    return this.view.columns.map((c) => {
      const v = get(c.name);
      if (v === undefined || v === null) return '';
      if (typeof v === 'boolean') {
        // A JSON boolean means the column's first declared true/false spelling.
        const col = this.schema.columns.find((x) => x.name === c.name)!;
        if (isTypedColumn(col) && col.type === 'boolean') return v ? col.true[0] : col.false[0];
        return String(v);
      }
      return String(v);
    });
  }

  score(records: readonly Record<string, RecordValue>[], o: { withdrawn?: ReadonlySet<string>; reasons?: number }): RecordBatchResult {
    // Every record is checked before any is scored: a bad one refuses the whole request.
    const values = records.map((r, i) => this.toValues(r, i));
    // One encoder per withdrawn-list version (the caller hands over the same Set until the file changes).
    if (!this.encoder || this.encoderFor !== o.withdrawn) {
      this.encoder = new ScoringEncoder(this.view, { strict: true, withdrawn: o.withdrawn, where: { name: 'request', at: (line) => `customer ${line}` } });
      this.encoderFor = o.withdrawn;
    }
    const encoder = this.encoder;
    const { d } = encoder;
    const X = new Float32Array(records.length * d);
    const kept: number[] = [];
    const results: RecordResult[] = new Array(records.length);
    let noConsent = 0;
    let withdrawn = 0;
    values.forEach((v, i) => {
      this.cells.set(v);
      const outcome = encoder.row(this.cells, i, X, kept.length * d, [], kept.length);
      const id = this.idIndex >= 0 ? v[this.idIndex].trim() : null;
      if (outcome === 'scored') kept.push(i);
      else {
        if (outcome === 'no-consent') noConsent++;
        else withdrawn++;
        results[i] = { index: i, id, status: 'not-scored', reason: outcome === 'no-consent' ? 'no-consent' : 'withdrawn' };
      }
    });
    const n = kept.length;
    const { scorer } = this.model;
    const Xn = X.subarray(0, n * d);
    const z = scorer.logits(Xn, n);
    const k = o.reasons ?? 3;
    const phi = k > 0 ? scorer.contributions(Xn, n) : null;
    const scoredIds: string[] = [];
    kept.forEach((i, r) => {
      const v = values[i];
      const id = this.idIndex >= 0 ? v[this.idIndex].trim() : null;
      if (id !== null) scoredIds.push(id);
      results[i] = {
        index: i,
        id,
        status: 'scored',
        probability: sigmoid(z[r]),
        logit: z[r],
        reasons: phi ? this.coder.top(phi, Xn, r * d, (column) => v[column].trim(), k) : [],
      };
    });
    return { results, scoredIds, noConsent, withdrawn };
  }
}
