/**
 * Reason codes: the columns that push a customer's score up the most, in words a marketer (and a
 * customer asking "why?") can read.
 *
 * 1. Per-feature contributions (logit space, from the scorer) are summed per schema column, so a
 *    categorical column's one-hot features form one reason ("Contract = Month-to-month"), not
 *    several ("Contract=Month-to-month" up, "Contract=Two year" down).
 * 2. Columns with a positive total are ranked by it; the top k are the reason codes. A column that
 *    pulls the score down is never given as a reason for a high score.
 * 3. Text: categorical and boolean columns read "column = value" (the customer's own cell; a value
 *    outside the declared vocabulary is marked as such); numeric columns read "column high (value)"
 *    or "column low (value)" — high or low relative to the baseline the contributions are measured
 *    against — and "column missing (treated as v)" for a blank cell filled by the schema's policy.
 */
import { OTHER_BUCKET, isFeature, isTypedColumn, type DatasetSchema, type TypedColumn } from '../data/schema.ts';

export interface ReasonCode {
  column: string;
  text: string;
  /** The column's total contribution to the logit (> 0). */
  contribution: number;
}

interface ColumnSlot {
  column: TypedColumn;
  /** Index of the column in schema.columns (= position in a row's cell array). */
  index: number;
  offset: number;
  width: number;
}

export class ReasonCoder {
  private readonly slots: ColumnSlot[];
  private readonly sums: Float64Array;
  private readonly order: Int32Array;

  constructor(
    schema: DatasetSchema,
    private readonly x0: Float64Array,
  ) {
    const slots: ColumnSlot[] = [];
    let offset = 0;
    schema.columns.forEach((c, index) => {
      if (!isTypedColumn(c) || !isFeature(c)) return;
      const width = c.type === 'categorical' ? c.values.length + 1 : 1;
      slots.push({ column: c, index, offset, width });
      offset += width;
    });
    this.slots = slots;
    this.sums = new Float64Array(slots.length);
    this.order = new Int32Array(slots.length);
  }

  get columns(): string[] {
    return this.slots.map((s) => s.column.name);
  }

  /** Per-column totals of one row's contributions (`phi` of length d), in schema column order. */
  columnContributions(phi: ArrayLike<number>, out: Float64Array = new Float64Array(this.slots.length)): Float64Array {
    for (let s = 0; s < this.slots.length; s++) {
      const { offset, width } = this.slots[s];
      let t = 0;
      for (let k = 0; k < width; k++) t += phi[offset + k];
      out[s] = t;
    }
    return out;
  }

  /**
   * The top `k` reasons for one row. `phi` and `x` are the row's contributions and encoded input
   * (length d); `cells` are its raw cells in schema column order (for the text).
   */
  top(phi: ArrayLike<number>, x: ArrayLike<number>, cells: readonly string[], k: number): ReasonCode[] {
    if (k <= 0) return [];
    const sums = this.columnContributions(phi, this.sums);
    let m = 0;
    for (let s = 0; s < sums.length; s++) if (sums[s] > 0) this.order[m++] = s;
    // Partial selection of the k largest (k is small; m is at most the number of columns).
    const take = Math.min(k, m);
    for (let a = 0; a < take; a++) {
      let best = a;
      for (let b = a + 1; b < m; b++) if (sums[this.order[b]] > sums[this.order[best]]) best = b;
      const t = this.order[a];
      this.order[a] = this.order[best];
      this.order[best] = t;
    }
    const out: ReasonCode[] = [];
    for (let a = 0; a < take; a++) {
      const s = this.order[a];
      const slot = this.slots[s];
      out.push({ column: slot.column.name, text: this.describe(slot, x, cells[slot.index].trim()), contribution: sums[s] });
    }
    return out;
  }

  private describe(slot: ColumnSlot, x: ArrayLike<number>, cell: string): string {
    const c = slot.column;
    if (c.type === 'categorical') {
      const declared = x[slot.offset + c.values.length] !== 1;
      return declared ? `${c.name} = ${cell}` : `${c.name} = ${cell === '' ? '(blank)' : cell} (${OTHER_BUCKET}: not a declared value)`;
    }
    if (c.type === 'boolean') return `${c.name} = ${cell}`;
    if (cell === '') {
      const fill = c.missing === 'min' ? c.min : c.missing;
      return `${c.name} missing (treated as ${fill})`;
    }
    const v = x[slot.offset];
    const ref = this.x0[slot.offset];
    if (v > ref) return `${c.name} high (${cell})`;
    if (v < ref) return `${c.name} low (${cell})`;
    return `${c.name} = ${cell}`;
  }
}
