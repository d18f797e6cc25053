import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateIdentity, keyId, readIdentityFile, writeIdentityFile, type Identity } from '../src/crypto/identity.ts';
import type { WorkloadRegistry } from '../src/federation/workload.ts';
import { CoordinatorStore } from './store.ts';
import { JobEngine } from './job-engine.ts';
import { JobLedgers } from './job-ledgers.ts';
import { createHttpApp, docsPlugin, errorsPlugin, rateLimitPlugin, rawBodyPlugin } from '../src/transport/http-server.ts';
import { statusOf } from '../src/federation/protocol/errors.ts';
import { authPlugin } from './plugins/auth.ts';
import { publicRoutes } from './routes/public.ts';
import { jobRoutes } from './routes/jobs.ts';
import { membershipRoutes } from './routes/membership.ts';
import { keyRoutes } from './routes/keys.ts';
import { roundRoutes } from './routes/rounds.ts';
import { relayRoutePlugin } from './routes/relay.ts';
import { RelayEngine } from './relay-engine.ts';
import { longPollPlugin, type LongPollLimits } from './plugins/long-poll.ts';
import { secaggRoutePlugin } from './routes/secagg.ts';
import { SecaggEngine } from './secagg-engine.ts';

export interface CoordinatorOptions {
  dataDir: string;
  /** A postgres:// URL for the store; default: SQLite in dataDir (ledgers and the key file stay in dataDir either way). */
  store?: string;
  /** A pino logger or options; secrets are redacted either way. */
  logger?: pino.Logger;
  maxSkewMs?: number;
  tickMs?: number;
  /** The coordinator's signing identity (it authors its job ledgers); default: <dataDir>/coordinator.key.json, created on first start. */
  identity?: Identity;
  /** fsync every ledger append (default true; tests may turn it off for speed). */
  ledgerSync?: boolean;
  /** Largest accepted update upload (bytes), whatever a job's manifest admits. */
  maxUpdateBytes?: number;
  /** Requests per minute per client address, counted before anything is read (default 30,000). */
  rateLimitPerMinute?: number;
  /** Requests per minute per authenticated key (default 6,000). */
  rateLimitPerKeyPerMinute?: number;
  /** Serve HTTPS with this PEM key and certificate (see coordinator/tls.ts); plain HTTP otherwise. */
  https?: { key: string | Buffer; cert: string | Buffer };
  /** Free-space floor of the data directory: below it /health says not ok and a warning is logged (default 256 MiB). */
  minFreeBytes?: number;
  /** The workloads jobs may run (default: the built-in ones); a job naming another is refused. */
  workloads?: WorkloadRegistry;
  /**
   * `quiet` (default): one line per request, at debug level for answers below 400 and at info for
   * refusals, so an info-level log holds what happened to jobs, not every poll. `full`: fastify's
   * own two lines per request ("incoming request", "request completed") at info.
   */
  requestLogging?: 'quiet' | 'full';
  /** Bounds of the long-poll route (held time, held requests per key and in all); see coordinator/plugins/long-poll.ts. */
  longPoll?: Partial<LongPollLimits>;
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
export async function buildCoordinator(opts: CoordinatorOptions): Promise<{ app: FastifyInstance; engine: JobEngine; store: CoordinatorStore; keyId: string }> {
  // A logger passed in gets the same redaction as the default one.
  const logger = opts.logger ? opts.logger.child({}, { redact: REDACT_PATHS }) : pino({ level: process.env.FEDMARK_LOG_LEVEL ?? 'info', redact: REDACT_PATHS });
  const store = new CoordinatorStore(opts.dataDir, opts.store);
  let identity: Identity;
  try {
    identity = opts.identity ?? loadOrCreateIdentity(join(opts.dataDir, 'coordinator.key.json'));
    store.claimCoordinatorKey(keyId(identity.signPublicKey));
  } catch (err) {
    store.close();
    throw err;
  }
  // On PostgreSQL the database is the store of record for the ledgers too, so a coordinator moved
  // to another machine (another data dir) rebuilds them from it (job-ledgers.ts).
  const ledgers = new JobLedgers(join(opts.dataDir, 'ledgers'), identity, opts.ledgerSync ?? true, store.location.kind === 'postgres' ? store : undefined);
  const engine = new JobEngine(store, ledgers, keyId(identity.signPublicKey), logger, Date.now, opts.workloads);

  const disableRequestLogging = (opts.requestLogging ?? 'quiet') === 'quiet';
  const app = createHttpApp({ logger, https: opts.https, requestLogging: !disableRequestLogging });
  if (disableRequestLogging) {
    app.addHook('onResponse', async (req, reply) => {
      const line = { method: req.method, url: req.url.split('?')[0], statusCode: reply.statusCode, ms: Math.round(reply.elapsedTime) };
      if (reply.statusCode >= 400) req.log.info(line, 'request refused');
      else req.log.debug(line, 'request');
    });
  }

  await app.register(rawBodyPlugin, { octetStreamBytes: opts.maxUpdateBytes ?? 64 * 1024 * 1024 });
  await app.register(rateLimitPlugin, {
    perMinute: opts.rateLimitPerMinute ?? 30_000,
    perKey: { perMinute: opts.rateLimitPerKeyPerMinute ?? 6000, keyOf: (req) => req.signer?.keyId ?? '' },
  });
  await app.register(docsPlugin, {
    title: 'fedmark coordinator',
    description: 'Routes of the fedmark coordinator. Every /v1 request is signed (x-fedmark-* headers).',
  });
  await app.register(errorsPlugin, { statusOf });
  await app.register(authPlugin, { engine, nonces: store.nonceStore(), maxSkewMs: opts.maxSkewMs });
  await app.register(publicRoutes, { identity, store, minFreeBytes: opts.minFreeBytes });
  await app.register(jobRoutes, { engine });
  await app.register(membershipRoutes, { engine });
  await app.register(keyRoutes, { engine });
  await app.register(roundRoutes, { engine });
  const relay = new RelayEngine(store, engine, ledgers, identity, logger);
  // A relayed message wakes its recipient's long-poll: the count of messages awaiting the caller is part of its version.
  await app.register(longPollPlugin, { engine, limits: opts.longPoll, inbox: (jobId, keyId) => relay.relays.inboxSize(jobId, keyId) });
  await app.register(relayRoutePlugin, { relay });
  const secagg = new SecaggEngine(store, engine, identity, logger);
  engine.useSecagg(secagg);
  await app.register(secaggRoutePlugin, { secagg });

  // The sweep runs on a timer, one at a time (masked aggregation's stage closes are async: an attempt
  // may be replayed first), where a throw would end the process: a store that is down (a PostgreSQL
  // failover) is logged once and the sweep retried every tick until it is back.
  let sweeping = false;
  let sweepFailing = false;
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    engine
      .tickAll()
      .then(() => {
        if (sweepFailing) logger.info('store reachable again: deadline sweep running');
        sweepFailing = false;
      })
      .catch((err: unknown) => {
        if (!sweepFailing) logger.error({ err }, 'deadline sweep failed on the store: retrying every tick');
        sweepFailing = true;
      })
      .finally(() => (sweeping = false));
  }, opts.tickMs ?? 250);
  timer.unref();
  app.addHook('onClose', async () => {
    clearInterval(timer);
    await engine.close();
    ledgers.close();
    store.close();
  });
  return { app: app as unknown as FastifyInstance, engine, store, keyId: keyId(identity.signPublicKey) };
}

/** The coordinator keeps one identity across restarts: its key signs every job ledger it writes. */
function loadOrCreateIdentity(path: string): Identity {
  if (existsSync(path)) return readIdentityFile(path);
  const id = generateIdentity('coordinator');
  writeIdentityFile(path, id);
  return id;
}
