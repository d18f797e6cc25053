/**
 * Ledger entry envelope and the payload schema of every entry type.
 *
 * Envelope (one JSONL line, RFC 8785 canonical form):
 *   { schemaVersion, seq, ts, type, author, prev, payload, sig }
 * - `prev` is the SHA-256 (hex) of the previous entry's canonical bytes *including* its signature,
 *   or 64 zeros for seq 0, so every entry commits to the whole history before it.
 * - `sig` is the author's Ed25519 signature (base64) over the canonical bytes of the entry without
 *   `sig`.
 * Payload objects are strict: an unknown field is an error, so a writer cannot smuggle unsigned
 * meaning past a reader that validates with an older schema.
 */
import { z } from 'zod';
import { psiLedgerSchemas } from '../../vertical/psi/ledger.ts';
import { verticalLedgerSchemas } from '../../vertical/ledger.ts';

/**
 * 2: the job manifest entry names `partners` / `partnersPerRound` (1 said `participants` /
 * `clientsPerRound`). Version-1 entries are still read: their manifest payload is mapped to the
 * version-2 names after validation (signatures and hashes cover the bytes as written).
 */
export const LEDGER_SCHEMA_VERSION = 2 as const;
export const SUPPORTED_LEDGER_VERSIONS = [1, 2] as const;
export type LedgerSchemaVersion = (typeof SUPPORTED_LEDGER_VERSIONS)[number];
export const GENESIS_PREV = '0'.repeat(64);

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
/** Key id = hex of the first 16 bytes of SHA-256(Ed25519 public key) — same rule as crypto/identity.ts. */
export const keyIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-character key id');
const base64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'expected base64');
/** Salted customer-id hash as stored by the partner: HMAC-SHA-256(salt, id) truncated to 128 bits. */
export const idHashSchema = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-character salted id hash');
const jobId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'job id: letters, digits, . _ - (max 128)');
const nonNeg = z.number().nonnegative();
const pos = z.number().positive();
const count = z.number().int().nonnegative();
const probability = z.number().gt(0).lt(1);
const isoTime = z.iso.datetime({ offset: true });

export const partySchema = z.strictObject({
  name: z.string().min(1).max(200),
  keyId: keyIdSchema,
  /** Ed25519 public key, base64 (32 bytes). */
  signPublicKey: base64,
});
export type Party = z.infer<typeof partySchema>;

/** A party's signature over the canonical payload without `attestation` (see verify.ts). */
export const attestationSchema = z.strictObject({ keyId: keyIdSchema, sig: base64 });
export type Attestation = z.infer<typeof attestationSchema>;

/** The limits a partner declared when it accepted a job; audit checks every round against them. */
export const policyLimitsSchema = z.strictObject({
  maxEpsilon: pos,
  maxDelta: probability,
  /** Lifetime budget left at acceptance time; the job may not spend more than this either. */
  remainingLifetimeEpsilon: nonNeg.optional(),
  maxRounds: z.number().int().positive().optional(),
  minNoiseMultiplier: pos.optional(),
  allowedPurposes: z.array(z.string().min(1)).optional(),
  allowedColumns: z.array(z.string().min(1)).optional(),
});
export type PolicyLimits = z.infer<typeof policyLimitsSchema>;

const dpPartnerParams = {
  /** Poisson sampling rate q. */
  samplingRate: z.number().gt(0).lte(1),
  /** Noise multiplier σ (noise std / clip norm). */
  noiseMultiplier: pos,
  /** Per-example clip norm C. */
  clipNorm: pos,
  /** DP-SGD steps taken this round. */
  steps: count,
  delta: probability,
  epsilonSpent: nonNeg,
  epsilonCumulative: nonNeg,
  ciphertextHashes: z.array(hex64),
};

const manifestEntryFields = {
  jobId,
  owner: partySchema,
  coordinator: partySchema,
  purpose: z.string().min(1),
  columns: z.array(z.string().min(1)),
  rounds: z.number().int().positive(),
  quorum: z.number().int().positive().optional(),
  /** null for a job without differential privacy (its partners then record no DP rounds). */
  dp: z
    .strictObject({
      targetEpsilon: pos,
      delta: probability,
      clipNorm: pos,
      noiseMultiplier: z.union([pos, z.literal('calibrate')]),
    })
    .nullable(),
  /** The full job manifest document (federation/manifest.ts), if the caller wants it embedded. */
  manifest: z.record(z.string(), z.unknown()).optional(),
};

