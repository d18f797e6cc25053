/**
 * The fastify setup every fedmark HTTP server shares — the coordinator (coordinator/server.ts) and
 * the partner's scoring service (src/scoring/serve/app.ts): one way to parse bodies, answer
 * errors, limit rates and publish the OpenAPI document, so a client sees the same JSON shape,
 * `{ statusCode, code, error }`, for every refusal from either server.
 *
 * - `createHttpApp`: fastify with zod as validator, serializer and type provider, the 1 MiB body
 *   limit, TLS 1.2 as the HTTPS floor and `clientErrorHandler` for requests Node's parser rejects.
 * - `rawBodyPlugin`: keeps the exact body bytes (request signatures cover them), JSON parsed from
 *   that buffer, octet-stream bodies kept as buffers when the server takes any.
 * - `errorsPlugin`: the status of a FedmarkError comes from the server's one code → status table.
 * - `rateLimitPlugin`: requests per minute per client address, then per authenticated key.
 * - `docsPlugin`: the OpenAPI document at /docs, generated from the routes' zod schemas.
 */
import Fastify, { LogController, type FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type pino from 'pino';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { FedmarkError } from '../errors.ts';
import { storageErrorCode, type StorageErrorCode } from '../util/storage-errors.ts';

const STORAGE_RETRY_SECONDS = 30;
/** What the caller learns: that nothing was kept and it may retry — not the server's paths. */
const STORAGE_ANSWER: Record<StorageErrorCode, string> = {
  STORAGE_FULL: "the server's disk is full: nothing of this request was kept; retry later",
  STORAGE_IO_ERROR: "the server's storage failed: nothing of this request was kept; retry later",
};

declare module 'fastify' {
  interface FastifyRequest {
    /** The exact bytes of the body: request signatures cover them. */
    rawBody?: Buffer;
  }
  interface FastifyInstance {
    /** Counts one request against its authenticated signer's budget; throws RATE_LIMITED when spent (registered with `perKey`). */
    limitSigner(req: FastifyRequest): Promise<void>;
  }
}

export interface HttpAppOptions {
  logger: pino.Logger;
  /** Serve HTTPS with this PEM key and certificate; plain HTTP otherwise. */
  https?: { key: string | Buffer; cert: string | Buffer };
  /** Largest JSON body (bytes); default 1 MiB. */
  bodyLimit?: number;
  /** Fastify's own two log lines per request (default on); a server that logs its own line turns them off. */
  requestLogging?: boolean;
}

/**
 * Answers requests that Node's HTTP parser rejects (bad request line, unknown method, malformed
 * headers, oversized headers, bad chunking) in the same JSON shape as every route-level rejection,
 * instead of Fastify's default `{ error, message, statusCode }`.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const code = status === 431 ? 'HEADERS_TOO_LARGE' : status === 408 ? 'REQUEST_TIMEOUT' : 'MALFORMED_HTTP';
  const body = JSON.stringify({ statusCode: status, code, error: `malformed HTTP request (${err.code ?? 'parse error'})` });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** A fastify instance with zod schemas as validation, serialization and types (not listening). */
export function createHttpApp(o: HttpAppOptions) {
  const base = {
    loggerInstance: o.logger,
    bodyLimit: o.bodyLimit ?? 1024 * 1024,
    clientErrorHandler,
    ...(o.requestLogging === false ? { logController: new LogController({ disableRequestLogging: true }) } : {}),
  };
  const plain = () => Fastify(base);
  // An HTTPS instance differs only in its server type parameters; routes, hooks and inject are the same.
  // TLS 1.2 is the floor: older versions are broken and nothing that runs fedmark needs them.
  const app = (
    o.https ? (Fastify({ ...base, https: { key: o.https.key, cert: o.https.cert, minVersion: 'TLSv1.2' } }) as unknown as ReturnType<typeof plain>) : plain()
  ).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  return app;
}

/**
 * Keeps every body's raw bytes next to its parsed form: JSON is parsed from the buffer a signature
 * was computed over; with `octetStreamBytes`, octet-stream bodies up to that size stay buffers.
 */
export const rawBodyPlugin = fp<{ octetStreamBytes?: number }>(
  async (app, o) => {
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      req.rawBody = body as Buffer;
      if ((body as Buffer).length === 0) return done(null, undefined);
      try {
        done(null, JSON.parse((body as Buffer).toString('utf8')));
      } catch {
        done(new FedmarkError('BAD_JSON', 'request body is not valid JSON'), undefined);
      }
    });
    if (o.octetStreamBytes !== undefined) {
      app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: o.octetStreamBytes }, (req, body, done) => {
        req.rawBody = body as Buffer;
        done(null, body);
      });
    }
  },
  { name: 'fedmark-raw-body' },
);

