/**
 * A uniformly random permutation from the CSPRNG (Fisher–Yates with rejection sampling, so no
 * modulo bias). The shuffle is what hides a party's file order from the others; a seeded PRNG
 * (util/rng.ts) would make it guessable.
 */
import { randomFillSync } from 'node:crypto';

export function randomPermutation(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  const pool = new Uint32Array(4096);
  let at = pool.length;
  const next = (): number => {
    if (at === pool.length) {
      randomFillSync(pool);
      at = 0;
    }
    return pool[at++];
  };
  for (let i = n - 1; i > 0; i--) {
    const bound = i + 1;
    // Largest multiple of bound below 2^32: draws at or above it are rejected.
    const limit = 0x100000000 - (0x100000000 % bound);
    let r = next();
    while (r >= limit) r = next();
    const j = r % bound;
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}
