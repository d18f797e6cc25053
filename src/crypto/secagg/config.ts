/**
 * The public parameters of one secure-aggregation attempt, derived from the manifest and the round
 * alone, so every party computes the same object and refuses a roster that carries another. Its
 * canonical hash (configId) is bound into every message, share and mask of the attempt, and the whole
 * object is what the manifest and the ledger record.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { encodingPlanSchema, type EncodingPlan } from './encoding.ts';
import { neighbourhoods } from './graph.ts';
import { MAX_SHARE_HOLDERS } from './shamir.ts';

export const SECAGG_PROTOCOL = 'fedmark-secagg-1';
/** Up to this many selected partners the graph is complete (Bonawitz); above, SecAgg+ (Bell). */
export const COMPLETE_GRAPH_MAX_PARTNERS = 64;
/** Default neighbours per partner in the sparse graph (see docs/CRYPTO.md for the argument). */
export const DEFAULT_SPARSE_DEGREE = 64;
/** Shares needed, as a fraction of a partner's share holders: Bonawitz et al. use t ≈ 2n/3. */
export const DEFAULT_THRESHOLD_FRACTION = 2 / 3;

const keyIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'must be a 32-hex key id');
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export const secaggConfigSchema = z
  .object({
    protocol: z.literal(SECAGG_PROTOCOL),
    jobId: z.string().min(1).max(200),
    round: z.number().int().min(0),
    attempt: z.number().int().min(0),
    /** The selected partners' key ids, sorted: a partner's index in this list orders every pair. */
    selected: z
      .array(keyIdSchema)
      .min(2)
      .max(1 << 16),
    /** Shares that recover any partner's mask secret key or self-mask seed (t of its holders). */
    threshold: z.number().int().min(2),
    /** Fewest partners a published sum may hold: a smaller survivor set is refused by every partner. */
    minSurvivors: z.number().int().min(2),
    graph: z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('complete') }).strict(),
      z.object({ kind: z.literal('harary'), degree: z.number().int().min(2), seed: hex64 }).strict(),
    ]),
    he: z.object({ scheme: z.literal('bfv'), paramsId: hex64, plainModulus: z.number().int().min(3), maxSummands: z.number().int().min(1) }).strict(),
    encoding: encodingPlanSchema,
    primitives: z
      .object({
        keyAgreement: z.literal('X25519'),
        kdf: z.literal('HKDF-SHA256'),
        prg: z.literal('AES-256-CTR, rejection sampling mod t'),
        secretSharing: z.literal('Shamir over GF(2^8), shamir-secret-sharing 0.0.4'),
        shareEncryption: z.literal('X25519 + HKDF-SHA256 + AES-256-GCM, per-round keys'),
        signatures: z.literal('Ed25519'),
      })
      .strict(),
  })
  .strict();

export type SecaggConfig = z.infer<typeof secaggConfigSchema>;

export const SECAGG_PRIMITIVES: SecaggConfig['primitives'] = Object.freeze({
  keyAgreement: 'X25519',
  kdf: 'HKDF-SHA256',
  prg: 'AES-256-CTR, rejection sampling mod t',
  secretSharing: 'Shamir over GF(2^8), shamir-secret-sharing 0.0.4',
  shareEncryption: 'X25519 + HKDF-SHA256 + AES-256-GCM, per-round keys',
  signatures: 'Ed25519',
});

export interface SecaggConfigInput {
  jobId: string;
  round: number;
  attempt: number;
  /** Key ids of the partners selected for this round (any order; the config sorts them). */
  selected: string[];
  he: { paramsId: string; plainModulus: number; maxSummands: number };
  encoding: EncodingPlan;
  /** Explicit threshold; default ⌈fraction × holders⌉, never below 2. */
  threshold?: number;
  thresholdFraction?: number;
  /** Sparse graph degree (even); default: complete up to 64 partners, else DEFAULT_SPARSE_DEGREE. */
  degree?: number;
  /** Fewest survivors; default the threshold. */
  minSurvivors?: number;
}

function bad(message: string): never {
  throw new FedmarkError('SECAGG_BAD_CONFIG', message);
}

/** Share holders of one partner's secrets: its neighbours and itself. */
export function holdersPerPartner(n: number, graph: SecaggConfig['graph']): number {
  return graph.kind === 'complete' ? n : graph.degree + 1;
}

