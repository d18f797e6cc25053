import type { FastifyPluginAsync } from 'fastify';
import { publicIdentity, type Identity } from '../../src/crypto/identity.ts';
import { proveIdentity } from '../../src/federation/protocol/coordinator-proofs.ts';
import { routes } from '../../src/federation/protocol/routes.ts';
import type { Health } from '../../src/federation/protocol/schemas.ts';
import { isLoopbackHost } from '../../src/transport/loopback.ts';
import { formatBytes, freeBytes } from '../../src/util/storage-errors.ts';
import type { CoordinatorStore } from '../store.ts';
import { defineRoute, type CoordinatorApp } from './define.ts';

/** Below this much free space the coordinator warns in its log and /health says `ok: false`. */
export const DEFAULT_MIN_FREE_BYTES = 256 * 1024 * 1024;
const DISK_CHECK_MS = 60_000;

/**
 * Unsigned routes: health, and the key job owners name in the ledger's manifest entry (the
 * coordinator authors the rest), with a signature over the caller's challenge that proves the
 * coordinator holds it. Health detail goes only to callers on this host; a free-space warning is
 * logged every minute while space is below the floor, before a write fails on it.
 */
export const publicRoutes: FastifyPluginAsync<{ identity: Identity; store: CoordinatorStore; minFreeBytes?: number }> = async (app, o) => {
  const a = app as unknown as CoordinatorApp;
  const minFree = o.minFreeBytes ?? DEFAULT_MIN_FREE_BYTES;
  const disk = () => {
    const free = freeBytes(o.store.dataDir);
    return { freeBytes: free, minFreeBytes: minFree, low: free !== null && free < minFree };
  };
  defineRoute(a, routes.health, (req): Health => {
    const store = o.store.probe();
    const d = disk();
    const ok = store.writable && !d.low;
    if (!isLoopbackHost(req.ip.replace(/^::ffff:/, ''))) return { ok };
    return { ok, store: { writable: store.writable, ...(store.error ? { error: store.error } : {}) }, disk: d, jobs: store.jobs, openRounds: store.openRounds };
  });
  const pub = publicIdentity(o.identity);
  defineRoute(a, routes.identity, (req) => proveIdentity(o.identity, pub, req.query.challenge));

  const warnIfLow = () => {
    const d = disk();
    if (d.low)
      app.log.warn(
        { dataDir: o.store.dataDir, freeBytes: d.freeBytes, minFreeBytes: minFree },
        `low disk space: ${formatBytes(d.freeBytes!)} free under ${o.store.dataDir} (floor ${formatBytes(minFree)}) — uploads will be refused with 507 STORAGE_FULL when it runs out`,
      );
  };
  warnIfLow();
  const timer = setInterval(warnIfLow, DISK_CHECK_MS);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
};
