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
  /**
   * Texts that do not need the row's cell: per declared category ("contract = monthly"), or per
   * truth value of a boolean with one spelling each way (false, true). Null for numeric columns.
   */
  fixed: string[] | null;
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
      let fixed: string[] | null = null;
      // A declared category matched the trimmed cell exactly, so the cell is the declared value.
      if (c.type === 'categorical') fixed = c.values.map((v) => `${c.name} = ${v}`);
      else if (c.type === 'boolean' && c.true.length === 1 && c.false.length === 1) fixed = [`${c.name} = ${c.false[0]}`, `${c.name} = ${c.true[0]}`];
      slots.push({ column: c, index, offset, width, fixed });
      offset += width;
    });
    this.slots = slots;
    this.sums = new Float64Array(slots.length);
    this.order = new Int32Array(slots.length);
  }

  get columns(): string[] {
    return this.slots.map((s) => s.column.name);
  }

  /** Per-column totals of one row's contributions (`phi` from `at`, d values), in schema column order. */
  columnContributions(phi: ArrayLike<number>, out: Float64Array = new Float64Array(this.slots.length), at = 0): Float64Array {
    for (let s = 0; s < this.slots.length; s++) {
      const { offset, width } = this.slots[s];
      let t = 0;
      for (let k = 0; k < width; k++) t += phi[at + offset + k];
      out[s] = t;
    }
    return out;
  }

  /**
   * The top `k` reasons for one row. `phi` and `x` hold the row's contributions and encoded input
   * (d values from `at`: a row of an n × d batch); `cell(column)` gives its trimmed raw cell of a
   * schema column (for the text; asked only for the columns given as reasons).
   */
  top(phi: ArrayLike<number>, x: ArrayLike<number>, at: number, cell: (column: number) => string, k: number): ReasonCode[] {
    if (k <= 0) return [];
    const sums = this.columnContributions(phi, this.sums, at);
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
      out.push({ column: slot.column.name, text: this.describe(slot, x, at, cell), contribution: sums[s] });
    }
    return out;
  }

  private describe(slot: ColumnSlot, x: ArrayLike<number>, at: number, cellOf: (column: number) => string): string {
    const c = slot.column;
    const base = at + slot.offset;
    if (c.type === 'categorical') {
      for (let k = 0; k < c.values.length; k++) if (x[base + k] === 1) return slot.fixed![k];
      const cell = cellOf(slot.index);
      return `${c.name} = ${cell === '' ? '(blank)' : cell} (${OTHER_BUCKET}: not a declared value)`;
    }
    if (c.type === 'boolean') return slot.fixed ? slot.fixed[x[base] === 1 ? 1 : 0] : `${c.name} = ${cellOf(slot.index)}`;
    const cell = cellOf(slot.index);
    if (cell === '') {
      const fill = c.missing === 'min' ? c.min : c.missing;
      return `${c.name} missing (treated as ${fill})`;
    }
    const v = x[at + slot.offset];
    const ref = this.x0[slot.offset];
    if (v > ref) return `${c.name} high (${cell})`;
    if (v < ref) return `${c.name} low (${cell})`;
    return `${c.name} = ${cell}`;
  }
}
