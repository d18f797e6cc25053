/** BFV exact aggregation: the public surface (the files beside this one are internal). */
export { bfvParamsSchema, DEFAULT_BFV_PARAMS, SEAL_CBD_NOISE_BOUND, bfvNoiseMaxSummands, validateBfvParams, type BfvParams } from './params.ts';
export { BfvContext } from './context.ts';
export { BfvCipher, MIN_NOISE_BUDGET_BITS } from './cipher.ts';
export { BfvAggregator } from './aggregator.ts';
export { generateSecretKey as generateBfvSecretKey } from '../seal-wire/keys.ts';
export { inspectBlob as inspectBfvBlob, ciphertextCount as bfvCiphertextCount } from '../seal-wire/blob.ts';
