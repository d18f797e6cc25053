/**
 * Splitting one pooled dataset into partners for simulations: IID, by a column (natural silos such as
 * region or job), and label skew via Dirichlet(α) class proportions (Hsu, Qi & Brown, "Measuring the
 * Effects of Non-Identical Data Distribution for Federated Visual Classification", arXiv:1909.06335,
 * 2019). Every function returns one ascending Int32Array of row indices per partner; together they
 * cover every row exactly once. All randomness is seeded (src/util/rng.ts).
 */
import { FedmarkError } from '../errors.ts';
import { createRng, permutation, shuffleInPlace, type Rng } from '../util/rng.ts';

export { trainTestSplit, type Split } from './split.ts';

function checkK(k: number, n: number, what: string): void {
  if (!Number.isInteger(k) || k < 1) throw new FedmarkError('PARTITION_BAD_K', `number of partners must be a positive integer, got ${k}`);
  if (n < k) throw new FedmarkError('PARTITION_TOO_SMALL', `cannot give ${k} partners a non-empty share of ${n} ${what}`);
}

function toSorted(lists: number[][]): Int32Array[] {
  return lists.map((l) => Int32Array.from(l).sort());
}

/** Uniformly random partition into k near-equal shares (sizes differ by at most one). */
export function partitionIid(n: number, k: number, seed: number): Int32Array[] {
  if (!Number.isInteger(n) || n < 0) throw new FedmarkError('PARTITION_BAD_N', `row count must be a non-negative integer, got ${n}`);
  checkK(k, n, 'rows');
  const perm = permutation(n, createRng(seed));
  const out: Int32Array[] = [];
  for (let p = 0; p < k; p++) {
    const lo = Math.floor((p * n) / k);
    const hi = Math.floor(((p + 1) * n) / k);
    out.push(perm.slice(lo, hi).sort());
  }
  return out;
}

export interface GroupPartition {
  partitions: Int32Array[];
  /** The column values each partner holds (sorted). */
  groups: string[][];
}

/**
 * Rows grouped by the value of one column, groups assigned to partners. With k omitted every group is
 * its own partner. With fewer partners than groups, groups go largest-first to the currently smallest
 * partner (LPT scheduling), which balances sizes deterministically without a seed. Partners are ordered
 * by their alphabetically first group.
 */
export function partitionByColumnGroups(values: readonly string[], k?: number): GroupPartition {
  const byGroup = new Map<string, number[]>();
  values.forEach((v, i) => {
    let list = byGroup.get(v);
    if (!list) byGroup.set(v, (list = []));
    list.push(i);
  });
  const names = [...byGroup.keys()];
  const parts = k ?? names.length;
  if (names.length === 0) throw new FedmarkError('PARTITION_TOO_SMALL', 'cannot partition an empty column');
  checkK(parts, names.length, 'distinct column values (groups)');
  const order = names.sort((a, b) => byGroup.get(b)!.length - byGroup.get(a)!.length || (a < b ? -1 : a > b ? 1 : 0));
  const load = new Array<number>(parts).fill(0);
  const assigned: string[][] = Array.from({ length: parts }, () => []);
  for (const g of order) {
    let best = 0;
    for (let p = 1; p < parts; p++) if (load[p] < load[best]) best = p;
    assigned[best].push(g);
    load[best] += byGroup.get(g)!.length;
  }
  for (const a of assigned) a.sort();
  assigned.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return {
    groups: assigned,
    partitions: toSorted(assigned.map((gs) => gs.flatMap((g) => byGroup.get(g)!))),
  };
}

export function partitionByColumn(values: readonly string[], k?: number): Int32Array[] {
  return partitionByColumnGroups(values, k).partitions;
}

function dirichlet(k: number, alpha: number, rng: Rng): number[] {
  const g = Array.from({ length: k }, () => rng.gamma(alpha));
  const sum = g.reduce((a, b) => a + b, 0);
  if (!(sum > 0) || !Number.isFinite(sum)) {
    // For very small α every Gamma draw can underflow to 0; the limit of Dir(α→0) is a vertex of the simplex.
    const out = new Array<number>(k).fill(0);
    out[rng.int(k)] = 1;
    return out;
  }
  return g.map((x) => x / sum);
}

/** Integer counts summing to m, proportional to p (largest remainder; ties to the lower index). */
function apportion(p: number[], m: number): number[] {
  const raw = p.map((x) => x * m);
  const counts = raw.map(Math.floor);
  let left = m - counts.reduce((a, b) => a + b, 0);
  const byFrac = raw.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let j = 0; left > 0; j = (j + 1) % byFrac.length, left--) counts[byFrac[j][1]]++;
  return counts;
}

export interface DirichletOptions {
  /** Rows of each class every partner gets before the Dirichlet draw, when the class is large enough. Default 1. */
  minPerClass?: number;
}

/**
 * Label skew: for each class, partner shares are drawn from Dirichlet(α·1_k); small α (≈0.1) gives
 * strongly skewed base rates, large α (≈100) approaches IID. Each partner first receives `minPerClass`
 * rows of every class that has at least k·minPerClass rows, so every partner is non-empty and sees both
 * classes whenever the data allow it.
 */
export function partitionDirichlet(
  labels: ArrayLike<number>,
  k: number,
  alpha: number,
  seed: number,
  options: DirichletOptions = {},
): Int32Array[] {
  const n = labels.length;
  checkK(k, n, 'rows');
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new FedmarkError('PARTITION_BAD_ALPHA', `alpha must be a positive number, got ${alpha}`);
  const minPerClass = options.minPerClass ?? 1;
  if (!Number.isInteger(minPerClass) || minPerClass < 0) {
    throw new FedmarkError('PARTITION_BAD_MIN', `minPerClass must be a non-negative integer, got ${minPerClass}`);
  }
  const rng = createRng(seed);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    let list = byClass.get(labels[i]);
    if (!list) byClass.set(labels[i], (list = []));
    list.push(i);
  }
  const out: number[][] = Array.from({ length: k }, () => []);
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const rows = byClass.get(c)!;
    shuffleInPlace(rows, rng);
    const reserve = Math.min(minPerClass, Math.floor(rows.length / k));
    let at = 0;
    for (let p = 0; p < k; p++) for (let r = 0; r < reserve; r++) out[p].push(rows[at++]);
    const counts = apportion(dirichlet(k, alpha, rng), rows.length - at);
    for (let p = 0; p < k; p++) for (let r = 0; r < counts[p]; r++) out[p].push(rows[at++]);
  }
  // Tiny classes cannot cover everyone; move single rows from the largest partner so nobody is empty.
  for (let p = 0; p < k; p++) {
    if (out[p].length > 0) continue;
    let largest = 0;
    for (let q = 1; q < k; q++) if (out[q].length > out[largest].length) largest = q;
    out[p].push(out[largest].pop()!);
  }
  return toSorted(out);
}
