/**
 * Keys and seed commitments a party has seen in this job, persisted by the node across rounds. A mask
 * key, share key or self-mask seed that comes back in a later round or attempt is refused: if a mask
 * key were reused, its revelation after a dropout in one round plus the seed's revelation in the next
 * would unmask that partner's upload (the reason Bonawitz et al. make both fresh every round).
 */
import { SecaggError, type SecaggStage } from './errors.ts';
import type { AdvertiseBody } from './messages.ts';

export interface SecaggHistoryEntry {
  value: string;
  /** "round/attempt/partner" where it was first seen. */
  where: string;
}

export class SecaggHistory {
  private readonly seen = new Map<string, string>();

  constructor(entries: readonly SecaggHistoryEntry[] = []) {
    for (const e of entries) this.seen.set(e.value, e.where);
  }

  private static where(ad: AdvertiseBody): string {
    return `${ad.round}/${ad.attempt}/${ad.from}`;
  }

  /** Throws SECAGG_KEY_REUSE when any of the advertisement's keys or commitment was seen elsewhere. */
  check(ad: AdvertiseBody, stage: SecaggStage): void {
    const here = SecaggHistory.where(ad);
    for (const value of [ad.maskPublicKey, ad.sharePublicKey, ad.seedCommitment]) {
      const before = this.seen.get(value);
      if (before !== undefined && before !== here) {
        throw new SecaggError(
          'SECAGG_KEY_REUSE',
          stage,
          `partner ${ad.from} reuses a mask key, share key or self-mask seed first seen at round/attempt/partner ${before}`,
        );
      }
    }
  }

  record(ad: AdvertiseBody): void {
    const here = SecaggHistory.where(ad);
    for (const value of [ad.maskPublicKey, ad.sharePublicKey, ad.seedCommitment]) if (!this.seen.has(value)) this.seen.set(value, here);
  }

  toJSON(): SecaggHistoryEntry[] {
    return [...this.seen].map(([value, where]) => ({ value, where }));
  }
}