/** The version-1 job manifest entry, read and mapped to the current names (see `parsePayload`). */
const manifestEntryV1 = z.strictObject({
  ...manifestEntryFields,
  participants: z.array(partySchema).min(1),
  clientsPerRound: z.number().int().positive().optional(),
});

export const payloadSchemas = {
  /** seq 0 of a job ledger, authored by the job owner; its keys are the ledger's trust anchor. */
  'job.manifest': z.strictObject({
    ...manifestEntryFields,
    partners: z.array(partySchema).min(1),
    partnersPerRound: z.number().int().positive().optional(),
  }),
  /** seq 0 of a node's local ledger: the node declares its own key (cross-checked by audit). */
  'ledger.genesis': z.strictObject({
    ledgerId: z.string().min(1).max(200),
    role: z.enum(['partner', 'coordinator', 'owner']),
    owner: partySchema,
  }),
  'partner.acceptance': z.strictObject({
    jobId,
    partner: keyIdSchema,
    /** Hash of the job ledger's seq-0 (manifest) entry the partner accepted. */
    manifestHash: hex64,
    policy: policyLimitsSchema,
    attestation: attestationSchema.optional(),
  }),
  'partner.refusal': z.strictObject({
    jobId,
    partner: keyIdSchema,
    manifestHash: hex64,
    code: z.string().min(1),
    reason: z.string().min(1),
    policy: policyLimitsSchema.optional(),
    attestation: attestationSchema.optional(),
  }),
  /** Hashes only: the coordinator never sees the CKKS secret key or its plaintext. */
  'key.ceremony': z.strictObject({
    jobId,
    heParamsHash: hex64,
    /** Absent when partners encrypt symmetrically (fedmark's default: only key holders encrypt). */
    publicKeyHash: hex64.optional(),
    sealedKeys: z.array(z.strictObject({ partner: keyIdSchema, sealedKeyHash: hex64 })),
  }),
  round: z.strictObject({
    jobId,
    round: z.number().int().positive(),
    selected: z.array(keyIdSchema),
    submitted: z.array(keyIdSchema),
    dropped: z.array(keyIdSchema),
    /** Every partner that charged its accountant this round (a partner that trained and then
     * dropped has still spent ε). */
    partners: z.array(z.strictObject({ partner: keyIdSchema, ...dpPartnerParams })),
    aggregateHash: hex64,
    globalModelHash: hex64,
    modelHashes: z.array(z.strictObject({ partner: keyIdSchema, hash: hex64 })),
    modelHashesAgreed: z.boolean(),
  }),
  /** A partner's own record of one round (local ledger). */
  'partner.round': z.strictObject({
    jobId,
    round: z.number().int().positive(),
    ...dpPartnerParams,
    rowsUsed: count.optional(),
    /** Hash of the global model the partner computed after applying the round's aggregate. */
    globalModelHash: hex64.optional(),
    /** The coordinator ledger's head the partner saw (witness: a later rewrite of the coordinator
     * ledger up to that point is caught by the cross-check). */
    coordinatorHead: z.strictObject({ seq: count, hash: hex64 }).optional(),
  }),
  evaluation: z.strictObject({
    jobId,
    round: z.number().int().nonnegative().optional(),
    metrics: z.record(z.string(), z.number()),
    segments: z.record(z.string(), z.record(z.string(), z.number())).optional(),
    ciphertextHashes: z.array(hex64).optional(),
  }),
  'budget.refusal': z.strictObject({
    jobId,
    partner: keyIdSchema,
    round: z.number().int().nonnegative().optional(),
    requestedEpsilon: nonNeg,
    remainingEpsilon: z.number(),
    reason: z.string().min(1),
  }),
  /** Per partner per job: rows used and rows excluded for missing consent. */
  'consent.usage': z.strictObject({
    jobId,
    partner: keyIdSchema,
    rowsUsed: count,
    rowsExcludedNoConsent: count,
    rowsExcludedWithdrawn: count.optional(),
    /** Partner-local sidecar of salted id hashes used (see subject-rights.ts); only its hash and
     * size leave the file. */
    sidecar: z
      .strictObject({
        file: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
        sha256: hex64,
        count,
        scheme: z.literal('hmac-sha256-128'),
      })
      .optional(),
  }),
  'consent.withdrawal': z
    .strictObject({
      partner: keyIdSchema,
      idHashes: z.array(idHashSchema),
      count,
      totalWithdrawn: count,
      effectiveFrom: isoTime,
    })
    .refine((p) => p.count === p.idHashes.length, { message: 'count must equal idHashes.length', path: ['count'] }),
  'partner.withdraw': z.strictObject({
    jobId,
    partner: keyIdSchema,
    reason: z.string().min(1),
    afterRound: count,
    attestation: attestationSchema.optional(),
  }),
  /** Emergency brake: no round may follow. */
  'job.halt': z.strictObject({ jobId, reason: z.string().min(1), afterRound: count }),
  'model.final': z.strictObject({
    jobId,
    modelHash: hex64,
    rounds: count,
    partners: z.array(z.strictObject({ partner: keyIdSchema, epsilon: nonNeg, delta: probability })),
  }),
  'ledger.truncation-repaired': z.strictObject({
    tornFile: z.string().min(1),
    tornBytes: z.number().int().positive(),
    tornSha256: hex64,
    lastValidSeq: z.number().int().min(-1),
  }),
  // Vertical learning (docs/VERTICAL.md): private set intersection and relay jobs.
  ...psiLedgerSchemas,
  ...verticalLedgerSchemas,
} as const;

