/** Seeded train/test split, stratified by label by default so both sides keep the base rate. */
import { FedmarkError } from '../errors.ts';
import { createRng, shuffleInPlace } from '../util/rng.ts';

export interface Split {
  train: Int32Array;
  test: Int32Array;
}

/**
 * Splits row indices 0..n−1. Pass labels to stratify (each class contributes round(n_c·f) test rows);
 * with a plain count, or `stratified = false`, round(n·f) rows are drawn uniformly. Both index arrays
 * are sorted ascending.
 */
export function trainTestSplit(
  nOrLabels: number | ArrayLike<number>,
  testFraction: number,
  seed: number,
  stratified = true,
): Split {
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new FedmarkError('SPLIT_BAD_FRACTION', `testFraction must be in (0, 1), got ${testFraction}`);
  }
  const n = typeof nOrLabels === 'number' ? nOrLabels : nOrLabels.length;
  if (!Number.isInteger(n) || n < 2) throw new FedmarkError('SPLIT_TOO_SMALL', `cannot split ${n} rows`);
  const rng = createRng(seed);
  const isTest = new Uint8Array(n);
  const strata = new Map<number, number[]>();
  if (stratified && typeof nOrLabels !== 'number') {
    for (let i = 0; i < n; i++) {
      const c = nOrLabels[i];
      let list = strata.get(c);
      if (!list) strata.set(c, (list = []));
      list.push(i);
    }
  } else {
    strata.set(0, Array.from({ length: n }, (_, i) => i));
  }
  // Classes in ascending order so the random stream, and thus the split, does not depend on row order of first appearance.
  for (const c of [...strata.keys()].sort((a, b) => a - b)) {
    const rows = strata.get(c)!;
    shuffleInPlace(rows, rng);
    const take = Math.round(rows.length * testFraction);
    for (let k = 0; k < take; k++) isTest[rows[k]] = 1;
  }
  let nTest = 0;
  for (let i = 0; i < n; i++) nTest += isTest[i];
  if (nTest === 0 || nTest === n) {
    throw new FedmarkError('SPLIT_TOO_SMALL', `a test fraction of ${testFraction} of ${n} rows leaves one side empty`);
  }
  const train = new Int32Array(n - nTest);
  const test = new Int32Array(nTest);
  let a = 0;
  let b = 0;
  for (let i = 0; i < n; i++) {
    if (isTest[i]) test[b++] = i;
    else train[a++] = i;
  }
  return { train, test };
}
