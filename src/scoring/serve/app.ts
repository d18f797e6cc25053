/**
 * `fedmark serve`: a fastify app that scores one customer or a small batch with the batch
 * command's code (record-scorer.ts). One zod schema per route is the validation, the type and the
 * OpenAPI document at /docs. Every request is authenticated (auth.ts); every answered request is
 * durably recorded in the spool before its response leaves (spool.ts). Bad input is always a 4xx
 * naming the problem: 400 for a malformed body, unknown or missing columns; 422 for a value outside
 * the schema (unknown category, number out of range, not a number).
 */
import type { FastifyRequest } from 'fastify';
import pino from 'pino';
import { z } from 'zod';
import { createHash } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';
import { statusOf as protocolStatusOf } from '../../federation/protocol/errors.ts';
import { createHttpApp, docsPlugin, errorsPlugin, rateLimitPlugin, rawBodyPlugin } from '../../transport/http-server.ts';
import type { DatasetSchema } from '../../data/schema.ts';
import { schemaHash } from '../../federation/job-presets.ts';
import type { LoadedScoringModel } from '../model.ts';
import { RecordScorer } from '../record-scorer.ts';
import type { ServeAuth } from './auth.ts';
import type { SpoolRecord } from './spool.ts';

export interface ScoringServiceOptions {
  model: LoadedScoringModel;
  schema: DatasetSchema;
  purpose: string;
  auth: ServeAuth;
  /** Durably records one answered request (resolves when it is on disk). */
  record: (r: SpoolRecord) => Promise<void>;
  /** Salted hash of a customer id. */
  hashId: (id: string) => string;
  /** The current withdrawn-consent ids (re-read by the caller as the file changes). */
  withdrawn: () => ReadonlySet<string>;
  maxBatch?: number;
  /** Reason codes per customer when a request does not say (default 3). */
  reasons?: number;
  rateLimitPerMinute?: number;
  logger?: pino.Logger;
  /** Serve HTTPS with this PEM key and certificate (coordinator/tls.ts loads and checks them). */
  https?: { key: string | Buffer; cert: string | Buffer };
}

export type ScoringApp = Awaited<ReturnType<typeof buildScoringService>>;

declare module 'fastify' {
  interface FastifyRequest {
    principal?: string;
    customersIn?: number;
  }
}

const errorSchema = z.object({ statusCode: z.number(), code: z.string(), error: z.string() });
const cell = z.union([z.string().max(2000), z.number(), z.boolean(), z.null()]);
const reasonSchema = z.object({ column: z.string(), text: z.string(), contribution: z.number() });
const resultSchema = z.union([
  z.object({
    index: z.number(),
    id: z.string().nullable(),
    status: z.literal('scored'),
    probability: z.number(),
    logit: z.number(),
    reasons: z.array(reasonSchema),
  }),
  z.object({ index: z.number(), id: z.string().nullable(), status: z.literal('not-scored'), reason: z.enum(['no-consent', 'withdrawn']) }),
]);

/**
 * The service's code → status table: a value outside the schema is 422, a malformed request 400;
 * authentication codes are the protocol's (the same signed headers as the coordinator's) plus the
 * bearer token's; any other FedmarkError is bad input, 400.
 */
const SERVE_STATUS: Record<string, number> = { DATA_BAD_ROW: 422, AUTH_BAD_TOKEN: 401, AUTH_TOKEN_DISABLED: 401, AUTH_SCOPE: 401 };
export function serveStatusOf(code: string): number {
  return Object.prototype.hasOwnProperty.call(SERVE_STATUS, code) ? SERVE_STATUS[code] : protocolStatusOf(code);
}

