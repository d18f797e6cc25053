import fp from 'fastify-plugin';
import type { FastifyRequest, preHandlerHookHandler } from 'fastify';
import { verifyRequest, type NonceStore } from '../../src/crypto/request-signing.ts';
import { DomainError, isProtocolErrorCode } from '../../src/federation/protocol/errors.ts';
import type { RouteSpec } from '../../src/federation/protocol/routes.ts';
import type { SignedManifest } from '../../src/federation/manifest.ts';
import type { JobEngine } from '../job-engine.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who signed the request, once authenticated. */
    signer?: { keyId: string; role: 'owner' | 'partner' };
  }
  interface FastifyContextConfig {
    /** The protocol route a handler serves: its `auth` and `role` decide the checks below. */
    fedmark?: RouteSpec;
  }
}

export interface AuthOptions {
  engine: JobEngine;
  nonces: NonceStore;
  maxSkewMs?: number;
}

/**
 * Authentication and roles for every route, from the route table: a route whose spec says
 * `auth: 'job'` must be signed by a key of that job (owner or a partner the manifest names) for the
 * job and round in its path; `auth: 'create'` by the owner the submitted manifest names; `role`
 * then narrows who may call it. Handlers never repeat these checks.
 */
export const authPlugin = fp<AuthOptions>(
  async (app, o) => {
    const authenticate = (req: FastifyRequest, jobId: string, round: number, ownerFromBody?: { keyId: string; signPublicKey: string }): void => {
      const result = verifyRequest(
        req.headers as Record<string, string | string[] | undefined>,
        { method: req.method, path: req.url, body: req.rawBody ?? new Uint8Array(0) },
        {
          lookupKey: (keyId) => (ownerFromBody ? (ownerFromBody.keyId === keyId ? ownerFromBody.signPublicKey : undefined) : o.engine.lookupKey(jobId, keyId)?.signPublicKey),
          nonces: o.nonces,
          maxSkewMs: o.maxSkewMs,
        },
      );
      // Every code verifyRequest returns is in the table (test/federation/protocol/errors.test.ts checks it).
      if (!result.ok) throw new DomainError(isProtocolErrorCode(result.code) ? result.code : 'AUTH_MALFORMED', result.error);
      if (result.jobId !== jobId) throw new DomainError('SIGNATURE_SCOPE', `request is signed for job "${result.jobId}", not "${jobId}"`);
      if (result.round !== round) throw new DomainError('SIGNATURE_SCOPE', `request is signed for round ${result.round}, not ${round}`);
      req.signer = ownerFromBody ? { keyId: result.keyId, role: 'owner' } : { keyId: result.keyId, role: o.engine.lookupKey(jobId, result.keyId)!.role };
    };

    const checks = (spec: RouteSpec): preHandlerHookHandler => async (req) => {
      if (spec.auth === 'create') {
        const { manifest } = req.body as SignedManifest;
        authenticate(req, manifest.jobId, 0, { keyId: manifest.owner.keyId, signPublicKey: manifest.owner.signPublicKey });
      } else {
        const params = req.params as { jobId: string; round?: number };
        o.engine.requireJob(params.jobId);
        authenticate(req, params.jobId, params.round ?? 0);
      }
      if (spec.role === 'owner' && req.signer?.role !== 'owner') throw new DomainError('OWNER_ONLY', 'only the job owner may do this');
      if (spec.role === 'partner' && req.signer?.role !== 'partner') throw new DomainError('PARTNER_ONLY', 'only a partner may do this');
    };

    app.addHook('onRoute', (route) => {
      const spec = route.config?.fedmark;
      if (!spec || spec.auth === 'none') return;
      const existing = route.preHandler ? (Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]) : [];
      route.preHandler = [...existing, checks(spec)] as preHandlerHookHandler[];
    });
  },
  { name: 'fedmark-auth' },
);

