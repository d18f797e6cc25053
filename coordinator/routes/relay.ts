import type { FastifyPluginAsync } from 'fastify';
import { relayRoutes } from '../../src/federation/protocol/relay-routes.ts';
import type { RelayEngine } from '../relay-engine.ts';
import { defineRoute, type CoordinatorApp } from './define.ts';

/** Relay rounds: sealed point-to-point messages in and out, and the senders' release statements. */
export const relayRoutePlugin: FastifyPluginAsync<{ relay: RelayEngine }> = async (app, { relay }) => {
  const a = app as unknown as CoordinatorApp;
  defineRoute(a, relayRoutes.relayPut, (req) => relay.put(req.params.jobId, req.params.round, req.signer!.keyId, req.params.to, req.body));
  defineRoute(a, relayRoutes.relayGet, (req) => relay.get(req.params.jobId, req.params.round, req.params.from, req.signer!.keyId));
  defineRoute(a, relayRoutes.release, (req) => {
    relay.release(req.params.jobId, req.params.round, req.signer!.keyId, req.body.statement);
    return { ok: true as const };
  });
};
