import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

/** The OpenAPI document at /docs, generated from the protocol's zod schemas (src/federation/protocol/). */
export const docsPlugin = fp(
  async (app) => {
    await app.register(swagger, {
      openapi: { info: { title: 'fedmark coordinator', version: '0.1.0', description: 'Routes of the fedmark coordinator. Every /v1 request is signed (x-fedmark-* headers).' } },
      transform: jsonSchemaTransform,
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  },
  { name: 'fedmark-docs' },
);
