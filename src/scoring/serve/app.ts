/**
 * `fedmark serve`: a fastify app that scores one customer or a small batch with the batch
 * command's code (record-scorer.ts). One zod schema per route is the validation, the type and the
 * OpenAPI document at /docs. Every request is authenticated (auth.ts); every answered request is
 * durably recorded in the spool before its response leaves (spool.ts). Bad input is always a 4xx
 * naming the problem: 400 for a malformed body, unknown or missing columns; 422 for a value outside
 * the schema (unknown category, number out of range, not a number).
 */
import Fastify, { LogController, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import pino from 'pino';
import { z } from 'zod';
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { FedmarkError } from '../../errors.ts';
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
  /** Answers requests Node's HTTP parser rejects (malformed request line, headers) in the JSON error shape. */
  clientErrorHandler?: (err: Error & { code?: string }, socket: Duplex) => void;
}

export type ScoringApp = Awaited<ReturnType<typeof buildScoringService>>;

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
    principal?: string;
    customersIn?: number;
  }
}

const errorSchema = z.object({ statusCode: z.number(), code: z.string(), error: z.string() });
const cell = z.union([z.string().max(2000), z.number(), z.boolean(), z.null()]);
const reasonSchema = z.object({ column: z.string(), text: z.string(), contribution: z.number() });
const resultSchema = z.union([
  z.object({ index: z.number(), id: z.string().nullable(), status: z.literal('scored'), probability: z.number(), logit: z.number(), reasons: z.array(reasonSchema) }),
  z.object({ index: z.number(), id: z.string().nullable(), status: z.literal('not-scored'), reason: z.enum(['no-consent', 'withdrawn']) }),
]);

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Codes of FedmarkErrors that mean "a value is outside the schema" (422) rather than a malformed request (400). */
const VALUE_ERRORS = new Set(['DATA_BAD_ROW']);

export async function buildScoringService(o: ScoringServiceOptions) {
  const maxBatch = o.maxBatch ?? 100;
  if (!(Number.isInteger(maxBatch) && maxBatch >= 1 && maxBatch <= 10_000)) throw new FedmarkError('SERVE_BAD_OPTION', `max batch must be an integer in 1..10,000, got ${o.maxBatch}`);
  if (o.reasons !== undefined && !(Number.isInteger(o.reasons) && o.reasons >= 0 && o.reasons <= 20)) throw new FedmarkError('SERVE_BAD_OPTION', `reasons must be an integer in 0..20, got ${o.reasons}`);
  const logger = o.logger ?? pino({ level: 'warn' });
  const scorer = new RecordScorer(o.schema, o.model);
  const columns = o.schema.columns.map((c) => c.name);
  // Fastify's own two lines per request are off; the onResponse hook below writes one quiet line.
  const base = { loggerInstance: logger, bodyLimit: 1024 * 1024, logController: new LogController({ disableRequestLogging: true }), ...(o.clientErrorHandler ? { clientErrorHandler: o.clientErrorHandler } : {}) };
  const plain = () => Fastify(base);
  // HTTPS differs only in the server type parameters; routes and hooks are the same.
  const app = (o.https ? (Fastify({ ...base, https: { key: o.https.key, cert: o.https.cert, minVersion: 'TLSv1.2' } }) as unknown as ReturnType<typeof plain>) : plain()).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // The request signature covers the exact body bytes.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    req.rawBody = body as Buffer;
    if ((body as Buffer).length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse((body as Buffer).toString('utf8')));
    } catch {
      done(new HttpError(400, 'BAD_JSON', 'request body is not valid JSON'), undefined);
    }
  });

  await app.register(rateLimit, {
    max: o.rateLimitPerMinute ?? 120_000,
    timeWindow: '1 minute',
    keyGenerator: (req) => (req.headers['x-fedmark-key'] as string | undefined) ?? req.ip,
    errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, code: 'RATE_LIMITED', error: `rate limit exceeded: ${ctx.max} requests per ${ctx.after}` }),
  });
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'fedmark scoring service',
        version: '0.1.0',
        description: `Scores customers with model ${o.model.modelHash.slice(0, 16)}… for purpose "${o.purpose}". Authenticate with "Authorization: Bearer <token>" or a fedmark-signed request (x-fedmark-* headers, job "fedmark-serve", round 0).`,
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.setErrorHandler((err: unknown, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issue = err.validation[0];
      const where = `${err.validationContext ?? 'request'}${issue?.instancePath ? issue.instancePath.replace(/\//g, '.') : ''}`;
      return reply.status(400).send({ statusCode: 400, code: 'INVALID_REQUEST', error: `${where}: ${issue?.message ?? 'invalid'}` });
    }
    if (err instanceof HttpError) return reply.status(err.statusCode).send({ statusCode: err.statusCode, code: err.code, error: err.message });
    if (err instanceof FedmarkError) {
      const status = VALUE_ERRORS.has(err.code) ? 422 : 400;
      return reply.status(status).send({ statusCode: status, code: err.code, error: err.message });
    }
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.status(e.statusCode).send({ statusCode: e.statusCode, code: e.code ?? 'BAD_REQUEST', error: e.message ?? 'bad request' });
    }
    req.log.error({ err }, 'unexpected error');
    return reply.status(500).send({ statusCode: 500, code: 'INTERNAL', error: 'internal error' });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ statusCode: 404, code: 'NOT_FOUND', error: `no route ${req.method} ${req.url.split('?')[0]}` }));

  // One quiet line per request: no customer data, no headers.
  app.addHook('onResponse', (req, reply, done) => {
    req.log.info({ method: req.method, url: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, by: req.principal, customers: req.customersIn }, 'request');
    done();
  });

  const authenticate = async (req: FastifyRequest): Promise<void> => {
    const r = o.auth.check(req.headers as Record<string, string | string[] | undefined>, { method: req.method, path: req.url, body: req.rawBody ?? new Uint8Array(0) });
    if (!r.ok) throw new HttpError(r.status ?? 401, r.code ?? 'AUTH_FAILED', r.error ?? 'not authenticated');
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
          customers: z.array(z.record(z.string().max(200), cell)).min(1).max(maxBatch),
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
        void o.record({ t: new Date().toISOString(), by: req.principal ?? 'unknown', scored: [], noConsent: 0, withdrawn: 0, rejected: customers.length, out: null }).catch(() => undefined);
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
      return reply.type('application/json; charset=utf-8').serializer((x: unknown) => x as string).send(body as never);
    },
  );
  return app;
}
