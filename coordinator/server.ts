import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import { serializerCompiler, validatorCompiler, jsonSchemaTransform, hasZodFastifySchemaValidationErrors, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import pino from 'pino';
import { verifyRequest } from '../src/crypto/request-signing.ts';
import { signedManifestSchema } from '../src/federation/manifest.ts';
import { FedmarkError } from '../src/errors.ts';
import { CoordinatorStore } from './store.ts';
import { clientErrorHandler } from './tls.ts';
import { HttpError, JobEngine } from './job-engine.ts';
import { JobLedgers } from './job-ledgers.ts';
import { generateIdentity, keyId, publicIdentity, readIdentityFile, writeIdentityFile, type Identity } from '../src/crypto/identity.ts';
import { envelopeSchema, type LedgerEntry } from '../src/privacy/ledger/entries.ts';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CoordinatorOptions {
  dataDir: string;
  /** A pino logger or options; secrets are redacted either way. */
  logger?: pino.Logger;
  maxSkewMs?: number;
  tickMs?: number;
  /** The coordinator's signing identity (it authors its job ledgers); default: <dataDir>/coordinator.key.json, created on first start. */
  identity?: Identity;
  /** fsync every ledger append (default true; tests may turn it off for speed). */
  ledgerSync?: boolean;
  /** Largest accepted update upload (bytes). */
  maxUpdateBytes?: number;
  rateLimitPerMinute?: number;
  /** Serve HTTPS with this PEM key and certificate (see coordinator/tls.ts); plain HTTP otherwise. */
  https?: { key: string | Buffer; cert: string | Buffer };
}

const errorSchema = z.object({ error: z.string(), code: z.string(), statusCode: z.number() });
const jobParams = z.object({ jobId: z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/) });
const roundParams = jobParams.extend({ round: z.coerce.number().int().positive().max(100_000) });
const keyParams = jobParams.extend({ keyId: z.string().regex(/^[0-9a-f]{32}$/) });

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
    signer?: { keyId: string; role: 'owner' | 'partner' };
  }
}

/** Secrets never reach a log line, at the top level or nested (pino redaction paths are exact depths). */
export const REDACT_PATHS = [
  'req.headers["x-fedmark-signature"]',
  'headers["x-fedmark-signature"]',
  'req.headers.authorization',
  ...['secretKey', 'signSecretKey', 'boxSecretKey'].flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
];

