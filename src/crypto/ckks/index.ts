/** CKKS secure aggregation: the public surface (the files beside this one are internal). */
export {
  heParamsSchema,
  DEFAULT_HE_PARAMS,
  DEFAULT_MAX_SUMMANDS,
  HE_STANDARD_MAX_COEFF_BITS,
  heValueBounds,
  validateHeParams,
  type HeParams,
  type HeValueBounds,
} from './params.ts';
export { CkksContext } from './context.ts';
export { CkksCipher } from './cipher.ts';
export { CkksAggregator } from './aggregator.ts';
export { generateSecretKey } from '../seal-wire/keys.ts';
export { inspectBlob, ciphertextCount, freshBlobBytes, type BlobInfo, type BlobKind } from '../seal-wire/blob.ts';
