import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import pino from 'pino';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, keyId, readIdentityFile, writeIdentityFile, type Identity } from '../src/crypto/identity.ts';
import type { WorkloadRegistry } from '../src/federation/workload.ts';
import { CoordinatorStore } from './store.ts';
import { clientErrorHandler } from './tls.ts';
import { JobEngine } from './job-engine.ts';
import { JobLedgers } from './job-ledgers.ts';
import { rawBodyPlugin } from './plugins/raw-body.ts';
import { errorsPlugin } from './plugins/errors.ts';
import { rateLimitPlugin } from './plugins/rate-limit.ts';
import { docsPlugin } from './plugins/docs.ts';
import { authPlugin } from './plugins/auth.ts';
import { publicRoutes } from './routes/public.ts';
import { jobRoutes } from './routes/jobs.ts';
import { membershipRoutes } from './routes/membership.ts';
import { keyRoutes } from './routes/keys.ts';
import { roundRoutes } from './routes/rounds.ts';
import { relayRoutePlugin } from './routes/relay.ts';
import { RelayEngine } from './relay-engine.ts';

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
  /** The workloads jobs may run (default: the built-in ones); a job naming another is refused. */
  workloads?: WorkloadRegistry;
}

/** Secrets never reach a log line, at the top level or nested (pino redaction paths are exact depths). */
export const REDACT_PATHS = [
  'req.headers["x-fedmark-signature"]',
  'headers["x-fedmark-signature"]',
  'req.headers.authorization',
  ...['secretKey', 'signSecretKey', 'boxSecretKey'].flatMap((k) => [k, `*.${k}`, `*.*.${k}`]),
];

/**
 * Builds the coordinator app (not listening): the store, the job ledgers and the job engine, then
 * fastify with one plugin per cross-cutting concern and one file of routes per protocol area. Routes
 * know HTTP; the engine knows the protocol; the route table (src/federation/protocol/) knows both.
 */
export async function buildCoordinator(opts: CoordinatorOptions): Promise<{ app: FastifyInstance; engine: JobEngine; store: CoordinatorStore }> {
  // A logger passed in gets the same redaction as the default one.
  const logger = opts.logger ? opts.logger.child({}, { redact: REDACT_PATHS }) : pino({ level: process.env.FEDMARK_LOG_LEVEL ?? 'info', redact: REDACT_PATHS });
  const store = new CoordinatorStore(opts.dataDir);
  const identity = opts.identity ?? loadOrCreateIdentity(join(opts.dataDir, 'coordinator.key.json'));
  const ledgers = new JobLedgers(join(opts.dataDir, 'ledgers'), identity, opts.ledgerSync ?? true);
  const engine = new JobEngine(store, ledgers, keyId(identity.signPublicKey), logger, Date.now, opts.workloads);

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

  await app.register(rawBodyPlugin, { maxUpdateBytes: opts.maxUpdateBytes ?? 64 * 1024 * 1024 });
  await app.register(rateLimitPlugin, { perMinute: opts.rateLimitPerMinute ?? 6000 });
  await app.register(docsPlugin);
  await app.register(errorsPlugin);
  await app.register(authPlugin, { engine, nonces: store.nonceStore(), maxSkewMs: opts.maxSkewMs });
  await app.register(publicRoutes, { identity });
  await app.register(jobRoutes, { engine });
  await app.register(membershipRoutes, { engine });
  await app.register(keyRoutes, { engine });
  await app.register(roundRoutes, { engine });
  await app.register(relayRoutePlugin, { relay: new RelayEngine(store, engine, ledgers, identity, logger) });

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
