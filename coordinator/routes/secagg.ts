import type { FastifyPluginAsync } from 'fastify';
import { secaggRoutes } from '../../src/federation/protocol/secagg-routes.ts';
import type { SecaggEngine } from '../secagg-engine.ts';
import { defineRoute, type CoordinatorApp } from './define.ts';

/** Masked aggregation: partners' signed stage answers in, the coordinator's signed views out. */
export const secaggRoutePlugin: FastifyPluginAsync<{ secagg: SecaggEngine }> = async (app, { secagg }) => {
  const a = app as unknown as CoordinatorApp;
  defineRoute(a, secaggRoutes.secaggPost, (req) =>
    secagg.post(req.params.jobId, req.params.round, req.signer!.keyId, req.params.stage, req.body.attempt, req.body.message),
  );
  defineRoute(a, secaggRoutes.secaggView, (req) => secagg.view(req.params.jobId, req.params.round, req.params.attempt, req.signer!.keyId, req.params.view));
};
