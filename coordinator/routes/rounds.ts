import type { FastifyPluginAsync } from 'fastify';
import { routes } from '../../src/federation/protocol/routes.ts';
import type { JobEngine } from '../job-engine.ts';
import { defineRoute, type CoordinatorApp } from './define.ts';

/** Round traffic: uploads, declines, published sums and model-hash reports. */
export const roundRoutes: FastifyPluginAsync<{ engine: JobEngine }> = async (app, { engine }) => {
  const a = app as unknown as CoordinatorApp;
  defineRoute(a, routes.submit, (req) => engine.submit(req.params.jobId, req.params.round, req.signer!.keyId, req.body));
  defineRoute(a, routes.decline, (req) => {
    const b = req.body;
    engine.decline(req.params.jobId, req.params.round, req.signer!.keyId, b.attempt, b.reason, b.requestedEpsilon, b.remainingEpsilon);
    return { ok: true as const };
  });
  defineRoute(a, routes.aggregate, (req) => engine.aggregate(req.params.jobId, req.params.round, req.query.part));
  defineRoute(a, routes.contents, (req) => engine.contents(req.params.jobId, req.params.round));
  defineRoute(a, routes.reportModelHash, (req) => {
    engine.reportModelHash(req.params.jobId, req.params.round, req.signer!.keyId, req.body.hash, req.body.selection ?? null);
    return { ok: true as const };
  });
};
