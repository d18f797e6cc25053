/** Coordinator side of CKKS: validate and add blobs; needs no key, so it cannot read what it adds. */
import { SealSumAggregator } from '../seal-wire/aggregator.ts';
import type { CkksContext } from './context.ts';

export class CkksAggregator extends SealSumAggregator<CkksContext> {
  /** Restores a running sum persisted with toBytes() (or starts from a single fresh blob). */
  static fromBytes(ctx: CkksContext, bytes: Uint8Array): CkksAggregator {
    return new CkksAggregator(ctx).restore(bytes);
  }
}