export async function buildScoringService(o: ScoringServiceOptions) {
  const maxBatch = o.maxBatch ?? 100;
  if (!(Number.isInteger(maxBatch) && maxBatch >= 1 && maxBatch <= 10_000))
    throw new FedmarkError('SERVE_BAD_OPTION', `max batch must be an integer in 1..10,000, got ${o.maxBatch}`);
  if (o.reasons !== undefined && !(Number.isInteger(o.reasons) && o.reasons >= 0 && o.reasons <= 20))
    throw new FedmarkError('SERVE_BAD_OPTION', `reasons must be an integer in 0..20, got ${o.reasons}`);
  const logger = o.logger ?? pino({ level: 'warn' });
  const scorer = new RecordScorer(o.schema, o.model);
  const columns = o.schema.columns.map((c) => c.name);
  // Fastify's own two lines per request are off; the onResponse hook below writes one quiet line.
  const app = createHttpApp({ logger, https: o.https, requestLogging: false });
  await app.register(rawBodyPlugin, {});
  await app.register(rateLimitPlugin, { perMinute: o.rateLimitPerMinute ?? 120_000 });
  await app.register(docsPlugin, {
    title: 'fedmark scoring service',
    description: `Scores customers with model ${o.model.modelHash.slice(0, 16)}… for purpose "${o.purpose}". Authenticate with "Authorization: Bearer <token>" or a fedmark-signed request (x-fedmark-* headers, job "fedmark-serve", round 0).`,
  });
  await app.register(errorsPlugin, { statusOf: serveStatusOf });

  // One quiet line per request: no customer data, no headers.
  app.addHook('onResponse', (req, reply, done) => {
    req.log.info(
      {
        method: req.method,
        url: req.url.split('?')[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        by: req.principal,
        customers: req.customersIn,
      },
      'request',
    );
    done();
  });

  const authenticate = async (req: FastifyRequest): Promise<void> => {
    const r = o.auth.check(req.headers as Record<string, string | string[] | undefined>, {
      method: req.method,
      path: req.url,
      body: req.rawBody ?? new Uint8Array(0),
    });
    if (!r.ok) throw new FedmarkError(r.code ?? 'AUTH_MISSING', r.error ?? 'not authenticated');
    req.principal = r.principal;
  };

  app.get('/healthz', { schema: { response: { 200: z.object({ ok: z.boolean() }) } } }, async () => ({ ok: true }));

  app.get(
    '/v1/model',
    {
      preValidation: authenticate,
      schema: {
        description: 'The model this service scores with.',
        response: {
          200: z.object({
            kind: z.string(),
            modelHash: z.string(),
            jobId: z.string().nullable(),
            purpose: z.string(),
            schema: z.object({ name: z.string(), hash: z.string(), columns: z.array(z.string()) }),
            baseValue: z.number(),
            attribution: z.object({ method: z.string(), exact: z.boolean(), description: z.string(), baseline: z.string().nullable() }),
            maxBatch: z.number(),
          }),
          401: errorSchema,
        },
      },
    },
    async () => ({
      kind: o.model.scorer.kind,
      modelHash: o.model.modelHash,
      jobId: o.model.provenance.jobId,
      purpose: o.purpose,
      schema: { name: o.schema.name, hash: schemaHash(o.schema), columns },
      baseValue: o.model.scorer.baseValue,
      attribution: o.model.scorer.attribution,
      maxBatch,
    }),
  );

  app.post(
    '/v1/score',
    {
      preValidation: authenticate,
      schema: {
        description: `Scores 1–${maxBatch} customers. Each customer is an object of the schema's columns (the label may be left out). Customers without consent, or on the withdrawn list, are not scored.`,
        body: z.strictObject({
          customers: z
            .array(z.record(z.string().max(200), cell))
            .min(1)
            .max(maxBatch),
          reasons: z.number().int().min(0).max(20).optional(),
        }),
        response: {
          200: z.object({ modelHash: z.string(), purpose: z.string(), results: z.array(resultSchema) }),
          400: errorSchema,
          401: errorSchema,
          409: errorSchema,
          422: errorSchema,
          429: errorSchema,
        },
      },
    },
    async (req, reply) => {
      const { customers, reasons } = req.body;
      req.customersIn = customers.length;
      let batch;
      try {
        batch = scorer.score(customers, { withdrawn: o.withdrawn(), reasons: reasons ?? o.reasons });
      } catch (err) {
        // Refused input scores nobody but is counted in the window (rows read = scored + excluded + rejected).
        void o
          .record({
            t: new Date().toISOString(),
            by: req.principal ?? 'unknown',
            scored: [],
            noConsent: 0,
            withdrawn: 0,
            rejected: customers.length,
            out: null,
          })
          .catch(() => undefined);
        throw err;
      }
      const body = JSON.stringify({ modelHash: o.model.modelHash, purpose: o.purpose, results: batch.results });
      // Recorded durably *before* the scores leave: a response a caller received is always in the spool.
      await o.record({
        t: new Date().toISOString(),
        by: req.principal ?? 'unknown',
        scored: batch.scoredIds.map(o.hashId),
        noConsent: batch.noConsent,
        withdrawn: batch.withdrawn,
        rejected: 0,
        out: createHash('sha256').update(body).digest('hex'),
      });
      // Sent as the exact bytes hashed above (the response schema still documents the shape).
      return reply
        .type('application/json; charset=utf-8')
        .serializer((x: unknown) => x as string)
        .send(body as never);
    },
  );
  return app;
}
