import { z } from 'zod';
import { hex64Schema, jobParamsSchema, jobStatusSchema } from './schemas.ts';
import type { RouteSpec } from './routes.ts';

/**
 * The long-poll route: a node names the version of the job status it last saw (`since`, the
 * `etag` of an earlier answer) and how long it is willing to wait. The coordinator answers at once
 * when the status differs, and otherwise holds the request until the job changes or the wait runs
 * out (then with the unchanged status, `changed: false`). The etag is the SHA-256 of the status and
 * of the number of relayed messages addressed to the caller, so it is derived from persisted state:
 * a restarted coordinator computes the same etag for the same state and a different one for any
 * other, and no node misses a change across a restart.
 */

/** The longest wait a node asks for by default; the coordinator caps every wait at its own limit (default 25 s). */
export const DEFAULT_LONG_POLL_WAIT_MS = 20_000;
/** The largest `waitMs` the route accepts at all (the coordinator's own cap is usually lower). */
export const MAX_LONG_POLL_WAIT_MS = 600_000;

export const watchQuerySchema = z.object({
  since: hex64Schema.optional(),
  waitMs: z.coerce.number().int().min(0).max(MAX_LONG_POLL_WAIT_MS).default(0),
});
export const watchResponseSchema = z.object({
  /** The version of what the caller sees (status and relayed messages awaiting it): pass it back as `since`. */
  etag: hex64Schema,
  /** False when the wait ran out (or the coordinator is shutting down) with the status still at `since`. */
  changed: z.boolean(),
  status: jobStatusSchema,
});
export type WatchResponse = z.infer<typeof watchResponseSchema>;

function route<const R extends RouteSpec>(r: R): R {
  return r;
}

export const watchRoutes = {
  watch: route({
    method: 'GET',
    url: '/v1/jobs/:jobId/watch',
    summary: 'long-poll: the job status once it differs from the version `since` (or after `waitMs`, capped by the coordinator)',
    auth: 'job',
    params: jobParamsSchema,
    query: watchQuerySchema,
    response: watchResponseSchema,
  }),
} as const;
