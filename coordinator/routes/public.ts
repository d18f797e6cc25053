import type { FastifyPluginAsync } from 'fastify';
import { publicIdentity, type Identity } from '../../src/crypto/identity.ts';
import { proveIdentity } from '../../src/federation/protocol/coordinator-proofs.ts';
import { routes } from '../../src/federation/protocol/routes.ts';
import { defineRoute, type CoordinatorApp } from './define.ts';

/**
 * Unsigned routes: liveness, and the key job owners name in the ledger's manifest entry (the
 * coordinator authors the rest), with a signature over the caller's challenge that proves the
 * coordinator holds it.
 */
export const publicRoutes: FastifyPluginAsync<{ identity: Identity }> = async (app, o) => {
  const a = app as unknown as CoordinatorApp;
  defineRoute(a, routes.health, () => ({ ok: true }));
  const pub = publicIdentity(o.identity);
  defineRoute(a, routes.identity, (req) => proveIdentity(o.identity, pub, req.query.challenge));
};