/**
 * Every refusal leaves in one JSON shape, `{ statusCode, code, error }`. A FedmarkError's status is
 * `statusOf(code)` — the server's one table; only a fault of the server itself is a 500, and its
 * details go to the log, not to the caller.
 */
export const errorsPlugin = fp<{ statusOf: (code: string) => number }>(
  async (app, o) => {
    app.setErrorHandler((err: unknown, req, reply) => {
      if (hasZodFastifySchemaValidationErrors(err)) {
        const issue = err.validation[0];
        const where = `${err.validationContext ?? 'request'}${issue?.instancePath ? issue.instancePath.replace(/\//g, '.') : ''}`;
        return reply.status(400).send({ statusCode: 400, code: 'INVALID_REQUEST', error: `${where}: ${issue?.message ?? 'invalid'}` });
      }
      // SQLite's own full-disk and I/O errors, and the ledger's, are the same retryable answer.
      const storage = storageErrorCode(err);
      if (storage) {
        const status = o.statusOf(storage);
        req.log.error({ err }, storage === 'STORAGE_FULL' ? 'storage full: request refused, nothing kept' : 'storage error: request refused, nothing kept');
        reply.header('retry-after', String(STORAGE_RETRY_SECONDS));
        return reply.status(status).send({ statusCode: status, code: storage, error: STORAGE_ANSWER[storage] });
      }
      if (err instanceof FedmarkError) {
        const status = o.statusOf(err.code);
        if (status >= 500) req.log.error({ err }, 'unexpected error');
        const retryAfter = err.details?.retryAfterSeconds;
        if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
        return reply.status(status).send({
          statusCode: status,
          code: err.code,
          error:
            status >= 500
              ? err.code === 'LEDGER_CLOSED'
                ? 'a job ledger is closed after a failed write: the server needs a restart'
                : 'internal error'
              : err.message,
        });
      }
      // Fastify's own 4xx (body too large, unsupported media type, rate limit …) keep their status and code.
      const e = err as { statusCode?: number; code?: string; message?: string };
      if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
        return reply.status(e.statusCode).send({ statusCode: e.statusCode, code: e.code ?? 'BAD_REQUEST', error: e.message ?? 'bad request' });
      }
      req.log.error({ err }, 'unexpected error');
      return reply.status(500).send({ statusCode: 500, code: 'INTERNAL', error: 'internal error' });
    });
    app.setNotFoundHandler((req, reply) =>
      reply.status(404).send({ statusCode: 404, code: 'NOT_FOUND', error: `no route ${req.method} ${req.url.split('?')[0]}` }),
    );
  },
  { name: 'fedmark-errors' },
);

export interface RateLimitOptions {
  /** Requests per minute per client address, counted before anything is parsed or verified. */
  perMinute: number;
  /** Requests per minute per authenticated caller, counted once the server knows who signed (see `limitSigner`). */
  perKey?: { perMinute: number; keyOf: (req: FastifyRequest) => string };
}

/**
 * Two limits. Every request first counts against its client address, in `onRequest` before any
 * header is parsed or signature verified, so a flood costs the server almost nothing — and no
 * header the client chooses (a fresh `x-fedmark-key` per request) makes it a new caller. A request
 * that authenticates then counts against its signing key (`limitSigner`, called by the server's auth
 * step), so one key cannot use up what the partners behind a shared address need.
 */
export const rateLimitPlugin = fp<RateLimitOptions>(
  async (app, o) => {
    await app.register(rateLimit, {
      max: o.perMinute,
      timeWindow: '1 minute',
      keyGenerator: (req) => `address:${req.ip}`,
      errorResponseBuilder: (_req, ctx) => ({
        statusCode: 429,
        code: 'RATE_LIMITED',
        error: `rate limit exceeded: ${ctx.max} requests per ${ctx.after} per client address`,
      }),
    });
    const perKey = o.perKey;
    if (perKey) {
      const limiter = app.createRateLimit({ max: perKey.perMinute, timeWindow: '1 minute', keyGenerator: (req) => `key:${perKey.keyOf(req)}` });
      app.decorate('limitSigner', async (req: FastifyRequest) => {
        const r = await limiter(req);
        if (!r.isAllowed && r.isExceeded) {
          throw new FedmarkError('RATE_LIMITED', `rate limit exceeded: ${r.max} requests per minute per key (retry in ${r.ttlInSeconds} s)`, {
            retryAfterSeconds: r.ttlInSeconds,
          });
        }
      });
    }
  },
  { name: 'fedmark-rate-limit' },
);

/** The OpenAPI document at /docs, generated from the routes' zod schemas. */
export const docsPlugin = fp<{ title: string; description: string; version?: string }>(
  async (app, o) => {
    await app.register(swagger, {
      openapi: { info: { title: o.title, version: o.version ?? '0.1.0', description: o.description } },
      transform: jsonSchemaTransform,
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  },
  { name: 'fedmark-docs' },
);
