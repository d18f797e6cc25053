import { z } from 'zod';
import { hex64Schema, keyIdParamSchema, okSchema, roundParamsSchema } from './schemas.ts';
import type { RouteSpec } from './routes.ts';

/**
 * The relay route family (stage `relay`): a sender deposits one sealed message per recipient and
 * round, the recipient fetches it; the coordinator checks who may send what to whom in the round and
 * stores the bytes unopened. A sender that makes a labelled release in a round first files its attested
 * statement, which the coordinator records in the job ledger before it takes that sender's messages.
 */
export const relayToParamsSchema = roundParamsSchema.extend({ to: keyIdParamSchema });
export const relayFromParamsSchema = roundParamsSchema.extend({ from: keyIdParamSchema });
export const relayPutResponseSchema = z.object({ duplicate: z.boolean(), hash: hex64Schema });
export const releaseBodySchema = z.object({ statement: z.record(z.string(), z.unknown()) });

function route<const R extends RouteSpec>(r: R): R {
  return r;
}

export const relayRoutes = {
  relayPut: route({
    method: 'PUT',
    url: '/v1/jobs/:jobId/rounds/:round/relay/:to',
    summary: "a sender's sealed message to one recipient of a relay round",
    auth: 'job',
    role: 'partner',
    params: relayToParamsSchema,
    body: 'octet-stream',
    // The round's RelayPlan.maxBytes, checked before the body is read.
    maxBodyBytes: 'round-plan',
    response: relayPutResponseSchema,
  }),
  relayGet: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/rounds/:round/relay/:from',
    summary: 'the message of a relay round addressed to the caller by `from` (404 NO_RELAY_MESSAGE until it arrives)',
    auth: 'job',
    role: 'partner',
    params: relayFromParamsSchema,
    response: 'octet-stream',
  }),
  release: route({
    method: 'POST',
    url: '/v1/jobs/:jobId/rounds/:round/release',
    summary: "a sender's attested record of the labelled DP releases it charged for the round",
    auth: 'job',
    role: 'partner',
    params: roundParamsSchema,
    body: releaseBodySchema,
    response: okSchema,
  }),
} as const;
