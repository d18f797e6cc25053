import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { DomainError } from '../../src/federation/protocol/errors.ts';
import type { RouteSpec } from '../../src/federation/protocol/routes.ts';
import { errorBodySchema } from '../../src/federation/protocol/schemas.ts';

export type CoordinatorApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;
/** What a handler receives: params, query and body typed by the route's schemas (a Buffer for binary bodies). */
export type RouteRequest<R extends RouteSpec> = FastifyRequest<{
  Params: Out<R['params']>;
  Querystring: Out<R['query']>;
  Body: R['body'] extends z.ZodType ? z.output<R['body']> : Buffer;
}>;
type Answer<R extends RouteSpec> = R['response'] extends z.ZodType ? z.input<R['response']> : Uint8Array;

const CONTENT_TYPES = { 'octet-stream': 'application/octet-stream', ndjson: 'application/x-ndjson' } as const;

/**
 * Registers a handler for one entry of the protocol's route table: the schemas validate the request
 * and the answer (and feed the OpenAPI document), the auth plugin reads `config.fedmark`, binary
 * bodies must arrive as octet-stream, and binary answers are sent with their content type.
 */
export function defineRoute<R extends RouteSpec>(
  app: CoordinatorApp,
  spec: R,
  handler: (req: RouteRequest<R>, reply: FastifyReply) => Answer<R> | Promise<Answer<R>>,
): void {
  const isSchema = (x: unknown): x is z.ZodType => typeof x === 'object' && x !== null;
  const status = spec.status ?? 200;
  app.route({
    method: spec.method,
    url: spec.url,
    config: { fedmark: spec },
    schema: {
      summary: spec.summary,
      ...(spec.params ? { params: spec.params } : {}),
      ...(spec.query ? { querystring: spec.query } : {}),
      ...(isSchema(spec.body) ? { body: spec.body } : {}),
      response: { ...(isSchema(spec.response) ? { [status]: spec.response } : {}), '4xx': errorBodySchema, '5xx': errorBodySchema },
    },
    handler: async (req, reply) => {
      if (typeof spec.body === 'string' && !(req.body instanceof Buffer)) {
        throw new DomainError(
          'WRONG_CONTENT_TYPE',
          `${spec.method} ${spec.url} takes an application/octet-stream body, not ${req.headers['content-type'] ?? 'none'}`,
        );
      }
      const out = reply as unknown as FastifyReply;
      const answer = await handler(req as unknown as RouteRequest<R>, out);
      if (typeof spec.response === 'string')
        return out
          .status(status)
          .type(CONTENT_TYPES[spec.response])
          .send(Buffer.from(answer as Uint8Array));
      return out.status(status).send(answer);
    },
  });
}
