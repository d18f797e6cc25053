import { verifyCoordinatorHead } from '../../src/federation/protocol/coordinator-proofs.ts';
import type { HeadPointer } from '../../src/privacy/ledger/head.ts';
import type { PartnerContext } from './context.ts';

/**
 * The coordinator's current ledger head, as it signed it: refused (COORDINATOR_UNTRUSTED) unless
 * the signature is the key this node verified at join time, so what the node witnesses is the
 * coordinator's own statement.
 */
export async function witnessHead(ctx: Pick<PartnerContext, 'client' | 'coordinator' | 'o'>): Promise<HeadPointer> {
  return verifyCoordinatorHead(await ctx.client.ledgerHead(ctx.o.jobId), ctx.coordinator);
}
