/**
 * The schema compiled into per-column encoders over `Cells`. Every cell is mapped with constants
 * declared in the schema (bounds, vocabularies, band edges), never with statistics of the data, so a
 * row encodes to the same vector whichever partner and whichever source holds it.
 */
import { Vocabulary, type Cells } from './cells.ts';
import { OTHER_BUCKET, bandLabels, isFeature, isTypedColumn, type DatasetSchema, type NumericColumn } from './schema.ts';

export const FLAG_CLIPPED = 1;
export const FLAG_IMPUTED = 2;

export interface CompiledColumn {
  /** Position in schema.columns. */
  index: number;
  name: string;
  numeric: boolean;
  /** Offset of this column's first feature in the row vector, or -1 when not a feature. */
  offset: number;
  /** Encodes the cell into `row` (if a feature); returns a problem message, or null when the cell is fine. */
  encode(cells: Cells, row: Float32Array, flags: Uint8Array): string | null;
  /** Group names of a sensitive column (null otherwise); `group` is the last encoded cell's. */
  groups: string[] | null;
  group: number;
}

function numericMapper(c: NumericColumn): (v: number) => number {
  const { min, max } = c;
  const transform = c.transform ?? 'none';
  const slog = (x: number) => Math.sign(x) * Math.log1p(Math.abs(x));
  let unit: (v: number) => number;
  if (transform === 'log1p') {
    const top = Math.log1p(max - min);
    unit = (v) => Math.log1p(v - min) / top;
  } else if (transform === 'signed-log1p') {
    const lo = slog(min);
    const span = slog(max) - lo;
    unit = (v) => (slog(v) - lo) / span;
  } else {
    const span = max - min;
    unit = (v) => (v - min) / span;
  }
  return c.scale === 'centered' ? (v) => 2 * unit(v) - 1 : unit;
}

const BLANK_NUMBER = 'blank value in a numeric column (missing policy is "error")';

function numericColumn(c: NumericColumn, index: number, off: number): CompiledColumn {
  const map = numericMapper(c);
  const missing = c.missing ?? 'error';
  const fill = missing === 'min' ? c.min : missing === 'error' ? null : missing;
  const edges = c.groups ? c.groups.edges : null;
  const labels = c.groups ? bandLabels(c.groups) : null;
  const { min, max } = c;
  return {
    index,
    name: c.name,
    numeric: true,
    offset: off,
    groups: labels,
    group: 0,
    encode(cells, row, flags) {
      let v: number;
      if (cells.blank(index)) {
        if (fill === null) return BLANK_NUMBER;
        flags[index] |= FLAG_IMPUTED;
        v = fill;
      } else {
        v = cells.number(index);
        if (v !== v) return 'not a number';
      }
      const clipped = v < min ? min : v > max ? max : v;
      if (clipped !== v) flags[index] |= FLAG_CLIPPED;
      if (off >= 0) row[off] = map(clipped);
      if (edges && labels) {
        // Half-open bands, the last one closed; validation guarantees the edges cover [min, max].
        let b = 0;
        while (b < labels.length - 1 && !(clipped < edges[b + 1])) b++;
        this.group = b;
      }
      return null;
    },
  };
}

/**
 * Compiles the typed columns (numeric, categorical, boolean) in schema order; the one-hot layout
 * (declared values, then `<other>`) is the one featureNames(schema) describes.
 */
export function compileColumns(schema: DatasetSchema): CompiledColumn[] {
  const out: CompiledColumn[] = [];
  let offset = 0;
  schema.columns.forEach((c, index) => {
    if (!isTypedColumn(c)) return;
    const feature = isFeature(c);
    const off = feature ? offset : -1;
    if (c.type === 'numeric') {
      out.push(numericColumn(c, index, off));
      if (feature) offset += 1;
    } else if (c.type === 'categorical') {
      const vocabulary = new Vocabulary(c.values);
      const other = c.values.length;
      const strictUnknown = c.unknown === 'error';
      const unknown = `unknown category (declared: ${c.values.map((v) => `"${v}"`).join(', ')})`;
      out.push({
        index,
        name: c.name,
        numeric: false,
        offset: off,
        groups: c.sensitive ? [...c.values, OTHER_BUCKET] : null,
        group: 0,
        encode(cells, row) {
          const s = cells.lookup(index, vocabulary);
          if (s < 0 && strictUnknown) return unknown;
          const slot = s < 0 ? other : s;
          if (off >= 0) {
            for (let k = 0; k <= other; k++) row[off + k] = 0;
            row[off + slot] = 1;
          }
          this.group = slot;
          return null;
        },
      });
      if (feature) offset += other + 1;
    } else {
      const truth = new TruthValues(c.true, c.false);
      const problem = `not a declared boolean value (true: ${c.true.join('/')}, false: ${c.false.join('/')})`;
      out.push({
        index,
        name: c.name,
        numeric: false,
        offset: off,
        groups: c.sensitive ? ['false', 'true'] : null,
        group: 0,
        encode(cells, row) {
          const t = truth.of(cells, index);
          if (t < 0) return problem;
          if (off >= 0) row[off] = t;
          this.group = t;
          return null;
        },
      });
      if (feature) offset += 1;
    }
  });
  return out;
}

/**
 * Two disjoint declared value lists (true/false, positive/negative, granted/other): 1, 0, or −1 for a
 * value in neither. A native boolean cell is its own truth value, so a PostgreSQL boolean or Parquet
 * BOOLEAN column works with the same schema as a CSV of "yes"/"no".
 */
export class TruthValues {
  private readonly vocabulary: Vocabulary;
  private readonly trueCount: number;

  constructor(yes: readonly string[], no: readonly string[]) {
    this.vocabulary = new Vocabulary([...yes, ...no]);
    this.trueCount = yes.length;
  }

  of(cells: Cells, index: number): number {
    const native = cells.bool(index);
    if (native >= 0) return native;
    const at = cells.lookup(index, this.vocabulary);
    return at < 0 ? -1 : at < this.trueCount ? 1 : 0;
  }
}
