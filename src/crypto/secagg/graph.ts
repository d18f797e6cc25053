/**
 * Who masks with whom. Up to COMPLETE_GRAPH_MAX_PARTNERS partners every pair shares a mask and every
 * partner holds a share of everyone's secrets (Bonawitz et al., CCS 2017). Above, SecAgg+ (Bell et
 * al., CCS 2020) replaces the complete graph by a sparse random one of degree k, so each partner's
 * work grows with k instead of n. Ours is the Harary graph H(k, n) — partners on a ring, each joined to
 * the k/2 nearest on either side, which makes it k-regular and k-connected — over a pseudorandom
 * order of the partners derived from the round's public graph seed, so no party picks its neighbours.
 */
import { createCipheriv, hkdfSync } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';

export type GraphSpec = { kind: 'complete' } | { kind: 'harary'; degree: number; seed: string };

/** Uniform integer in [0, bound) from a byte stream, by rejection (no modulo bias). */
function uniformBelow(next32: () => number, bound: number): number {
  const limit = Math.floor(2 ** 32 / bound) * bound;
  for (;;) {
    const x = next32();
    if (x < limit) return x % bound;
  }
}

/** Fisher–Yates (Knuth, TAOCP vol. 2, Algorithm P) driven by AES-256-CTR keyed from the seed. */
export function seededPermutation<T>(items: readonly T[], seedHex: string): T[] {
  const key = new Uint8Array(hkdfSync('sha256', Buffer.from(seedHex, 'hex'), 'fedmark-secagg-1/graph', 'permutation', 32));
  const cipher = createCipheriv('aes-256-ctr', key, new Uint8Array(16));
  let buf = new Uint8Array(0);
  let pos = 0;
  const next32 = () => {
    if (pos + 4 > buf.length) {
      buf = new Uint8Array(cipher.update(new Uint8Array(4096)));
      pos = 0;
    }
    const v = (buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24)) >>> 0;
    pos += 4;
    return v;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = uniformBelow(next32, i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Each selected partner's neighbours (never itself), for the round's graph. */
export function neighbourhoods(selected: readonly string[], graph: GraphSpec): Map<string, Set<string>> {
  const n = selected.length;
  const out = new Map<string, Set<string>>();
  if (graph.kind === 'complete') {
    for (const u of selected) out.set(u, new Set(selected.filter((v) => v !== u)));
    return out;
  }
  const k = graph.degree;
  if (!Number.isInteger(k) || k < 2 || k % 2 !== 0 || k >= n - 1) {
    throw new FedmarkError('SECAGG_BAD_CONFIG', `Harary graph degree ${k} must be even, ≥ 2 and < ${n - 1} for ${n} partners`);
  }
  const ring = seededPermutation(selected, graph.seed);
  ring.forEach((u, p) => {
    const set = new Set<string>();
    for (let d = 1; d <= k / 2; d++) {
      set.add(ring[(p + d) % n]);
      set.add(ring[(p - d + n) % n]);
    }
    out.set(u, set);
  });
  return out;
}