/** Builds the coordinator app (not listening). Routes know HTTP; the job engine knows the protocol. */
export async function buildCoordinator(opts: CoordinatorOptions): Promise<{ app: FastifyInstance; engine: JobEngine; store: CoordinatorStore }> {
  // A logger passed in gets the same redaction as the default one.
  const logger = opts.logger ? opts.logger.child({}, { redact: REDACT_PATHS }) : pino({ level: process.env.FEDMARK_LOG_LEVEL ?? 'info', redact: REDACT_PATHS });
  const store = new CoordinatorStore(opts.dataDir);
  const identity = opts.identity ?? loadOrCreateIdentity(join(opts.dataDir, 'coordinator.key.json'));
  const ledgers = new JobLedgers(join(opts.dataDir, 'ledgers'), identity, opts.ledgerSync ?? true);
  const engine = new JobEngine(store, ledgers, keyId(identity.signPublicKey), logger);
  const nonces = store.nonceStore();
  const maxUpdateBytes = opts.maxUpdateBytes ?? 64 * 1024 * 1024;

  const plainServer = () => Fastify({ loggerInstance: logger, bodyLimit: 1024 * 1024, clientErrorHandler });
  // An HTTPS instance differs only in its server type parameters; routes, hooks and inject are the same.
  // TLS 1.2 is the floor: older versions are broken and nothing that runs fedmark needs them.
  const app = (
    opts.https
      ? (Fastify({ loggerInstance: logger, bodyLimit: 1024 * 1024, clientErrorHandler, https: { key: opts.https.key, cert: opts.https.cert, minVersion: 'TLSv1.2' } }) as unknown as ReturnType<typeof plainServer>)
      : plainServer()
  ).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // Keep the raw bytes: the request signature covers the exact body.
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
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: maxUpdateBytes }, (req, body, done) => {
    req.rawBody = body as Buffer;
    done(null, body);
  });

  await app.register(rateLimit, {
    max: opts.rateLimitPerMinute ?? 6000,
    timeWindow: '1 minute',
    keyGenerator: (req) => (req.headers['x-fedmark-key'] as string | undefined) ?? req.ip,
    errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, code: 'RATE_LIMITED', error: `rate limit exceeded: ${ctx.max} requests per ${ctx.after}` }),
  });
  await app.register(swagger, {
    openapi: { info: { title: 'fedmark coordinator', version: '0.1.0', description: 'Routes of the fedmark coordinator. Every /v1 request is signed (x-fedmark-* headers).' } },
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
    if (err instanceof FedmarkError) return reply.status(400).send({ statusCode: 400, code: err.code, error: err.message });
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.status(e.statusCode).send({ statusCode: e.statusCode, code: e.code ?? 'BAD_REQUEST', error: e.message ?? 'bad request' });
    }
    req.log.error({ err }, 'unexpected error');
    return reply.status(500).send({ statusCode: 500, code: 'INTERNAL', error: 'internal error' });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ statusCode: 404, code: 'NOT_FOUND', error: `no route ${req.method} ${req.url.split('?')[0]}` }));

  /** Verifies the request signature against the job's registered keys (or the manifest's owner, for job creation). */
  async function authenticate(req: FastifyRequest, jobId: string, round: number, ownerKeyFromBody?: { keyId: string; signPublicKey: string }): Promise<void> {
    const result = verifyRequest(
      req.headers as Record<string, string | string[] | undefined>,
      { method: req.method, path: req.url, body: req.rawBody ?? new Uint8Array(0) },
      {
        lookupKey: (keyId) => {
          if (ownerKeyFromBody) return ownerKeyFromBody.keyId === keyId ? ownerKeyFromBody.signPublicKey : undefined;
          return engine.lookupKey(jobId, keyId)?.signPublicKey;
        },
        nonces,
        maxSkewMs: opts.maxSkewMs,
      },
    );
    if (!result.ok) throw new HttpError(result.status, result.code, result.error);
    if (result.jobId !== jobId) throw new HttpError(401, 'SIGNATURE_SCOPE', `request is signed for job "${result.jobId}", not "${jobId}"`);
    if (result.round !== round) throw new HttpError(401, 'SIGNATURE_SCOPE', `request is signed for round ${result.round}, not ${round}`);
    req.signer = ownerKeyFromBody ? { keyId: result.keyId, role: 'owner' } : { keyId: result.keyId, role: engine.lookupKey(jobId, result.keyId)!.role };
  }
  const requireOwner = (req: FastifyRequest) => {
    if (req.signer?.role !== 'owner') throw new HttpError(403, 'OWNER_ONLY', 'only the job owner may do this');
  };
  const requirePartner = (req: FastifyRequest) => {
    if (req.signer?.role !== 'partner') throw new HttpError(403, 'PARTNER_ONLY', 'only a partner may do this');
  };
  const jobAuth = (roundOf?: (req: FastifyRequest) => number) => async (req: FastifyRequest) => {
    const { jobId } = req.params as { jobId: string };
    engine.requireJob(jobId);
    await authenticate(req, jobId, roundOf ? roundOf(req) : 0);
  };
  const roundOfParams = (req: FastifyRequest) => (req.params as { round: number }).round;

  app.get('/health', { schema: { response: { 200: z.object({ ok: z.boolean() }) } } }, async () => ({ ok: true }));

  // Public: job owners name this key in the ledger's manifest entry, since the coordinator authors the rest.
  app.get('/v1/identity', async () => publicIdentity(identity));

  app.post(
    '/v1/jobs',
    {
      schema: {
        body: signedManifestSchema.extend({ ledgerGenesis: envelopeSchema }),
        response: { 201: z.object({ jobId: z.string() }), 400: errorSchema, 401: errorSchema, 409: errorSchema },
      },
      preHandler: async (req) => {
        const body = req.body as z.infer<typeof signedManifestSchema>;
        await authenticate(req, body.manifest.jobId, 0, { keyId: body.manifest.owner.keyId, signPublicKey: body.manifest.owner.signPublicKey });
      },
    },
    async (req, reply) => {
      const { ledgerGenesis, ...signed } = req.body;
      const manifest = await engine.createJob(signed, ledgerGenesis as LedgerEntry);
      return reply.status(201).send({ jobId: manifest.jobId });
    },
  );

  app.get('/v1/jobs/:jobId', { schema: { params: jobParams }, preHandler: jobAuth() }, async (req) => engine.status(req.params.jobId));

  app.get('/v1/jobs/:jobId/manifest', { schema: { params: jobParams }, preHandler: jobAuth() }, async (req) => ({
    ...JSON.parse(engine.requireJob(req.params.jobId).signed_manifest),
    ledgerManifestHash: engine.manifestEntryHash(req.params.jobId),
  }));

  app.get('/v1/jobs/:jobId/ledger/head', { schema: { params: jobParams }, preHandler: jobAuth() }, async (req) => engine.ledgerHead(req.params.jobId));

  app.get('/v1/jobs/:jobId/ledger', { schema: { params: jobParams }, preHandler: jobAuth() }, async (req, reply) => {
    const path = engine.ledgerPath(req.params.jobId);
    return reply.type('application/x-ndjson').send(existsSync(path) ? readFileSync(path) : Buffer.alloc(0));
  });

  app.post(
    '/v1/jobs/:jobId/acceptance',
    {
      schema: { params: jobParams, body: z.object({ accepted: z.boolean(), reason: z.string().max(2000).optional(), statement: z.unknown().optional() }) },
      preHandler: jobAuth(),
    },
    async (req) => {
      requirePartner(req);
      engine.accept(req.params.jobId, req.signer!.keyId, req.body);
      return { ok: true };
    },
  );

  app.put('/v1/jobs/:jobId/keys/:keyId', { schema: { params: keyParams }, preHandler: jobAuth() }, async (req) => {
    requireOwner(req);
    if (!(req.body instanceof Buffer)) throw new HttpError(415, 'WRONG_CONTENT_TYPE', 'sealed keys are uploaded as application/octet-stream');
    engine.putSealedKey(req.params.jobId, req.params.keyId, req.body);
    return { ok: true };
  });

  app.get('/v1/jobs/:jobId/keys/mine', { schema: { params: jobParams }, preHandler: jobAuth() }, async (req, reply) => {
    requirePartner(req);
    return reply.type('application/octet-stream').send(Buffer.from(engine.sealedKey(req.params.jobId, req.signer!.keyId)));
  });

  app.put('/v1/jobs/:jobId/rounds/:round/submission', { schema: { params: roundParams }, preHandler: jobAuth(roundOfParams) }, async (req) => {
    requirePartner(req);
    if (!(req.body instanceof Buffer)) throw new HttpError(415, 'WRONG_CONTENT_TYPE', 'updates are uploaded as application/octet-stream');
    return engine.submit(req.params.jobId, req.params.round, req.signer!.keyId, req.body);
  });

  app.post(
    '/v1/jobs/:jobId/rounds/:round/decline',
    {
      schema: {
        params: roundParams,
        body: z.object({
          attempt: z.number().int().nonnegative(),
          reason: z.string().min(1).max(2000),
          requestedEpsilon: z.number().nonnegative().optional(),
          remainingEpsilon: z.number().optional(),
        }),
      },
      preHandler: jobAuth(roundOfParams),
    },
    async (req) => {
      requirePartner(req);
      const b = req.body;
      engine.decline(req.params.jobId, req.params.round, req.signer!.keyId, b.attempt, b.reason, b.requestedEpsilon, b.remainingEpsilon);
      return { ok: true };
    },
  );

  app.get(
    '/v1/jobs/:jobId/rounds/:round/aggregate',
    { schema: { params: roundParams, querystring: z.object({ part: z.enum(['update', 'evaluation']).default('update') }) }, preHandler: jobAuth(roundOfParams) },
    async (req, reply) => reply.type('application/octet-stream').send(Buffer.from(engine.aggregate(req.params.jobId, req.params.round, req.query.part))),
  );

  app.post(
    '/v1/jobs/:jobId/rounds/:round/model-hash',
    { schema: { params: roundParams, body: z.object({ hash: z.string().regex(/^[0-9a-f]{64}$/) }) }, preHandler: jobAuth(roundOfParams) },
    async (req) => {
      requirePartner(req);
      engine.reportModelHash(req.params.jobId, req.params.round, req.signer!.keyId, req.body.hash);
      return { ok: true };
    },
  );

  app.post(
    '/v1/jobs/:jobId/withdraw',
    { schema: { params: jobParams, body: z.object({ reason: z.string().min(1).max(2000), statement: z.record(z.string(), z.unknown()) }) }, preHandler: jobAuth() },
    async (req) => {
    requirePartner(req);
    engine.withdraw(req.params.jobId, req.signer!.keyId, req.body.reason, req.body.statement);
    return { ok: true };
    },
  );

  app.post('/v1/jobs/:jobId/halt', { schema: { params: jobParams, body: z.object({ reason: z.string().min(1).max(2000) }) }, preHandler: jobAuth() }, async (req) => {
    requireOwner(req);
    engine.halt(req.params.jobId, req.body.reason);
    return { ok: true };
  });

  const timer = setInterval(() => engine.tick(), opts.tickMs ?? 250);
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await engine.close();
    ledgers.close();
    store.close();
  });
  return { app: app as unknown as FastifyInstance, engine, store };
}

/** The coordinator keeps one identity across restarts: its key signs every job ledger it writes. */
function loadOrCreateIdentity(path: string): Identity {
  if (existsSync(path)) return readIdentityFile(path);
  const id = generateIdentity('coordinator');
  writeIdentityFile(path, id);
  return id;
}
