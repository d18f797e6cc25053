/**
 * Shamir t-of-n secret sharing (Shamir 1979) over GF(2^8) with the audited `shamir-secret-sharing`
 * package (0.0.4, audited by Cure53 and Zellic). Each share is the secret's length plus one byte: the
 * share's x-coordinate, random and distinct. Combining fewer than t shares yields an unrelated value,
 * never an error — callers verify the result against a commitment.
 */
import { combine, split } from 'shamir-secret-sharing';
import { FedmarkError } from '../../errors.ts';

/** The package's limit: GF(2^8) has 255 non-zero x-coordinates. */
export const MAX_SHARE_HOLDERS = 255;

/** Splits `secret` into one share per holder (in the order given), any `threshold` of which recover it. */
export async function shareSecret(secret: Uint8Array, holders: readonly string[], threshold: number): Promise<Map<string, Uint8Array>> {
  if (holders.length < 2 || holders.length > MAX_SHARE_HOLDERS) {
    throw new FedmarkError('SECAGG_BAD_INPUT', `Shamir sharing needs 2..${MAX_SHARE_HOLDERS} holders, got ${holders.length}`);
  }
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > holders.length) {
    throw new FedmarkError('SECAGG_BAD_INPUT', `Shamir threshold ${threshold} must be in [2, ${holders.length}]`);
  }
  // The package refuses a Node Buffer (it checks the constructor), so always hand it a plain Uint8Array.
  const shares = await split(Uint8Array.from(secret), holders.length, threshold);
  return new Map(holders.map((h, i) => [h, shares[i]]));
}

/** Recombines shares (all of the same length, distinct x-coordinates). */
export async function recoverSecret(shares: readonly Uint8Array[]): Promise<Uint8Array> {
  try {
    return await combine(shares.map((s) => Uint8Array.from(s)));
  } catch (err) {
    throw new FedmarkError('SECAGG_BAD_SHARES', `cannot combine Shamir shares: ${(err as Error).message}`);
  }
}
