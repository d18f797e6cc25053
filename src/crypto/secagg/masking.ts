/**
 * The masks themselves. Partner u uploads
 *   y_u = x_u + PRG(b_u) + Σ_{v ∈ M_u} sign(u, v)·PRG(k_uv)   (mod t),
 * where M_u are the partners it exchanged shares with, k_uv is derived from X25519(s_u, pk_v), and
 * sign(u, v) = +1 when u precedes v in the config's order, −1 otherwise — so each pair's masks cancel
 * in the sum (Bonawitz et al. 2017, §4). Key holders remove what does not cancel: the self-masks of the
 * survivors and the pairwise masks survivors share with partners that dropped before uploading.
 */
import { FedmarkError } from '../../errors.ts';
import { pairwiseMaskKey, selfMaskKey, type MaskAccumulator, type MaskBinding } from './prg.ts';
import { x25519Agree } from './x25519.ts';

/** u's sign for its mask with v: + when u comes first in key-id order. */
export function pairSign(u: string, v: string): 1 | -1 {
  if (u === v) throw new FedmarkError('SECAGG_BAD_INPUT', 'a partner has no pairwise mask with itself');
  return u < v ? 1 : -1;
}

/** Adds (sign = 1) or removes (sign = −1) partner `owner`'s self-mask PRG(b_owner). */
export function applySelfMask(acc: MaskAccumulator, binding: MaskBinding, owner: string, seed: Uint8Array, sign: 1 | -1): void {
  acc.add(selfMaskKey(seed, binding, owner), sign);
}

/**
 * Adds sign·PRG(k_uv) for the pair (u, v), given u's or v's secret key and the other's public key
 * (the DH value is the same either way). `sign` is applied as given: callers pass pairSign or its
 * negation.
 */
export function applyPairMask(
  acc: MaskAccumulator,
  binding: MaskBinding,
  pair: { a: string; b: string },
  secretKeyOfOne: Uint8Array,
  publicKeyOfOther: Uint8Array,
  sign: 1 | -1,
): void {
  const shared = x25519Agree(secretKeyOfOne, publicKeyOfOther);
  const [lower, upper] = pair.a < pair.b ? [pair.a, pair.b] : [pair.b, pair.a];
  try {
    acc.add(pairwiseMaskKey(shared, binding, lower, upper), sign);
  } finally {
    shared.fill(0);
  }
}

/** Checks that `v` holds residues modulo t (integers in [0, t)), naming the first that is not. */
export function assertResidues(v: Float64Array, t: number, what: string): void {
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (!(Number.isInteger(x) && x >= 0 && x < t)) {
      throw new FedmarkError('SECAGG_VALUE_OUT_OF_RANGE', `${what}: slot ${i} holds ${x}, not a residue modulo ${t}`);
    }
  }
}
