import type { FastifyPluginAsync } from 'fastify';
import { routes } from '../../src/federation/protocol/routes.ts';
import type { JobEngine } from '../job-engine.ts';
import { defineRoute, type CoordinatorApp } from './define.ts';

/** A partner's attested acceptance, refusal and withdrawal; the owner's emergency brake. */
export const membershipRoutes: FastifyPluginAsync<{ engine: JobEngine }> = async (app, { engine }) => {
  const a = app as unknown as CoordinatorApp;
  defineRoute(a, routes.accept, (req) => {
    engine.accept(req.params.jobId, req.signer!.keyId, req.body);
    return { ok: true as const };
  });
  defineRoute(a, routes.leave, (req) => {
    engine.leave(req.params.jobId, req.signer!.keyId, req.body.reason, req.body.statement);
    return { ok: true as const };
  });
  defineRoute(a, routes.withdraw, (req) => {
    engine.withdraw(req.params.jobId, req.signer!.keyId, req.body.reason, req.body.statement);
    return { ok: true as const };
  });
  defineRoute(a, routes.halt, (req) => {
    engine.halt(req.params.jobId, req.body.reason);
    return { ok: true as const };
  });
};
