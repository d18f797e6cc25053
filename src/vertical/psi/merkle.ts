/**
 * A salted Merkle tree over a fully blinded list, so that the coordinator cannot invent the values
 * it returns to a party: the last party to blind a list signs the root, and the coordinator must
 * show each returned (position, value) with a multiproof against it.
 *
 * Leaves are salted because a party sees sibling hashes in its proof: with unsalted leaves it could
 * hash the fully blinded list it computed itself for its ring successor and learn which of those
 * customers are also in its own list (a pairwise intersection the protocol must not reveal). Salts
 * come from a 32-byte seed (AES-256-CTR keystream); the coordinator gets the seed and reveals only
 * the salts of the returned positions.
 *
 * leaf(j) = SHA-256(0x00 ‖ salt_j ‖ u32(j) ‖ value_j); node = SHA-256(0x01 ‖ left ‖ right); a level's
 * odd last node is promoted unchanged. The leaf count is part of what is signed.
 */
import { createCipheriv, hash } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';
import { ELEMENT_BYTES } from './group.ts';

export const SALT_BYTES = 16;
const HASH = 32;

export function saltsFromSeed(seed: Uint8Array, count: number): Uint8Array {
  if (seed.length !== 32) throw new FedmarkError('PSI_BAD_SEED', 'a Merkle salt seed is 32 bytes');
  const c = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  return new Uint8Array(c.update(Buffer.alloc(count * SALT_BYTES)));
}

// One-shot hashing of one preimage buffer: a tree over 1M values is 2M hashes, and a streaming
// hash object per node costs more than the hashing itself.
const LEAF = Buffer.alloc(1 + SALT_BYTES + 4 + ELEMENT_BYTES);
const NODE = Buffer.alloc(1 + 2 * HASH);
NODE[0] = 1;

export function leafHash(salt: Uint8Array, index: number, value: Uint8Array): Uint8Array {
  LEAF[0] = 0;
  LEAF.set(salt, 1);
  LEAF.writeUInt32BE(index, 1 + SALT_BYTES);
  LEAF.set(value, 1 + SALT_BYTES + 4);
  return hash('sha256', LEAF, 'buffer');
}

function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  NODE.set(left, 1);
  NODE.set(right, 1 + HASH);
  return hash('sha256', NODE, 'buffer');
}

/** All levels, leaves first; levels[k] packs ceil(n / 2^k) hashes. Empty list: one all-zero root. */
export function buildTree(values: Uint8Array, salts: Uint8Array): Uint8Array[] {
  const n = values.length / ELEMENT_BYTES;
  let level = new Uint8Array(Math.max(1, n) * HASH);
  for (let j = 0; j < n; j++) {
    level.set(leafHash(salts.subarray(j * SALT_BYTES, (j + 1) * SALT_BYTES), j, values.subarray(j * ELEMENT_BYTES, (j + 1) * ELEMENT_BYTES)), j * HASH);
  }
  const levels = [level];
  while (level.length > HASH) {
    const count = level.length / HASH;
    const next = new Uint8Array(Math.ceil(count / 2) * HASH);
    for (let i = 0; i < count; i += 2) {
      const h =
        i + 1 < count
          ? nodeHash(level.subarray(i * HASH, (i + 1) * HASH), level.subarray((i + 1) * HASH, (i + 2) * HASH))
          : level.subarray(i * HASH, (i + 1) * HASH);
      next.set(h, (i / 2) * HASH);
    }
    levels.push(next);
    level = next;
  }
  return levels;
}

export function rootOf(levels: Uint8Array[]): Uint8Array {
  return levels[levels.length - 1].subarray(0, HASH);
}

/**
 * The sibling hashes a verifier needs for the leaves at `indices` (strictly ascending), level by
 * level, each level in ascending index order.
 */
export function multiproof(levels: Uint8Array[], indices: readonly number[]): Uint8Array {
  const out: Uint8Array[] = [];
  let known = [...indices];
  for (let k = 0; k + 1 < levels.length; k++) {
    const count = levels[k].length / HASH;
    const set = new Set(known);
    for (const i of known) {
      const s = i ^ 1;
      if (s < count && !set.has(s)) out.push(levels[k].subarray(s * HASH, (s + 1) * HASH));
    }
    known = [...new Set(known.map((i) => i >> 1))];
  }
  const proof = new Uint8Array(out.length * HASH);
  out.forEach((h, i) => proof.set(h, i * HASH));
  return proof;
}

/** True iff the leaves (ascending distinct indices) with the proof hash to root for a tree of n leaves. */
export function verifyMultiproof(root: Uint8Array, n: number, leaves: { index: number; hash: Uint8Array }[], proof: Uint8Array): boolean {
  if (leaves.length === 0) return proof.length === 0;
  if (proof.length % HASH !== 0) return false;
  let level = new Map<number, Uint8Array>();
  let prev = -1;
  for (const l of leaves) {
    if (!Number.isInteger(l.index) || l.index <= prev || l.index >= n) return false;
    prev = l.index;
    level.set(l.index, l.hash);
  }
  let used = 0;
  const take = (): Uint8Array | null => (used + HASH <= proof.length ? proof.subarray((used += HASH) - HASH, used) : null);
  for (let count = n; count > 1; count = Math.ceil(count / 2)) {
    const next = new Map<number, Uint8Array>();
    for (const [i, h] of level) {
      if (next.has(i >> 1)) continue;
      const s = i ^ 1;
      let parent: Uint8Array;
      if (s >= count) parent = h;
      else {
        const sib = level.get(s) ?? take();
        if (!sib) return false;
        parent = i & 1 ? nodeHash(sib, h) : nodeHash(h, sib);
      }
      next.set(i >> 1, parent);
    }
    level = next;
  }
  const top = level.get(0);
  return used === proof.length && top !== undefined && Buffer.from(top).equals(Buffer.from(root));
}
