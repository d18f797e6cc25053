/**
 * Private set intersection for vertical federated learning (entity alignment): ring ECDH-PSI on
 * P-256, transport-independent. See docs/VERTICAL.md.
 *
 * A PSI job kind drives PsiParty (at each partner) and PsiCoordinator (at the coordinator) with
 * the messages they return; runInMemoryPsi does the same in one process.
 */
export {
  parsePsiSpec,
  psiSpecSchema,
  hashDomain,
  specHash,
  PSI_SPEC_FORMAT,
  MAX_PSI_PARTIES,
  MAX_PSI_SET_SIZE,
  type PsiSpec,
  type PsiSpecInput,
} from './spec.ts';
export { idRulesSchema, normaliseId, buildElements, rowsOf, type IdRules, type IdRulesInput, type PsiElements, type Normalised } from './normalise.ts';
export { readPsiIds, type PsiIdFile } from './read-ids.ts';
export { NativeEngine, freshScalar, type PsiEngine, type NativeEngineOptions, type EngineProgress } from './engine.ts';
export { NobleEngine } from './noble-engine.ts';
export { PsiParty, alignedRows, type PsiPartyOptions, type PsiOutcome } from './party.ts';
export { PsiCoordinator, type IntersectionSummary } from './coordinator.ts';
export { runInMemoryPsi, type InMemoryPsiOptions, type InMemoryPsiRun } from './driver.ts';
export {
  psiHeaderSchema,
  parsePsiMessage,
  encodeFrame,
  decodeFrame,
  type PsiMessage,
  type PsiHeader,
  type PsiKind,
  type ListHeader,
  type FullHeader,
  type ResultHeader,
  type ReceiptHeader,
  type ReceiptsHeader,
} from './messages.ts';
export { psiLedgerSchemas, psiLedgerEntry, psiJobEntry, type PsiLedgerEntry, type PsiLedgerType, type PsiLedgerPayload } from './ledger.ts';
export { SUITES, type Suite } from './group.ts';
