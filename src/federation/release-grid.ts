/**
 * The grid every decrypted value is rounded to before it is used or leaves a key holder
 * (docs/CRYPTO.md, "Rounded decryptions"). CKKS decryption is approximate and not noise-flooded:
 * its low-order bits are a function of the secret key and the encryption noise, and exact
 * decryptions in the hands of someone who holds the ciphertexts can reveal the key (Li & Micciancio,
 * EUROCRYPT 2021). Rounding to a grid far coarser than the decryption error removes those bits:
 * with the default parameters one decrypted slot is off by ≈ 7e-10·√(summands) (docs/CRYPTO.md),
 * about 1/1000 of the real quantum below even with 64 summands.
 *
 * - counts (`PartSpec.domain: 'count'`) are rounded to integers;
 * - reals to multiples of REAL_QUANTUM = 2⁻²⁰ ≈ 9.5e-7: binary, so sums of grid values stay exactly
 *   on the grid in float64, and the server step's inputs are identical at every key holder;
 * - the released model (the SGD workload's parameters after every server step) is put on the same
 *   grid, so what leaves a key holder carries no more precision than it.
 */
export const REAL_QUANTUM = 2 ** -20;

/** x rounded to the nearest multiple of `quantum` (ties away from zero, as Math.round on |x|). */
export function toGrid(x: number, quantum: number = REAL_QUANTUM): number {
  const k = Math.round(Math.abs(x) / quantum);
  return Math.sign(x) * k * quantum;
}

/** A copy of `values` on the grid (`quantum` 1 for counts). */
export function vectorToGrid(values: Float64Array, quantum: number = REAL_QUANTUM): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toGrid(values[i], quantum) + 0; // + 0: no −0
  return out;
}

/** In place. */
export function toGridInPlace(values: Float64Array, quantum: number = REAL_QUANTUM): Float64Array {
  for (let i = 0; i < values.length; i++) values[i] = toGrid(values[i], quantum) + 0;
  return values;
}
