/**
 * Secure aggregation inside BFV: Bonawitz et al. (CCS 2017) pairwise masking with dropout recovery,
 * the SecAgg+ sparse graph of Bell et al. (CCS 2020) above 64 partners. Transport-independent: the
 * federation moves the messages; these state machines decide what they say.
 */
export {
  SECAGG_PROTOCOL,
  COMPLETE_GRAPH_MAX_PARTNERS,
  DEFAULT_SPARSE_DEGREE,
  DEFAULT_THRESHOLD_FRACTION,
  secaggConfigSchema,
  makeSecaggConfig,
  validateSecaggConfig,
  secaggConfigId,
  defaultThreshold,
  holdersPerPartner,
  type SecaggConfig,
  type SecaggConfigInput,
} from './config.ts';
export {
  partBoundSchema,
  encodingPlanSchema,
  planEncoding,
  encodingPlanId,
  encodeValues,
  decodeSums,
  quantisationErrorBound,
  limbBitsFor,
  DEFAULT_MIN_FRACTION_BITS,
  MAX_FRACTION_BITS,
  type PartBound,
  type PartEncoding,
  type EncodingPlan,
} from './encoding.ts';
export * from './messages.ts';
export { SecaggError, SecaggAttemptFailed, isSecaggAttemptFailed, type SecaggErrorCode, type SecaggStage } from './errors.ts';
export { SecaggHistory, type SecaggHistoryEntry } from './history.ts';
export { SecaggPartner, seedCommitment, type PartnerOptions, type PartnerSnapshot } from './partner.ts';
export { SecaggCoordinator, type SecaggEvidence } from './coordinator.ts';
export { unmaskAggregate, checkEvidence, type UnmaskInput, type UnmaskResult, type CheckedEvidence } from './unmask.ts';
export { runSecaggInMemory, type DriverOptions, type DriverResult, type DropStage } from './driver.ts';
export { neighbourhoods, type GraphSpec } from './graph.ts';
