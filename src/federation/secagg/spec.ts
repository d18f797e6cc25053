import { z } from 'zod';
import { bfvParamsSchema, DEFAULT_BFV_PARAMS } from '../../crypto/bfv/index.ts';
import { COMPLETE_GRAPH_MAX_PARTNERS, DEFAULT_SPARSE_DEGREE, DEFAULT_THRESHOLD_FRACTION } from '../../crypto/secagg/index.ts';

/**
 * The manifest's `encryption` for masked aggregation inside BFV (docs/CRYPTO.md): every choice the
 * partners accept is written here, and each round's secure-aggregation config (threshold, graph,
 * encoding plan) follows from it, the round's plan and its selected partners alone
 * (./round-config.ts), so every party derives the same config and refuses any other.
 */
export const secaggSpecSchema = z
  .object({
    scheme: z.literal('secagg-bfv'),
    bfv: bfvParamsSchema.default(DEFAULT_BFV_PARAMS),
    /** t = ⌈fraction × share holders⌉, never below 2 (Bonawitz et al. use about 2n/3). */
    thresholdFraction: z.number().gt(0).max(1).default(DEFAULT_THRESHOLD_FRACTION),
    /** Up to this many selected partners the mask graph is complete; above, SecAgg+'s sparse graph (Bell et al.). */
    completeGraphMaxPartners: z.number().int().min(2).max(255).default(COMPLETE_GRAPH_MAX_PARTNERS),
    /** Neighbours per partner in the sparse graph. */
    sparseDegree: z.number().int().min(2).max(254).default(DEFAULT_SPARSE_DEGREE),
    /** Resolution 2^-f of real parts (stochastic rounding; docs/CRYPTO.md gives the error bound). */
    minFractionBits: z.number().int().min(8).max(40).default(20),
  })
  .strict();
export type SecaggSpec = z.infer<typeof secaggSpecSchema>;

/** The default masked-aggregation spec of a new job (every default written out, so the manifest records it). */
export function defaultSecaggSpec(): SecaggSpec {
  return secaggSpecSchema.parse({ scheme: 'secagg-bfv' });
}
