import fp from 'fastify-plugin';
import { DomainError } from '../../src/federation/protocol/errors.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The exact bytes of the body: the request signature covers them. */
    rawBody?: Buffer;
  }
}

/**
 * Keeps every body's raw bytes next to its parsed form: JSON is parsed from the buffer the signature
 * was computed over, and octet-stream bodies (sealed keys, update envelopes) stay buffers.
 */
export const rawBodyPlugin = fp<{ maxUpdateBytes: number }>(
  async (app, o) => {
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      req.rawBody = body as Buffer;
      if ((body as Buffer).length === 0) return done(null, undefined);
      try {
        done(null, JSON.parse((body as Buffer).toString('utf8')));
      } catch {
        done(new DomainError('BAD_JSON', 'request body is not valid JSON'), undefined);
      }
    });
    app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: o.maxUpdateBytes }, (req, body, done) => {
      req.rawBody = body as Buffer;
      done(null, body);
    });
  },
  { name: 'fedmark-raw-body' },
);
