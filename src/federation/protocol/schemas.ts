import { z } from 'zod';
import { publicIdentitySchema } from '../../crypto/identity.ts';
import { envelopeSchema } from '../../privacy/ledger/entries.ts';
import { headSchema } from '../../privacy/ledger/head.ts';
import { CHALLENGE_PATTERN } from './coordinator-proofs.ts';
import { jobIdSchema, signedManifestSchema } from '../manifest.ts';
import { PART_NAME } from '../workload.ts';

/**
 * The coordinator's wire protocol, defined once: every request body, path parameter, query and
 * response as a zod schema. The coordinator validates with them (fastify-type-provider-zod), the
 * OpenAPI document is generated from them, and the nodes' client parses every response with them.
 */

export const hex64Schema = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
export const keyIdParamSchema = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-character key id');
/** Names of the parts of an update envelope (a workload's `RoundPlan.parts`). */
export const partNameSchema = z.string().regex(PART_NAME, 'part names are 1–32 chars of a-z, 0-9 and "-", starting with a letter');

// --- path parameters and queries -------------------------------------------------------------

export const jobParamsSchema = z.object({ jobId: jobIdSchema });
export const roundParamsSchema = jobParamsSchema.extend({ round: z.coerce.number().int().positive().max(100_000) });
export const keyParamsSchema = jobParamsSchema.extend({ keyId: keyIdParamSchema });
export const aggregateQuerySchema = z.object({ part: partNameSchema });

// --- job state -------------------------------------------------------------------------------

export const jobStateSchema = z.enum(['awaiting-keys', 'running', 'completed', 'halted', 'failed']);
export type JobState = z.infer<typeof jobStateSchema>;
export const roundStateSchema = z.enum(['open', 'closed', 'failed']);
export type RoundState = z.infer<typeof roundStateSchema>;
export const partnerStatusSchema = z.enum(['invited', 'accepted', 'refused', 'withdrawn', 'left']);
export type PartnerStatus = z.infer<typeof partnerStatusSchema>;

/** What `GET /v1/jobs/:jobId` answers. Unsigned by the coordinator: nodes treat it as a hint, never as proof. */
export const jobStatusSchema = z.object({
  jobId: jobIdSchema,
  state: jobStateSchema,
  reason: z.string().nullable(),
  /** The current round (0 before round 1 opens) and its attempt. */
  round: z.number().int().nonnegative(),
  attempt: z.number().int().nonnegative(),
  totalRounds: z.number().int().positive(),
  roundState: roundStateSchema.nullable(),
  /** The workload's name for the current round (e.g. "train", "evaluate"). */
  roundKind: z.string().nullable(),
  /** The stage of the current round that collects messages now (e.g. "upload"). */
  stage: z.string().nullable(),
  selected: z.array(keyIdParamSchema),
  deadlineAt: z.number().nullable(),
  baseModelHash: hex64Schema.nullable(),
  submitted: z.array(keyIdParamSchema),
  closedRounds: z.array(z.number().int().positive()),
  partners: z.array(z.object({ keyId: keyIdParamSchema, name: z.string(), status: partnerStatusSchema })),
  keysReady: z.boolean(),
});
export type JobStatus = z.infer<typeof jobStatusSchema>;

// --- bodies and responses --------------------------------------------------------------------

export const errorBodySchema = z.object({ statusCode: z.number().int(), code: z.string(), error: z.string() });
export type ErrorBody = z.infer<typeof errorBodySchema>;
export const okSchema = z.object({ ok: z.literal(true) });
/**
 * `GET /health`: `ok` for everyone; the detail (store, disk, job counts) only for callers on the
 * coordinator's own host (loopback) — an operator's monitoring, not a stranger watching activity.
 * `ok` is false when the store cannot be written or free space is below the coordinator's floor.
 */
export const healthSchema = z.object({
  ok: z.boolean(),
  store: z.object({ writable: z.boolean(), error: z.string().optional() }).optional(),
  disk: z.object({ freeBytes: z.number().nullable(), minFreeBytes: z.number(), low: z.boolean() }).optional(),
  jobs: z.record(jobStateSchema, z.number().int()).optional(),
  openRounds: z.number().int().optional(),
});
export type Health = z.infer<typeof healthSchema>;
/** `GET /v1/identity?challenge=…`: a fresh challenge the coordinator signs with its key (coordinator-proofs.ts). */
export const identityQuerySchema = z.object({ challenge: z.string().regex(CHALLENGE_PATTERN, 'challenge: 16–128 characters of [A-Za-z0-9_-]').optional() });
/** The coordinator's public identity and, when asked with a challenge, its signature over it (`proof`). */
export const identityResponseSchema = z.object({
  name: z.string(),
  keyId: z.string(),
  signPublicKey: z.string(),
  boxPublicKey: z.string(),
  proof: z.object({ challenge: z.string(), signature: z.string() }).optional(),
});
/** The public part of the answer (for documentation; nodes check the whole answer with verifyIdentityAnswer). */
export const publicIdentityAnswerSchema = publicIdentitySchema;

export const createJobBodySchema = signedManifestSchema.extend({ ledgerGenesis: envelopeSchema });
export const createJobResponseSchema = z.object({ jobId: jobIdSchema });
export const manifestResponseSchema = signedManifestSchema.extend({
  /** Hash of the ledger's seq-0 manifest entry: what a partner names when it accepts. */
  ledgerManifestHash: hex64Schema,
  /** The owner-signed seq-0 entry itself, so a node checks it (and computes its hash) instead of trusting the hash. */
  ledgerGenesis: envelopeSchema,
});
export type ManifestResponse = z.infer<typeof manifestResponseSchema>;
/** The job ledger's head, as a head pointer signed by the coordinator's key (privacy/ledger/head.ts). */
export const ledgerHeadSchema = headSchema;
export type LedgerHead = z.infer<typeof ledgerHeadSchema>;

export const acceptanceBodySchema = z.object({ accepted: z.boolean(), reason: z.string().max(2000).optional(), statement: z.unknown().optional() });
export type AcceptanceBody = z.infer<typeof acceptanceBodySchema>;
export const submissionResponseSchema = z.object({ duplicate: z.boolean() });
export const declineBodySchema = z.object({
  attempt: z.number().int().nonnegative(),
  reason: z.string().min(1).max(2000),
  requestedEpsilon: z.number().nonnegative().optional(),
  remainingEpsilon: z.number().optional(),
});
export type DeclineBody = z.infer<typeof declineBodySchema>;
/** A key holder's state hash after a round and the model selection that state records (early stopping), which the others must report alike. */
export const modelSelectionSchema = z.object({ round: z.number().int().positive(), stopped: z.boolean() }).strict();
export const modelHashBodySchema = z.object({ hash: hex64Schema, selection: modelSelectionSchema.optional() });
export const withdrawBodySchema = z.object({ reason: z.string().min(1).max(2000), statement: z.record(z.string(), z.unknown()) });
/** A partner that stops for good: the same shape as a withdrawal, with its attested `partner.leave` statement. */
export const leaveBodySchema = withdrawBodySchema;
export const haltBodySchema = z.object({ reason: z.string().min(1).max(2000) });
