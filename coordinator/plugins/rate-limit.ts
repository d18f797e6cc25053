import fp from 'fastify-plugin';
import rateLimit from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import { DomainError } from '../../src/federation/protocol/errors.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Counts one request against its authenticated signer's budget; throws RATE_LIMITED when spent (see the auth plugin). */
    limitSigner(req: FastifyRequest): Promise<void>;
  }
}

export interface RateLimitOptions {
  /** Requests per minute per client address, counted before anything is parsed or verified. */
  perMinute: number;
  /** Requests per minute per authenticated key, counted once the signature verified. */
  perKeyPerMinute: number;
}

/**
 * Two limits. Every request first counts against its client address, in `onRequest` before any
 * header is parsed or signature verified, so a flood costs the coordinator almost nothing — and no
 * header the client chooses (a fresh `x-fedmark-key` per request) makes it a new caller. A request
 * that authenticates then counts against its signing key (`limitSigner`, called by the auth plugin),
 * so one key cannot use up what the partners behind a shared address need.
 */
export const rateLimitPlugin = fp<RateLimitOptions>(
  async (app, o) => {
    const refuse = (max: number, after: string, who: string) => ({ statusCode: 429, code: 'RATE_LIMITED', error: `rate limit exceeded: ${max} requests per ${after} per ${who}` });
    await app.register(rateLimit, {
      max: o.perMinute,
      timeWindow: '1 minute',
      keyGenerator: (req) => `address:${req.ip}`,
      errorResponseBuilder: (_req, ctx) => refuse(ctx.max, ctx.after, 'client address'),
    });
    const perKey = app.createRateLimit({ max: o.perKeyPerMinute, timeWindow: '1 minute', keyGenerator: (req) => `key:${req.signer?.keyId ?? ''}` });
    app.decorate('limitSigner', async (req: FastifyRequest) => {
      const r = await perKey(req);
      if (!r.isAllowed && r.isExceeded) {
        throw new DomainError('RATE_LIMITED', `rate limit exceeded: ${r.max} requests per minute per key (retry in ${r.ttlInSeconds} s)`, { retryAfterSeconds: r.ttlInSeconds });
      }
    });
  },
  { name: 'fedmark-rate-limit' },
);
