/**
 * Deciles and the top-k early-warning list, in memory that does not grow with the file.
 *
 * Deciles are taken over the probabilities as written to the output (rounded to 6 decimals), so
 * they are exact for what the user sees: decile 1 is the highest-scored tenth, a row's decile is
 * ⌊10 · (rows scored strictly higher) / n⌋ + 1, and rows with the same printed score always share
 * a decile. One counter per representable score (10⁶ + 1 of them, 4 MB) gives this exactly in one
 * pass, whatever the file size.
 *
 * The top-k list is a bounded min-heap on the ranking key (probability, or expected value at risk =
 * probability × value); ties keep the earlier row.
 */
export const SCORE_DECIMALS = 6;
const SCALE = 10 ** SCORE_DECIMALS;

/** The integer grid value of a probability as printed (0 … 10⁶). */
export function quantize(p: number): number {
  return Math.round(p * SCALE);
}

/** Zero-padded digit groups: the output formats millions of numbers, and toFixed is slow. */
const DIGITS3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
const DIGITS2 = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));

/** The integer grid value q as a probability with 6 decimals: exactly `(q / 10⁶).toFixed(6)`. */
function formatGrid(q: number): string {
  const whole = q >= SCALE ? 1 : 0;
  const frac = q - whole * SCALE;
  return `${whole}.${DIGITS3[(frac / 1000) | 0]}${DIGITS3[frac % 1000]}`;
}

export function formatProbability(p: number): string {
  return formatGrid(quantize(p));
}

/**
 * `x.toFixed(4)`, fast: the value scaled to an integer count of 10⁻⁴ and printed from digit
 * tables. toFixed rounds the exact binary value; the scaled product can round differently only
 * within a hair of a tie (or for huge values), and there toFixed itself is used.
 */
export function formatFixed4(x: number): string {
  const a = Math.abs(x);
  const y = a * 1e4;
  const n = Math.round(y);
  if (!(y < 1e12) || Math.abs(y - Math.floor(y) - 0.5) < 1e-6) return x.toFixed(4);
  const whole = Math.floor(n / 1e4);
  const frac = n - whole * 1e4;
  return `${x < 0 ? '-' : ''}${whole}.${DIGITS2[(frac / 100) | 0]}${DIGITS2[frac % 100]}`;
}

export class DecileCounter {
  private readonly counts = new Uint32Array(SCALE + 1);
  private above: Uint32Array | null = null;
  n = 0;

  add(q: number): void {
    if (this.above) throw new Error('DecileCounter: add() after decile()');
    this.counts[q]++;
    this.n++;
  }

  /** Freezes the counts; decile() is valid afterwards. */
  private finish(): Uint32Array {
    if (!this.above) {
      // above[q] = number of rows with a grid value strictly greater than q.
      const above = new Uint32Array(SCALE + 1);
      let acc = 0;
      for (let q = SCALE; q >= 0; q--) {
        above[q] = acc;
        acc += this.counts[q];
      }
      this.above = above;
    }
    return this.above;
  }

  decile(q: number): number {
    const above = this.finish();
    return Math.min(10, Math.floor((10 * above[q]) / this.n) + 1);
  }

  /** Lowest printed score in each decile (null for an empty decile), for summaries. */
  cutoffs(): (number | null)[] {
    const out: (number | null)[] = new Array(10).fill(null);
    for (let q = 0; q <= SCALE; q++)
      if (this.counts[q] > 0) {
        const dec = this.decile(q);
        if (out[dec - 1] === null) out[dec - 1] = q / SCALE;
      }
    return out;
  }

  /** Rows per decile. */
  sizes(): number[] {
    const out = new Array(10).fill(0);
    for (let q = 0; q <= SCALE; q++) if (this.counts[q] > 0) out[this.decile(q) - 1] += this.counts[q];
    return out;
  }
}

export interface Ranked<T> {
  key: number;
  /** Input order, for ties. */
  seq: number;
  item: T;
}

/** Keeps the k items with the largest key (earlier seq wins ties). */
export class TopK<T> {
  private readonly heap: Ranked<T>[] = [];
  constructor(readonly k: number) {}

  /** a ranks below b: smaller key, or the same key and a later row. */
  private static below<T>(a: Ranked<T>, b: Ranked<T>): boolean {
    return a.key < b.key || (a.key === b.key && a.seq > b.seq);
  }

  /** Whether an item with this key and seq would enter the list (so callers can skip building it). */
  wouldAccept(key: number, seq: number): boolean {
    if (this.heap.length < this.k) return true;
    return TopK.below(this.heap[0], { key, seq, item: null as unknown as T });
  }

  offer(key: number, seq: number, make: () => T): void {
    if (this.k <= 0 || !this.wouldAccept(key, seq)) return;
    const entry = { key, seq, item: make() };
    const h = this.heap;
    if (h.length < this.k) {
      h.push(entry);
      let i = h.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!TopK.below(h[i], h[p])) break;
        [h[i], h[p]] = [h[p], h[i]];
        i = p;
      }
      return;
    }
    h[0] = entry;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && TopK.below(h[l], h[m])) m = l;
      if (r < h.length && TopK.below(h[r], h[m])) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }

  /** Best first. */
  sorted(): Ranked<T>[] {
    return [...this.heap].sort((a, b) => (a.key !== b.key ? b.key - a.key : a.seq - b.seq));
  }

  get size(): number {
    return this.heap.length;
  }
}

/** RFC 4180 field quoting; also neutralises spreadsheet formula injection in customer-supplied text. */
const NEEDS_CARE = /^[=+\-@\t\r]|[",\r\n]/;

export function csvField(value: string): string {
  if (!NEEDS_CARE.test(value)) return value;
  let v = value;
  // A cell starting with = + - @ (or a tab/CR) is run as a formula by spreadsheet programs; ids and
  // category values come from customer data, so prefix them (OWASP "CSV injection").
  if (/^[=+\-@\t\r]/.test(v) && !/^-?\d/.test(v)) v = `'${v}`;
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}