export type EntryType = keyof typeof payloadSchemas;
export const ENTRY_TYPES = Object.keys(payloadSchemas) as EntryType[];
export type PayloadOf<T extends EntryType> = z.infer<(typeof payloadSchemas)[T]>;
export type PayloadInput<T extends EntryType> = z.input<(typeof payloadSchemas)[T]>;

export const envelopeSchema = z.strictObject({
  schemaVersion: z.union([z.literal(1), z.literal(LEDGER_SCHEMA_VERSION)]),
  seq: count,
  ts: isoTime,
  type: z.enum(ENTRY_TYPES as [EntryType, ...EntryType[]]),
  author: keyIdSchema,
  prev: hex64,
  payload: z.unknown(),
  sig: base64,
});
export type EntryEnvelope = z.infer<typeof envelopeSchema>;

type EntryOf<T extends EntryType> = Omit<EntryEnvelope, 'type' | 'payload'> & { type: T; payload: PayloadOf<T> };
/** A ledger entry, discriminated by `type`. */
export type LedgerEntry = { [T in EntryType]: EntryOf<T> }[EntryType];
export type EntryOfType<T extends EntryType> = EntryOf<T>;
/** An entry before signing. */
export type UnsignedEntry = Omit<LedgerEntry, 'sig'>;

/** Discriminated union of `{ type, payload }` for validating a whole entry at once. */
export const typedPayloadSchema = z.discriminatedUnion(
  'type',
  ENTRY_TYPES.map((t) => z.object({ type: z.literal(t), payload: payloadSchemas[t] })) as unknown as [
    z.ZodObject<{ type: z.ZodLiteral<EntryType>; payload: z.ZodType }>,
    ...z.ZodObject<{ type: z.ZodLiteral<EntryType>; payload: z.ZodType }>[],
  ],
);

export function isEntryType(t: string): t is EntryType {
  return Object.prototype.hasOwnProperty.call(payloadSchemas, t);
}

/**
 * Validates a payload for `type` as written under `schemaVersion` (default: the current one) and
 * returns it in the current shape; returns zod's result so callers choose between throwing and reporting.
 */
export function parsePayload<T extends EntryType>(type: T, payload: unknown, schemaVersion: number = LEDGER_SCHEMA_VERSION): z.ZodSafeParseResult<PayloadOf<T>> {
  if (schemaVersion === 1 && type === 'job.manifest') {
    const v1 = manifestEntryV1.safeParse(payload);
    if (!v1.success) return v1 as unknown as z.ZodSafeParseResult<PayloadOf<T>>;
    const { participants, clientsPerRound, ...rest } = v1.data;
    const current = { ...rest, partners: participants, ...(clientsPerRound === undefined ? {} : { partnersPerRound: clientsPerRound }) };
    return { success: true, data: current as PayloadOf<T> };
  }
  return (payloadSchemas[type] as unknown as z.ZodType<PayloadOf<T>>).safeParse(payload);
}
