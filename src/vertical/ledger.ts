/**
 * Ledger entries of relay jobs (vertical learning), beside the PSI entries of ./psi/ledger.ts. Strict
 * objects like every ledger payload; none holds a customer id, a value or a cut — only what was
 * relayed (hashes and sizes), the label holder's attested releases and the parties' own summaries.
 *
 * Job ledger (coordinator-authored):  relay.round, vertical.release (the sender's attested statement)
 * Partner's local ledger:            vertical.release (the same statement), vertical.party.job
 */
import { z } from 'zod';
import { releaseStatementSchema } from '../federation/relay.ts';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters (SHA-256)');
const keyId = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-character key id');
const jobId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'job id: letters, digits, . _ - (max 128)');
const count = z.number().int().nonnegative();

export const verticalLedgerSchemas = {
  /** What one relay round carried: every message's sender, recipient, hash and size (never its content). */
  'relay.round': z.strictObject({
    jobId,
    round: z.number().int().positive(),
    kind: z.string().min(1).max(64),
    messages: z.array(
      z.strictObject({ from: z.union([keyId, z.literal('coordinator')]), to: z.union([keyId, z.literal('coordinator')]), sha256: hex64, bytes: count }),
    ),
  }),
  /** A sender's labelled DP releases of one round, attested by it before the round's bytes left it. */
  'vertical.release': releaseStatementSchema,
  /** A party's own summary of a vertical job: what it sent, received and keeps. */
  'vertical.party.job': z.strictObject({
    jobId,
    party: keyId,
    role: z.enum(['label', 'features', 'psi']),
    rounds: count,
    messagesSent: count,
    bytesSent: count,
    /** SHA-256 over the hashes of every message sent, in order (matches the job ledger's relay.round entries). */
    sentDigest: hex64,
    /** Hash of the model part this party keeps locally (absent for PSI). */
    modelHash: hex64.optional(),
    alignedRows: count.optional(),
  }),
} as const;
