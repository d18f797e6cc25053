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
 * 3: every labelled release of a round is recorded (`releases`, with the `attempt` it belongs to):
 * a partner writes `partner.release` before its upload leaves, the coordinator records the
 * releases of every attempt — `round`, `evaluation`, and `attempt.failed` for attempts that missed
 * their quorum. Only fields and entry types were added: version-2 entries read unchanged (a v2
 * round record is one `update` release of attempt 0). The `job.manifest` entry may carry the owner's
 * `keyCommitment` (federation/key-commitment.ts; added to version 3 before it was released).
 */
export const LEDGER_SCHEMA_VERSION = 3 as const;
export const SUPPORTED_LEDGER_VERSIONS = [1, 2, 3] as const;
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

/**
 * One Gaussian release as charged (src/privacy/dp-event.ts `LabelledDpEvent`): what it bought
 * (`update`, `weight`, `evaluation`, …), its DP event (q, σ, steps) and the L2 sensitivity σ is
 * relative to (DP-SGD: the clip norm C).
 */
export const releaseSchema = z.strictObject({
  label: z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'release label: 1–64 chars of a-z, 0-9 and "-"'),
  samplingRate: z.number().gt(0).lte(1),
  noiseMultiplier: pos,
  steps: count,
  sensitivity: pos,
});
export type ReleaseRecord = z.infer<typeof releaseSchema>;

/** A partner's charges for one attempt of one round: every release it made, and ε before/after by its own accountant. */
const attemptReleaseFields = {
  partner: keyIdSchema,
  attempt: count,
  releases: z.array(releaseSchema).min(1),
  delta: probability,
  /** ε this attempt added to the job's total for the partner. */
  epsilonSpent: nonNeg,
  /** The partner's ε for the job after this attempt. */
  epsilonCumulative: nonNeg,
  /** sha256 of each part it uploaded, in the envelope's order. */
  ciphertextHashes: z.array(hex64),
};
export const attemptReleasesSchema = z.strictObject(attemptReleaseFields);
export type AttemptReleases = z.infer<typeof attemptReleasesSchema>;

/** Optional in version 3 records that keep their version-2 fields: the attempt and every labelled release. */
const labelledFields = {
  attempt: count.optional(),
  releases: z.array(releaseSchema).min(1).optional(),
};

/** Version-2 DP fields of a round record: the round's (single) release; in version 3 the `update` release, with all of them in `releases`. */
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

/** A partner-local file of salted customer-id hashes (subject-rights.ts); only its hash and size are recorded. */
const sidecarSchema = z.strictObject({
  file: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
  sha256: hex64,
  count,
  scheme: z.literal('hmac-sha256-128'),
});

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
  /** The owner's commitment to the job key (federation/key-commitment.ts); null for a job without one (plaintext aggregation). */
  keyCommitment: hex64.nullable().optional(),
};

/** The version-1 job manifest entry, read and mapped to the current names (see `parsePayload`). */
const manifestEntryV1 = z.strictObject({
  ...manifestEntryFields,
  participants: z.array(partySchema).min(1),
  clientsPerRound: z.number().int().positive().optional(),
});

/** The training round whose model a job releases (selected on the federated validation metrics) and whether training stopped early. */
const modelSelectionEntry = z.strictObject({ round: z.number().int().positive(), stopped: z.boolean() });

