import { z } from 'zod';
import { roundParamsSchema } from './schemas.ts';
import type { RouteSpec } from './routes.ts';

/**
 * Masked aggregation's stage messages (docs/CRYPTO.md): partners post their signed stage answers,
 * and fetch the coordinator's signed views of the attempt. The coordinator checks every message
 * with crypto/secagg's readers and relays it; it opens no share and holds no key. The masked
 * upload itself goes through the ordinary upload route after its signed commitment (`masked`).
 */
export const SECAGG_POST_STAGES = ['advertise', 'shares', 'masked', 'consistency', 'reveal'] as const;
export const SECAGG_VIEWS = ['roster', 'inbox', 'survivors', 'unmask'] as const;
export type SecaggPostStage = (typeof SECAGG_POST_STAGES)[number];
export type SecaggView = (typeof SECAGG_VIEWS)[number];

export const secaggPostParamsSchema = roundParamsSchema.extend({ stage: z.enum(SECAGG_POST_STAGES) });
export const secaggViewParamsSchema = roundParamsSchema.extend({
  attempt: z.coerce.number().int().nonnegative().max(100),
  view: z.enum(SECAGG_VIEWS),
});
export const secaggPostBodySchema = z.object({ attempt: z.number().int().nonnegative().max(100), message: z.record(z.string(), z.unknown()) });
export const secaggPostResponseSchema = z.object({ duplicate: z.boolean() });
export const secaggViewResponseSchema = z.object({ message: z.record(z.string(), z.unknown()) });

function route<const R extends RouteSpec>(r: R): R {
  return r;
}

export const secaggRoutes = {
  secaggPost: route({
    method: 'POST',
    url: '/v1/jobs/:jobId/rounds/:round/secagg/:stage',
    summary: "a selected partner's signed answer to one stage of the round's masked aggregation",
    auth: 'job',
    role: 'partner',
    params: secaggPostParamsSchema,
    body: secaggPostBodySchema,
    response: secaggPostResponseSchema,
    // A share message holds one sealed share per share holder (at most 255).
    maxBodyBytes: 1024 * 1024,
  }),
  secaggView: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/rounds/:round/secagg/:attempt/:view',
    summary: "the coordinator's signed view of an attempt's masked aggregation (404 SECAGG_NOT_YET until its stage closed)",
    auth: 'job',
    role: 'partner',
    params: secaggViewParamsSchema,
    response: secaggViewResponseSchema,
  }),
} as const;
