/**
 * The reference input ("baseline") that reason codes are measured against. It is declared, never
 * fitted: a baseline computed from the scored rows would make one customer's reasons depend on who
 * else is in the file, and `fedmark serve` (one customer at a time) and `fedmark score` (a whole
 * file) must give the same reasons for the same customer.
 *
 * - `midpoint` (default): every numeric input at the middle of its declared range (encoded 0.5, or
 *   0 for `scale: "centered"`), every boolean at ½, every categorical column spread uniformly over
 *   its one-hot slots (1/(k+1) each, the "<other>" slot included). A categorical column's total
 *   contribution is then "this category vs. the average category", and a numeric one can push the
 *   score up by being low as well as by being high.
 * - `zero`: the all-zero encoded vector (every numeric at its declared minimum, no category set).
 *   For a linear model this makes each contribution exactly coefficient × encoded value.
 * - `record`: a reference customer the partner declares (column → cell text), encoded through the
 *   schema exactly like a scored row.
 */
import { FedmarkError } from '../errors.ts';
import { encodeRecord } from '../data/encode.ts';
import { featureCount, isFeature, isTypedColumn, type DatasetSchema } from '../data/schema.ts';

export type BaselineSpec = { kind: 'midpoint' } | { kind: 'zero' } | { kind: 'record'; record: Record<string, string>; source?: string };

export interface Baseline {
  /** Encoded reference input (length d). */
  x0: Float64Array;
  kind: BaselineSpec['kind'];
  description: string;
}

export function buildBaseline(schema: DatasetSchema, spec: BaselineSpec = { kind: 'midpoint' }): Baseline {
  const d = featureCount(schema);
  if (spec.kind === 'zero') {
    return { x0: new Float64Array(d), kind: 'zero', description: 'all-zero encoded input (numeric columns at their declared minimum, no category set)' };
  }
  if (spec.kind === 'record') {
    const filled: Record<string, string> = { ...spec.record };
    // The reference customer is not a real row: consent is irrelevant to it.
    for (const c of schema.columns) if (c.role === 'consent' && filled[c.name] === undefined) filled[c.name] = c.granted[0];
    let x: Float32Array;
    try {
      x = encodeRecord(schema, filled);
    } catch (err) {
      throw new FedmarkError('BASELINE_INVALID', `baseline record${spec.source ? ` ${spec.source}` : ''}: ${(err as Error).message}`);
    }
    return { x0: Float64Array.from(x), kind: 'record', description: `reference customer declared in ${spec.source ?? 'a record'}` };
  }
  const x0 = new Float64Array(d);
  let off = 0;
  for (const c of schema.columns) {
    if (!isTypedColumn(c) || !isFeature(c)) continue;
    if (c.type === 'numeric') {
      x0[off++] = c.scale === 'centered' ? 0 : 0.5;
    } else if (c.type === 'boolean') {
      x0[off++] = 0.5;
    } else {
      const k = c.values.length + 1;
      for (let s = 0; s < k; s++) x0[off++] = 1 / k;
    }
  }
  if (off !== d) throw new FedmarkError('BASELINE_INVALID', `midpoint baseline has ${off} inputs, the schema ${d}`);
  return {
    x0,
    kind: 'midpoint',
    description: 'midpoint of every declared numeric range, booleans at ½, categories spread uniformly over their one-hot slots',
  };
}