/** Default threshold: ⌈fraction·holders⌉, at least 2 and at most the holders. */
export function defaultThreshold(holders: number, fraction = DEFAULT_THRESHOLD_FRACTION): number {
  if (!(fraction > 0 && fraction <= 1)) bad(`threshold fraction ${fraction} must be in (0, 1]`);
  return Math.min(holders, Math.max(2, Math.ceil(fraction * holders)));
}

/** The public graph seed: a hash of what the round fixed before any key existed. */
function graphSeed(jobId: string, round: number, attempt: number, selected: string[]): string {
  return createHash('sha256')
    .update(`fedmark-secagg-1/graph\n${jobId}\n${round}\n${attempt}\n${selected.join(',')}`)
    .digest('hex');
}

export function makeSecaggConfig(input: SecaggConfigInput): SecaggConfig {
  const selected = [...input.selected].sort();
  const n = selected.length;
  if (new Set(selected).size !== n) bad('a partner is selected twice');
  if (n < 2) bad(`secure aggregation needs at least 2 partners, got ${n}`);
  let graph: SecaggConfig['graph'];
  const degree = input.degree ?? (n <= COMPLETE_GRAPH_MAX_PARTNERS ? undefined : DEFAULT_SPARSE_DEGREE);
  if (degree === undefined || degree >= n - 1) {
    graph = { kind: 'complete' };
  } else {
    graph = { kind: 'harary', degree: degree + (degree % 2), seed: graphSeed(input.jobId, input.round, input.attempt, selected) };
    if (graph.degree >= n - 1) graph = { kind: 'complete' };
  }
  const holders = holdersPerPartner(n, graph);
  const threshold = input.threshold ?? defaultThreshold(holders, input.thresholdFraction);
  const config: SecaggConfig = {
    protocol: SECAGG_PROTOCOL,
    jobId: input.jobId,
    round: input.round,
    attempt: input.attempt,
    selected,
    threshold,
    minSurvivors: input.minSurvivors ?? threshold,
    graph,
    he: { scheme: 'bfv', ...input.he },
    encoding: input.encoding,
    primitives: { ...SECAGG_PRIMITIVES },
  };
  return validateSecaggConfig(config);
}

/** Schema and cross-field rules; throws SECAGG_BAD_CONFIG naming the first problem. */
export function validateSecaggConfig(input: unknown): SecaggConfig {
  const parsed = secaggConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    bad(`secure aggregation config at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  const c = parsed.data;
  const n = c.selected.length;
  for (let i = 1; i < n; i++) if (!(c.selected[i - 1] < c.selected[i])) bad('selected partners must be sorted and distinct');
  const holders = holdersPerPartner(n, c.graph);
  if (holders > MAX_SHARE_HOLDERS) bad(`${holders} share holders per partner exceed the ${MAX_SHARE_HOLDERS} of GF(2^8) Shamir sharing: use a sparse graph`);
  if (c.threshold > holders) bad(`threshold ${c.threshold} exceeds the ${holders} share holders per partner`);
  if (c.minSurvivors < c.threshold && c.graph.kind === 'complete') bad(`minSurvivors ${c.minSurvivors} is below the threshold ${c.threshold}`);
  if (c.minSurvivors > n) bad(`minSurvivors ${c.minSurvivors} exceeds the ${n} selected partners`);
  if (c.graph.kind === 'harary') neighbourhoods(c.selected, c.graph); // validates the degree
  if (c.encoding.plainModulus !== c.he.plainModulus)
    bad(`encoding plan modulus ${c.encoding.plainModulus} differs from the BFV plain modulus ${c.he.plainModulus}`);
  if (c.encoding.maxSummands < n) bad(`encoding plan holds ${c.encoding.maxSummands} summands, fewer than the ${n} selected partners`);
  if (c.he.maxSummands < n) bad(`BFV parameters decrypt sums of at most ${c.he.maxSummands}, fewer than the ${n} selected partners`);
  return c;
}

/** sha256 of the canonical config: the id every message, share and mask of the attempt is bound to. */
export function secaggConfigId(config: SecaggConfig): string {
  return sha256Canonical(config);
}
