export { canonicalJson, canonicalBytes, sha256Canonical } from './canonical.ts';
export * from './entries.ts';
export {
  keyIdOf,
  signerFromSecretKey,
  signingBytes,
  entryHash,
  signEntry,
  verifySignature,
  verifyEntrySignature,
  attestPayload,
  verifyAttestation,
  toBase64,
  fromBase64,
  type LedgerSigner,
} from './signing.ts';
export { headPath, readHead, verifyHeadSignature, type HeadPointer } from './head.ts';
export { readLedger, parseLedgerBytes, type ReadLedgerResult, type LedgerProblem, type LedgerProblemCode } from './reader.ts';
export { LedgerWriter, type LedgerWriterOptions, type AppendOptions } from './writer.ts';
export {
  verifyLedger,
  manifestEntryHash,
  type LedgerFinding,
  type Severity,
  type KeyRing,
  type KeyInfo,
  type Role,
  type VerifyOptions,
  type VerifyResult,
} from './verify.ts';
export {
  auditLedgers,
  summarizePrivacy,
  formatAuditSummary,
  type AuditOptions,
  type AuditResult,
  type AuditFinding,
  type PartnerSummary,
  type PartnerStatus,
  type EpsilonOf,
  type LedgerInput,
} from './audit.ts';
export {
  hashCustomerId,
  writeIdSidecar,
  sidecarHas,
  sidecarFileName,
  subjectStatement,
  SIDECAR_SCHEME,
  type SidecarInfo,
  type SubjectUse,
  type SubjectStatement,
} from './subject-rights.ts';
