import type { FastifyPluginAsync } from 'fastify';
import { routes } from '../../src/federation/protocol/routes.ts';
import type { JobEngine } from '../job-engine.ts';
import { defineRoute, type CoordinatorApp } from './define.ts';

/** The key ceremony: opaque sealed blobs in, each partner's own blob out. */
export const keyRoutes: FastifyPluginAsync<{ engine: JobEngine }> = async (app, { engine }) => {
  const a = app as unknown as CoordinatorApp;
  defineRoute(a, routes.putSealedKey, (req) => {
    engine.putSealedKey(req.params.jobId, req.params.keyId, req.body);
    return { ok: true as const };
  });
  defineRoute(a, routes.sealedKey, (req) => engine.sealedKey(req.params.jobId, req.signer!.keyId));
};
