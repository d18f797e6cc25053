/**
 * The PSI job spec: everything the parties must agree on before any id is hashed. Every message of
 * the job carries the spec's hash, so a party running other normalisation rules, another ring order
 * or another cap is refused instead of silently matching nothing.
 */
import { z } from 'zod';
import { publicIdentitySchema, type PublicIdentity } from '../../crypto/identity.ts';
import { FedmarkError } from '../../errors.ts';
import { canonicalJson } from '../../privacy/ledger/canonical.ts';
import { sha256Hex } from '../../util/hash.ts';
import { SUITES } from './group.ts';
import { idRulesSchema } from './normalise.ts';

export const PSI_SPEC_FORMAT = 'fedmark-psi-1' as const;
export const MAX_PSI_PARTIES = 8;
/** Largest list the protocol accepts at all (50M ids ≈ 1.6 GB per list on the wire). */
export const MAX_PSI_SET_SIZE = 50_000_000;

export const psiJobIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'job id: letters, digits, . _ - (max 128)');

export const psiSpecSchema = z
  .strictObject({
    format: z.literal(PSI_SPEC_FORMAT),
    jobId: psiJobIdSchema,
    /** Hash-to-curve suite (group.ts / hash-to-curve.ts). */
    suite: z.enum(SUITES).default('p256-ti-sha256'),
    /** The ring, in order: party i sends its blinded list to party i + 1 (mod the ring size). */
    parties: z.array(publicIdentitySchema).min(2).max(MAX_PSI_PARTIES),
    coordinator: publicIdentitySchema,
    id: z.strictObject({
      column: z.string().min(1),
      rules: idRulesSchema,
      /** Rows whose id cannot be normalised: left out and counted ('skip') or refused ('error'). */
      invalid: z.enum(['skip', 'error']).default('skip'),
    }),
    /**
     * Probing cap: no party may bring more distinct ids, and every party refuses a foreign list
     * longer than this. It bounds how many guesses a party can test against the others' sets.
     */
    maxSetSize: z.number().int().positive().max(MAX_PSI_SET_SIZE),
    /**
     * Pad every list with random points up to maxSetSize, so the list length every other party and
     * the coordinator see is the public cap, not the party's real set size.
     */
    padToMax: z.boolean().default(true),
    /** Plaintext bytes per sealed chunk (AES-256-GCM STREAM, seal-stream.ts). */
    chunkBytes: z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024),
  })
  .superRefine((s, ctx) => {
    const ids = [...s.parties.map((p) => p.keyId), s.coordinator.keyId];
    if (new Set(ids).size !== ids.length) {
      ctx.addIssue({ code: 'custom', path: ['parties'], message: 'every party and the coordinator need distinct keys' });
    }
  });

export type PsiSpec = z.infer<typeof psiSpecSchema>;
export type PsiSpecInput = z.input<typeof psiSpecSchema>;

export function parsePsiSpec(input: unknown, source = 'PSI spec'): PsiSpec {
  const r = psiSpecSchema.safeParse(input);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  throw new FedmarkError('PSI_SPEC_INVALID', `${source}: invalid PSI job spec:\n  ${problems.join('\n  ')}`);
}

/** The hash-to-curve domain of a job: different jobs hash the same id to unrelated points. */
export function hashDomain(spec: Pick<PsiSpec, 'jobId'>): string {
  return `fedmark-psi-v1|${spec.jobId}`;
}

/** SHA-256 (hex) of the spec's canonical JSON (RFC 8785), bound into every message. */
export function specHash(spec: PsiSpec): string {
  return sha256Hex(canonicalJson(spec));
}

export function partyIndex(spec: PsiSpec, keyId: string): number {
  return spec.parties.findIndex((p) => p.keyId === keyId);
}

export function ringNext(spec: PsiSpec, index: number): PublicIdentity {
  return spec.parties[(index + 1) % spec.parties.length];
}

export function ringPrevious(spec: PsiSpec, index: number): PublicIdentity {
  const m = spec.parties.length;
  return spec.parties[(index - 1 + m) % m];
}

/**
 * Number of keys already applied to origin's list when party `at` receives it (the origin sends its
 * list with 1; the list is fully blinded, and goes to the coordinator, once it has all of them).
 */
export function keysAppliedOnArrival(spec: PsiSpec, origin: number, at: number): number {
  const m = spec.parties.length;
  return (at - origin + m) % m;
}

/** Length of every list a party sends: the cap when padding, else the party's distinct ids. */
export function listLength(spec: PsiSpec, distinctIds: number): number {
  return spec.padToMax ? spec.maxSetSize : distinctIds;
}

/** Why a list of `count` elements may not travel in this job (null when it may). */
export function listLengthProblem(spec: PsiSpec, count: number): string | null {
  if (spec.padToMax ? count === spec.maxSetSize : count <= spec.maxSetSize) return null;
  return `${count} elements; the job ${spec.padToMax ? `pads every list to exactly ${spec.maxSetSize}` : `caps every list at ${spec.maxSetSize}`}`;
}
