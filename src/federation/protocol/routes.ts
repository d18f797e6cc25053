import type { z } from 'zod';
import {
  acceptanceBodySchema,
  aggregateQuerySchema,
  createJobBodySchema,
  createJobResponseSchema,
  declineBodySchema,
  haltBodySchema,
  healthSchema,
  identityQuerySchema,
  identityResponseSchema,
  jobParamsSchema,
  jobStatusSchema,
  keyParamsSchema,
  ledgerHeadSchema,
  manifestResponseSchema,
  modelHashBodySchema,
  okSchema,
  roundParamsSchema,
  submissionResponseSchema,
  withdrawBodySchema,
  leaveBodySchema,
} from './schemas.ts';
import { roundContentsSchema } from '../submission-record.ts';

/**
 * Every coordinator route, once: method, URL pattern, schemas, who may call it and how its path is
 * built. The coordinator registers its handlers against these entries; the nodes' client builds
 * its requests from them (no path string is written anywhere else).
 */

type Schema = z.ZodType;
/** Raw bytes instead of JSON (sealed keys, update envelopes, aggregates, the ledger file). */
export type Binary = 'octet-stream' | 'ndjson';

export interface RouteSpec {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  summary: string;
  /** `none`: unsigned; `create`: signed by the owner the body's manifest names; `job`: signed by a key of the job. */
  auth: 'none' | 'create' | 'job';
  /** Who may call it (checked after authentication); absent: any key of the job. */
  role?: 'owner' | 'partner';
  params?: Schema;
  query?: Schema;
  body?: Schema | Binary;
  response: Schema | Binary;
  /** Success status (default 200). */
  status?: number;
  /**
   * The largest body the coordinator reads for this route, checked before the body is read:
   * `round-plan` sizes it from the job's manifest (the round's parts under the job's scheme). Default:
   * 0 for routes without a body, 64 KiB for JSON bodies.
   */
  maxBodyBytes?: number | 'round-plan';
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** The body limit of a route (see `RouteSpec.maxBodyBytes`). */
export function bodyLimitOf(spec: RouteSpec): number | 'round-plan' {
  return spec.maxBodyBytes ?? (spec.body === undefined ? 0 : 64 * KiB);
}

function route<const R extends RouteSpec>(r: R): R {
  return r;
}

export const routes = {
  health: route({ method: 'GET', url: '/health', summary: 'liveness', auth: 'none', response: healthSchema }),
  identity: route({
    method: 'GET',
    url: '/v1/identity',
    summary: "the coordinator's public identity (the key that authors job ledgers), signing the caller's challenge",
    auth: 'none',
    query: identityQuerySchema,
    response: identityResponseSchema,
  }),
  createJob: route({
    method: 'POST',
    url: '/v1/jobs',
    summary: 'register a signed job manifest with its owner-signed seq-0 ledger entry',
    auth: 'create',
    body: createJobBodySchema,
    maxBodyBytes: MiB,
    response: createJobResponseSchema,
    status: 201,
  }),
  status: route({ method: 'GET', url: '/v1/jobs/:jobId', summary: 'job and round status', auth: 'job', params: jobParamsSchema, response: jobStatusSchema }),
  manifest: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/manifest',
    summary: 'the signed manifest and the hash of its ledger entry',
    auth: 'job',
    params: jobParamsSchema,
    response: manifestResponseSchema,
  }),
  ledgerHead: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/ledger/head',
    summary: "the job ledger's head, signed by the coordinator (partners witness it)",
    auth: 'job',
    params: jobParamsSchema,
    response: ledgerHeadSchema,
  }),
  ledger: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/ledger',
    summary: 'the job ledger (JSON lines)',
    auth: 'job',
    params: jobParamsSchema,
    response: 'ndjson',
  }),
  accept: route({
    method: 'POST',
    url: '/v1/jobs/:jobId/acceptance',
    summary: "a partner's attested acceptance or refusal",
    auth: 'job',
    role: 'partner',
    params: jobParamsSchema,
    body: acceptanceBodySchema,
    response: okSchema,
  }),
  putSealedKey: route({
    method: 'PUT',
    url: '/v1/jobs/:jobId/keys/:keyId',
    summary: "the owner uploads the job key sealed to one partner's box key",
    auth: 'job',
    role: 'owner',
    params: keyParamsSchema,
    body: 'octet-stream',
    maxBodyBytes: 8 * MiB,
    response: okSchema,
  }),
  sealedKey: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/keys/mine',
    summary: 'a partner fetches its sealed job key',
    auth: 'job',
    role: 'partner',
    params: jobParamsSchema,
    response: 'octet-stream',
  }),
  submit: route({
    method: 'PUT',
    url: '/v1/jobs/:jobId/rounds/:round/submission',
    summary: "a selected partner's update envelope",
    auth: 'job',
    role: 'partner',
    params: roundParamsSchema,
    body: 'octet-stream',
    maxBodyBytes: 'round-plan',
    response: submissionResponseSchema,
  }),
  decline: route({
    method: 'POST',
    url: '/v1/jobs/:jobId/rounds/:round/decline',
    summary: 'a selected partner declines a round (privacy budget)',
    auth: 'job',
    role: 'partner',
    params: roundParamsSchema,
    body: declineBodySchema,
    response: okSchema,
  }),
  aggregate: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/rounds/:round/aggregate',
    summary: "a closed round's encrypted sum of one part",
    auth: 'job',
    params: roundParamsSchema,
    query: aggregateQuerySchema,
    response: 'octet-stream',
  }),
  contents: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/rounds/:round/contents',
    summary: "what a closed round's sums hold: the attempt and the partner-signed records of the uploads added",
    auth: 'job',
    params: roundParamsSchema,
    response: roundContentsSchema,
  }),
  reportModelHash: route({
    method: 'POST',
    url: '/v1/jobs/:jobId/rounds/:round/model-hash',
    summary: 'the hash of the state after applying a round',
    auth: 'job',
    role: 'partner',
    params: roundParamsSchema,
    body: modelHashBodySchema,
    response: okSchema,
  }),
  leave: route({
    method: 'POST',
    url: '/v1/jobs/:jobId/leave',
    summary: 'a partner stops for good: rounds no longer wait for it (attested)',
    auth: 'job',
    role: 'partner',
    params: jobParamsSchema,
    body: leaveBodySchema,
    response: okSchema,
  }),
  withdraw: route({
    method: 'POST',
    url: '/v1/jobs/:jobId/withdraw',
    summary: 'a partner leaves the job (attested)',
    auth: 'job',
    role: 'partner',
    params: jobParamsSchema,
    body: withdrawBodySchema,
    response: okSchema,
  }),
  halt: route({
    method: 'POST',
    url: '/v1/jobs/:jobId/halt',
    summary: 'emergency brake: the owner stops the job',
    auth: 'job',
    role: 'owner',
    params: jobParamsSchema,
    body: haltBodySchema,
    response: okSchema,
  }),
} as const;

export type RouteName = keyof typeof routes;

/** The path of a route with its `:name` segments filled in (each value URI-encoded). */
export function pathOf(spec: { url: string }, params: Record<string, string | number> = {}): string {
  return spec.url.replace(/:([A-Za-z]+)/g, (_, name: string) => {
    const v = params[name];
    if (v === undefined) throw new Error(`route ${spec.url}: parameter "${name}" is missing`);
    return encodeURIComponent(String(v));
  });
}