/** A masked attempt's secure-aggregation config as the coordinator records it (federation/secagg/ledger-record.ts; docs/LEDGER.md). */
const secaggRecordSchema = z.strictObject({
  configId: hex64,
  threshold: z.number().int().min(2),
  minSurvivors: z.number().int().min(2),
  graph: z.union([z.strictObject({ kind: z.literal('complete') }), z.strictObject({ kind: z.literal('harary'), degree: z.number().int().min(2) })]),
  bfvParamsId: hex64,
  plainModulus: z.number().int().min(3),
  encodingId: hex64,
});
export type SecaggLedgerRecord = z.infer<typeof secaggRecordSchema>;

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
    /** The attempt whose sums were applied (version 3). */
    attempt: count.optional(),
    selected: z.array(keyIdSchema),
    submitted: z.array(keyIdSchema),
    dropped: z.array(keyIdSchema),
    /** Every partner that charged its accountant this round (a partner that trained and then
     * dropped has still spent ε). */
    partners: z.array(z.strictObject({ partner: keyIdSchema, ...dpPartnerParams, ...labelledFields })),
    aggregateHash: hex64,
    globalModelHash: hex64,
    modelHashes: z.array(z.strictObject({ partner: keyIdSchema, hash: hex64 })),
    modelHashesAgreed: z.boolean(),
    /** The model selection every key holder reported with this round's agreed state (early stopping, docs/LEDGER.md). */
    selection: modelSelectionEntry.optional(),
    /** Masked aggregation: the applied attempt's secure-aggregation config. */
    secagg: secaggRecordSchema.optional(),
  }),
  /** A partner's own record of one round (local ledger). */
  'partner.round': z.strictObject({
    jobId,
    round: z.number().int().positive(),
    ...dpPartnerParams,
    ...labelledFields,
    rowsUsed: count.optional(),
    /** Hash of the global model the partner computed after applying the round's aggregate. */
    globalModelHash: hex64.optional(),
    /** The coordinator ledger's head the partner saw (witness: a later rewrite of the coordinator
     * ledger up to that point is caught by the cross-check). */
    coordinatorHead: z.strictObject({ seq: count, hash: hex64 }).optional(),
  }),
  /**
   * A partner's own record of a round its data took part in *without* a DP mechanism (a job without
   * differential privacy): what it sent and the state it computed. Nothing bounds what such a round
   * reveals: its privacy loss is unbounded (ε = ∞), never 0.
   */
  'partner.participation': z.strictObject({
    jobId,
    partner: keyIdSchema,
    round: z.number().int().positive(),
    attempt: count.optional(),
    ciphertextHashes: z.array(hex64),
    rowsUsed: count.optional(),
    globalModelHash: hex64.optional(),
    coordinatorHead: z.strictObject({ seq: count, hash: hex64 }).optional(),
  }),
  /**
   * A partner's witness of the coordinator's ledger head after the job ended (`state`): the head
   * pointer exactly as the coordinator signed it, so the audit can show the coordinator stated this
   * head and flag any later rewrite of the ledger up to it.
   */
  'partner.witness': z.strictObject({
    jobId,
    partner: keyIdSchema,
    state: z.string().min(1).max(64),
    coordinatorHead: z.strictObject({
      schemaVersion: z.number().int().positive(),
      seq: count,
      hash: hex64,
      ts: isoTime,
      author: keyIdSchema,
      sig: base64,
    }),
  }),
  evaluation: z.strictObject({
    jobId,
    round: z.number().int().nonnegative().optional(),
    attempt: count.optional(),
    metrics: z.record(z.string(), z.number()),
    segments: z.record(z.string(), z.record(z.string(), z.number())).optional(),
    ciphertextHashes: z.array(hex64).optional(),
    /** What each submitter released for the evaluation (version 3; DP jobs). */
    partners: z.array(attemptReleasesSchema).optional(),
  }),
  /**
   * A partner's own record of what it released for one attempt (local ledger, version 3), written
   * before the upload leaves: a release that never reached the coordinator is still on record.
   */
  'partner.release': z.strictObject({
    jobId,
    round: z.number().int().positive(),
    kind: z.string().min(1).max(64),
    ...attemptReleaseFields,
  }),
  /** An attempt that missed its quorum (version 3): its submitters' releases stay spent and on record. */
  'attempt.failed': z.strictObject({
    jobId,
    round: z.number().int().positive(),
    attempt: count,
    kind: z.string().min(1).max(64),
    reason: z.string().min(1),
    selected: z.array(keyIdSchema),
    submitted: z.array(keyIdSchema),
    partners: z.array(attemptReleasesSchema),
    /** Masked aggregation: the failed attempt's secure-aggregation config. */
    secagg: secaggRecordSchema.optional(),
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
    sidecar: sidecarSchema.optional(),
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
  /**
   * A partner that stops for good mid-job (budget exhausted, stopped by its operator, a fatal error):
   * the rounds no longer wait for it, and it is selected for none after `afterRound`.
   */
  'partner.leave': z.strictObject({
    jobId,
    partner: keyIdSchema,
    reason: z.string().min(1),
    afterRound: count,
    attestation: attestationSchema.optional(),
  }),
  /** Emergency brake: no round may follow. */
  'job.halt': z.strictObject({ jobId, reason: z.string().min(1), afterRound: count }),
  /**
   * A partner's own record of the model selection its state made after applying `round` (early
   * stopping): the training round whose model the job releases, and whether training stopped early.
   */
  'partner.selection': z.strictObject({
    jobId,
    partner: keyIdSchema,
    round: z.number().int().positive(),
    selection: modelSelectionEntry,
    globalModelHash: hex64,
  }),
  'model.final': z.strictObject({
    jobId,
    modelHash: hex64,
    rounds: count,
    /** The training round whose model this is, when the job selected one (early stopping). */
    selection: modelSelectionEntry.optional(),
    partners: z.array(z.strictObject({ partner: keyIdSchema, epsilon: nonNeg, delta: probability })),
  }),
  /**
   * A partner scored its own customers with a model (local ledger only; scores never leave the
   * partner): one entry per batch run, or per sealed window of the scoring service. See
   * docs/SCORING.md.
   */
  'model.scoring': z
    .strictObject({
      runId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'run id: letters, digits, . _ - (max 128)'),
      mode: z.enum(['batch', 'serve']),
      partner: keyIdSchema,
      modelHash: hex64,
      modelKind: z.string().min(1).max(64),
      /** The job that trained the model, when the model records it. */
      modelJobId: jobId.optional(),
      schemaHash: hex64,
      purpose: z.string().min(1).max(200),
      /** Who started the run (operator or service name); the signing key is the entry's author. */
      operator: z.string().min(1).max(200),
      startedAt: isoTime,
      finishedAt: isoTime,
      rowsRead: count,
      rowsScored: count,
      rowsExcludedNoConsent: count,
      rowsExcludedWithdrawn: count,
      /** Rows refused as bad input (never scored). */
      rowsRejected: count,
      /** Batch: SHA-256 of the input file. */
      inputSha256: hex64.optional(),
      /** Batch: SHA-256 of the output file; serve: of the window's response hashes (docs/SCORING.md). */
      outputSha256: hex64,
      /** Serve: requests answered in the window and who sent them (key ids, or "token"). */
      requests: count.optional(),
      requesters: z.array(z.string().min(1).max(64)).max(1000).optional(),
      /** Salted ids of the customers scored (see subject-rights.ts). */
      sidecar: sidecarSchema.optional(),
    })
    .refine((p) => p.rowsRead === p.rowsScored + p.rowsExcludedNoConsent + p.rowsExcludedWithdrawn + p.rowsRejected, {
      message: 'rowsRead must equal rowsScored + rowsExcludedNoConsent + rowsExcludedWithdrawn + rowsRejected',
      path: ['rowsRead'],
    })
    .refine((p) => !p.sidecar || p.sidecar.count <= p.rowsScored, {
      message: 'the sidecar cannot list more customers than were scored',
      path: ['sidecar', 'count'],
    })
    .refine((p) => Date.parse(p.startedAt) <= Date.parse(p.finishedAt), { message: 'finishedAt is before startedAt', path: ['finishedAt'] }),
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
  schemaVersion: z.union([z.literal(1), z.literal(2), z.literal(LEDGER_SCHEMA_VERSION)]),
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
export function parsePayload<T extends EntryType>(
  type: T,
  payload: unknown,
  schemaVersion: number = LEDGER_SCHEMA_VERSION,
): z.ZodSafeParseResult<PayloadOf<T>> {
  if (schemaVersion === 1 && type === 'job.manifest') {
    const v1 = manifestEntryV1.safeParse(payload);
    if (!v1.success) return v1 as unknown as z.ZodSafeParseResult<PayloadOf<T>>;
    const { participants, clientsPerRound, ...rest } = v1.data;
    const current = { ...rest, partners: participants, ...(clientsPerRound === undefined ? {} : { partnersPerRound: clientsPerRound }) };
    return { success: true, data: current as PayloadOf<T> };
  }
  return (payloadSchemas[type] as unknown as z.ZodType<PayloadOf<T>>).safeParse(payload);
}
