/**
 * A data partner's local privacy policy: whom it works for (trusted owner keys), which columns and
 * purposes it allows, how much ε a single job may spend, its lifetime ε budget per dataset, the
 * largest δ it accepts, the aggregation it requires (encryption, a minimum quorum, a maximum number
 * of rounds), and optionally a two-person (dual) authorization by named compliance officers. The
 * node checks every job against this file before it touches data, private or not.
 */
import { readFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';

const base64Key = z
  .string()
  .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64')
  .refine((s) => Buffer.from(s, 'base64').length === nacl.sign.publicKeyLength, {
    message: `must decode to a ${nacl.sign.publicKeyLength}-byte Ed25519 public key`,
  });

export const officerSchema = z.object({
  name: z.string().min(1),
  signPublicKey: base64Key,
});

export const dualAuthorizationSchema = z
  .object({
    officers: z.array(officerSchema).min(2),
    required: z.number().int().min(2),
  })
  .refine((d) => d.required <= d.officers.length, {
    message: 'required must not exceed the number of officers',
    path: ['required'],
  })
  .refine((d) => new Set(d.officers.map((o) => o.name)).size === d.officers.length, {
    message: 'officer names must be distinct',
    path: ['officers'],
  })
  .refine((d) => new Set(d.officers.map((o) => o.signPublicKey)).size === d.officers.length, {
    // Two "officers" sharing one key would let one person satisfy a two-person rule.
    message: 'officer keys must be distinct',
    path: ['officers'],
  });

export const policySchema = z
  .object({
    partner: z.string().min(1),
    datasetId: z.string().min(1),
    maxEpsilonPerJob: z.number().positive().finite(),
    lifetimeEpsilon: z.number().positive().finite(),
    maxDelta: z.number().gt(0).lt(1),
    allowedColumns: z.array(z.string().min(1)),
    allowedPurposes: z.array(z.string().min(1)),
    dualAuthorization: dualAuthorizationSchema.optional(),
    /** Accept jobs without differential privacy (benchmarks, synthetic data). Off by default. */
    allowNonPrivateJobs: z.boolean().optional(),
    /**
     * Owner key ids this partner works for: a job signed by any other owner is refused, whoever
     * registered its id first. (A node can also pin one owner per job with --owner-key-id.)
     */
    trustedOwnerKeyIds: z
      .array(z.string().regex(/^[0-9a-f]{32}$/, 'expected a 32-hex-character key id'))
      .min(1)
      .optional(),
    /** Accept jobs that aggregate in plaintext (`plain-insecure`: the coordinator reads every update). Off by default. */
    allowPlaintextAggregation: z.boolean().optional(),
    /**
     * The smallest quorum accepted (default 2, never less): a round closed with one submission
     * publishes that partner's update alone to every key holder.
     */
    minQuorum: z.number().int().min(2, "minQuorum must be at least 2: a one-partner sum is that partner's update").optional(),
    /** The most training rounds a job may have (the manifest's `rounds`). */
    maxRounds: z.number().int().positive().optional(),
  })
  .strict()
  .refine((p) => p.maxEpsilonPerJob <= p.lifetimeEpsilon, {
    message: 'maxEpsilonPerJob must not exceed lifetimeEpsilon',
    path: ['maxEpsilonPerJob'],
  });

export type PartnerPolicy = z.infer<typeof policySchema>;

function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/** Validates an already-parsed policy object; `source` names it in error messages. */
export function parsePolicy(value: unknown, source = 'policy'): PartnerPolicy {
  const r = policySchema.safeParse(value);
  if (!r.success)
    throw new FedmarkError('POLICY_INVALID', `${source}: invalid policy — ${formatIssues(r.error)}`, {
      issues: r.error.issues,
    });
  return r.data;
}

/** Reads and validates a policy JSON file; errors name the file and the offending field. */
export function loadPolicy(path: string): PartnerPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FedmarkError(code === 'ENOENT' ? 'POLICY_NOT_FOUND' : 'POLICY_UNREADABLE', `${path}: cannot read policy file (${code ?? String(err)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FedmarkError('POLICY_INVALID_JSON', `${path}: policy is not valid JSON (${(err as Error).message})`);
  }
  return parsePolicy(json, path);
}

/** The smallest quorum a policy accepts when it says nothing (and the floor of `minQuorum`). */
export const DEFAULT_MIN_QUORUM = 2;

export interface JobRequest {
  purpose: string;
  columns: string[];
  /** The job's ε target per partner; null for a job without differential privacy. */
  targetEpsilon: number | null;
  /** δ of a private job (null without differential privacy). */
  delta: number | null;
  /** Number of rows (records) in the partner's dataset for this job. */
  datasetRows: number;
  /** Who signed the job (checked against `trustedOwnerKeyIds`). */
  ownerKeyId?: string;
  /** The job's aggregation scheme (`ckks`, `plain-insecure`, …). */
  encryption?: string;
  quorum?: number;
  /** Training rounds, as the manifest states them. */
  rounds?: number;
}

/**
 * Checks a job against the policy and the lifetime ε already spent on this dataset. Every
 * violated rule is reported (not only the first), so a refusal explains itself completely. The
 * purpose, columns, owner, encryption, quorum and rounds are checked for every job; the ε and δ
 * rules for private jobs, and a job without DP needs `allowNonPrivateJobs`. (A field the caller
 * leaves out of `job` is not checked: the node's review passes them all.)
 * δ must also be ≤ 1/n: a larger δ permits mechanisms that publish a whole record with
 * non-negligible probability (Dwork & Roth 2014, §2.3).
 */
export function checkJob(policy: PartnerPolicy, job: JobRequest, spentLifetime: number): { ok: true } | { ok: false; reasons: string[] } {
  const reasons: string[] = [];
  if (job.ownerKeyId !== undefined && policy.trustedOwnerKeyIds && !policy.trustedOwnerKeyIds.includes(job.ownerKeyId))
    reasons.push(`the job is signed by owner ${job.ownerKeyId}, who is not among this partner's trusted owners (${policy.trustedOwnerKeyIds.join(', ')})`);
  if (!policy.allowedPurposes.includes(job.purpose))
    reasons.push(`purpose "${job.purpose}" is not allowed (allowed: ${policy.allowedPurposes.join(', ') || 'none'})`);
  const allowed = new Set(policy.allowedColumns);
  const denied = [...new Set(job.columns)].filter((c) => !allowed.has(c));
  if (denied.length > 0) reasons.push(`columns not allowed: ${denied.join(', ')}`);
  if (job.encryption !== undefined && job.encryption === 'plain-insecure' && !policy.allowPlaintextAggregation)
    reasons.push(
      "the job aggregates in plaintext (plain-insecure): the coordinator would read this partner's update (policy allowPlaintextAggregation is off)",
    );
  const minQuorum = Math.max(DEFAULT_MIN_QUORUM, policy.minQuorum ?? DEFAULT_MIN_QUORUM);
  if (job.quorum !== undefined && job.quorum < minQuorum)
    reasons.push(`quorum ${job.quorum} is below this partner's minimum ${minQuorum}: a round could publish a sum of fewer partners' updates`);
  if (job.rounds !== undefined && policy.maxRounds !== undefined && job.rounds > policy.maxRounds)
    reasons.push(`${job.rounds} rounds exceed this partner's maxRounds ${policy.maxRounds}`);
  if (job.targetEpsilon === null || job.delta === null) {
    if (!policy.allowNonPrivateJobs)
      reasons.push('the job is not differentially private; this node only releases DP updates (policy allowNonPrivateJobs is off)');
    return reasons.length === 0 ? { ok: true } : { ok: false, reasons };
  }
  if (!(job.targetEpsilon > 0 && Number.isFinite(job.targetEpsilon))) reasons.push(`target epsilon must be a finite number > 0, got ${job.targetEpsilon}`);
  else if (job.targetEpsilon > policy.maxEpsilonPerJob) reasons.push(`target epsilon ${job.targetEpsilon} exceeds maxEpsilonPerJob ${policy.maxEpsilonPerJob}`);
  if (!(spentLifetime >= 0)) reasons.push(`spent lifetime epsilon must be >= 0, got ${spentLifetime}`);
  else if (job.targetEpsilon > 0 && spentLifetime + job.targetEpsilon > policy.lifetimeEpsilon)
    reasons.push(`lifetime budget exceeded: spent ${spentLifetime} + job ${job.targetEpsilon} > lifetimeEpsilon ${policy.lifetimeEpsilon}`);
  if (!(job.delta > 0 && job.delta < 1)) reasons.push(`delta must be in (0, 1), got ${job.delta}`);
  else {
    if (job.delta > policy.maxDelta) reasons.push(`delta ${job.delta} exceeds maxDelta ${policy.maxDelta}`);
    if (!(Number.isInteger(job.datasetRows) && job.datasetRows > 0)) reasons.push(`dataset rows must be a positive integer, got ${job.datasetRows}`);
    else if (job.delta > 1 / job.datasetRows) reasons.push(`delta ${job.delta} exceeds 1/n = ${1 / job.datasetRows} for n = ${job.datasetRows} rows`);
  }
  return reasons.length === 0 ? { ok: true } : { ok: false, reasons };
}

/**
 * True only when at least `required` distinct named officers of the policy produced valid Ed25519
 * detached signatures over `payload`. Signatures by unknown names, malformed base64, duplicate
 * officers or invalid signatures never count. Without a dualAuthorization section: false.
 */
export function verifyDualAuthorization(payload: Uint8Array, signatures: { officer: string; signature: string }[], policy: PartnerPolicy): boolean {
  const dual = policy.dualAuthorization;
  if (!dual) return false;
  const officers = new Map(dual.officers.map((o) => [o.name, Buffer.from(o.signPublicKey, 'base64')]));
  const valid = new Set<string>();
  for (const s of signatures) {
    const key = officers.get(s.officer);
    if (!key || valid.has(s.officer) || typeof s.signature !== 'string') continue;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s.signature)) continue;
    const sig = Buffer.from(s.signature, 'base64');
    if (sig.length !== nacl.sign.signatureLength) continue;
    if (nacl.sign.detached.verify(payload, new Uint8Array(sig), new Uint8Array(key))) valid.add(s.officer);
  }
  return valid.size >= dual.required;
}
