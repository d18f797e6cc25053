/** Coordinator side of BFV: validate and add blobs; needs no key, so it cannot read what it adds. */
import { SealSumAggregator } from '../seal-wire/aggregator.ts';
import type { BfvContext } from './context.ts';

export class BfvAggregator extends SealSumAggregator<BfvContext> {
  /** Restores a running sum persisted with toBytes() (or starts from a single fresh blob). */
  static fromBytes(ctx: BfvContext, bytes: Uint8Array): BfvAggregator {
    return new BfvAggregator(ctx).restore(bytes);
  }
}
