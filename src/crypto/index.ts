export * from './ckks/index.ts';
export * from './bfv/index.ts';
/** Secure aggregation inside BFV (issue 13): state machines, messages, encoding — see docs/CRYPTO.md. */
export * as secagg from './secagg/index.ts';
export { sealHeapBytes } from './seal.ts';
export {
  generateIdentity,
  keyId,
  publicIdentity,
  publicIdentitySchema,
  parsePublicIdentity,
  writeIdentityFile,
  readIdentityFile,
  signBytes,
  verifyBytes,
  type Identity,
  type PublicIdentity,
} from './identity.ts';
export {
  signRequest,
  verifyRequest,
  canonicalRequestString,
  MemoryNonceStore,
  SIGNATURE_HEADERS,
  DEFAULT_MAX_SKEW_MS,
  type NonceStore,
  type SignRequestInput,
  type VerifyOptions,
  type VerifyResult,
} from './request-signing.ts';
export { sealForRecipient, openSealed, createKeyCeremony, type KeyCeremony } from './key-ceremony.ts';
