import fp from 'fastify-plugin';
import rateLimit from '@fastify/rate-limit';

/** Requests per minute per caller (the signing key when the request names one, else the address). */
export const rateLimitPlugin = fp<{ perMinute: number }>(
  async (app, o) => {
    await app.register(rateLimit, {
      max: o.perMinute,
      timeWindow: '1 minute',
      keyGenerator: (req) => (req.headers['x-fedmark-key'] as string | undefined) ?? req.ip,
      errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, code: 'RATE_LIMITED', error: `rate limit exceeded: ${ctx.max} requests per ${ctx.after}` }),
    });
  },
  { name: 'fedmark-rate-limit' },
);
