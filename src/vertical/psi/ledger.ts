/**
 * Proposed ledger entries of a PSI job (to be added to src/privacy/ledger/entries.ts when the PSI
 * job kind is wired in). Strict objects, like every ledger payload. None of them contains an id or a
 * blinded value: only sizes, caps, hashes of lists as sent, and the agreed result's digest.
 *
 * Job ledger (coordinator-authored):  psi.job, psi.full, psi.intersection
 * Partner's local ledger:            psi.party.list, psi.party.hop, psi.party.result
 */
import { z } from 'zod';
import { SUITES } from './group.ts';
import { idRulesSchema } from './normalise.ts';
import { hashDomain, psiJobIdSchema, specHash, type PsiSpec } from './spec.ts';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
const keyId = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-character key id');
const count = z.number().int().nonnegative();

export const psiLedgerSchemas = {
  /** The job's public parameters: what every party agreed to before hashing. */
  'psi.job': z.strictObject({
    jobId: psiJobIdSchema,
    specHash: hex64,
    hashDomain: z.string().min(1),
    suite: z.enum(SUITES),
    ring: z.array(keyId).min(2),
    coordinator: keyId,
    idColumn: z.string().min(1),
    idRules: idRulesSchema,
    maxSetSize: z.number().int().positive(),
    padToMax: z.boolean(),
  }),
  /** A fully blinded list as the coordinator received it (one per origin). */
  'psi.full': z.strictObject({
    jobId: psiJobIdSchema,
    origin: keyId,
    lastBlindedBy: keyId,
    /** List length: the cap when padded, else the origin's distinct-id count (a release). */
    count,
    listHash: hex64,
    merkleRoot: hex64,
  }),
  /** The result the coordinator returned and every party's signed receipt confirmed. */
  'psi.intersection': z.strictObject({
    jobId: psiJobIdSchema,
    intersectionSize: count,
    orderDigest: hex64,
    perParty: z.array(z.strictObject({ party: keyId, listCount: count, resultBodyHash: hex64, receiptSig: z.string().min(1) })).min(2),
    receiptsAgreed: z.boolean(),
  }),
  /** The party's own list: local counts (never sent unless unpadded) and what was sent. */
  'psi.party.list': z.strictObject({
    jobId: psiJobIdSchema,
    party: keyId,
    specHash: hex64,
    rowsRead: count,
    invalidRows: count,
    duplicateRows: count,
    distinctIds: count,
    /** Length of the list sent (= maxSetSize when padded: a public constant). */
    releasedCount: count,
    dummies: count,
    listHash: hex64,
    sentTo: keyId,
  }),
  /** A foreign list the party blinded with its key and passed on. */
  'psi.party.hop': z.strictObject({
    jobId: psiJobIdSchema,
    party: keyId,
    origin: keyId,
    receivedFrom: keyId,
    keysApplied: z.number().int().positive(),
    count,
    inListHash: hex64,
    outListHash: hex64,
    sentTo: keyId,
  }),
  /** What the party accepted: after the Merkle checks and every party's receipt agreed. */
  'psi.party.result': z.strictObject({
    jobId: psiJobIdSchema,
    party: keyId,
    intersectionSize: count,
    /** Rows of the party's file aligned to the intersection (≥ intersectionSize with duplicates). */
    alignedRows: count,
    orderDigest: hex64,
    receiptsFrom: z.array(keyId).min(2),
  }),
} as const;

export type PsiLedgerType = keyof typeof psiLedgerSchemas;
export type PsiLedgerPayload<T extends PsiLedgerType> = z.infer<(typeof psiLedgerSchemas)[T]>;
export type PsiLedgerEntry = { [T in PsiLedgerType]: { type: T; payload: PsiLedgerPayload<T> } }[PsiLedgerType];

/** Validates a proposed entry as it is produced, so a writer can never emit a malformed one. */
export function psiLedgerEntry<T extends PsiLedgerType>(type: T, payload: PsiLedgerPayload<T>): PsiLedgerEntry {
  return { type, payload: psiLedgerSchemas[type].parse(payload) } as PsiLedgerEntry;
}

/** The job ledger's psi.job entry for a spec (written when the job is created). */
export function psiJobEntry(spec: PsiSpec): PsiLedgerEntry {
  return psiLedgerEntry('psi.job', {
    jobId: spec.jobId,
    specHash: specHash(spec),
    hashDomain: hashDomain(spec),
    suite: spec.suite,
    ring: spec.parties.map((p) => p.keyId),
    coordinator: spec.coordinator.keyId,
    idColumn: spec.id.column,
    idRules: spec.id.rules,
    maxSetSize: spec.maxSetSize,
    padToMax: spec.padToMax,
  });
}
