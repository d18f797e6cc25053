import fp from 'fastify-plugin';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { FedmarkError } from '../../src/errors.ts';
import { statusOf } from '../../src/federation/protocol/errors.ts';
import { storageErrorCode, type StorageErrorCode } from '../../src/util/storage-errors.ts';

const STORAGE_RETRY_SECONDS = 30;
/** What the caller learns: that nothing was kept and it may retry — not the coordinator's paths. */
const STORAGE_ANSWER: Record<StorageErrorCode, string> = {
  STORAGE_FULL: "the coordinator's disk is full: nothing of this request was kept; retry later",
  STORAGE_IO_ERROR: "the coordinator's storage failed: nothing of this request was kept; retry later",
};

/**
 * Every refusal leaves in one JSON shape, `{ statusCode, code, error }`, with the status taken from
 * the protocol's one table (src/federation/protocol/errors.ts). Only a fault of the coordinator itself
 * is a 500, and its details go to the log, not to the caller.
 */
export const errorsPlugin = fp(
  async (app) => {
    app.setErrorHandler((err: unknown, req, reply) => {
      if (hasZodFastifySchemaValidationErrors(err)) {
        const issue = err.validation[0];
        const where = `${err.validationContext ?? 'request'}${issue?.instancePath ? issue.instancePath.replace(/\//g, '.') : ''}`;
        return reply.status(400).send({ statusCode: 400, code: 'INVALID_REQUEST', error: `${where}: ${issue?.message ?? 'invalid'}` });
      }
      // SQLite's own full-disk and I/O errors, and the ledger's, are the same retryable answer.
      const storage = storageErrorCode(err);
      if (storage) {
        const status = statusOf(storage);
        req.log.error({ err }, storage === 'STORAGE_FULL' ? 'storage full: request refused, nothing kept' : 'storage error: request refused, nothing kept');
        reply.header('retry-after', String(STORAGE_RETRY_SECONDS));
        return reply.status(status).send({ statusCode: status, code: storage, error: STORAGE_ANSWER[storage] });
      }
      if (err instanceof FedmarkError) {
        const status = statusOf(err.code);
        if (status >= 500) req.log.error({ err }, 'unexpected error');
        const retryAfter = err.details?.retryAfterSeconds;
        if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
        return reply.status(status).send({ statusCode: status, code: err.code, error: status >= 500 ? (err.code === 'LEDGER_CLOSED' ? 'a job ledger is closed after a failed write: the coordinator needs a restart' : 'internal error') : err.message });
      }
      // Fastify's own 4xx (body too large, unsupported media type, rate limit …) keep their status and code.
      const e = err as { statusCode?: number; code?: string; message?: string };
      if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
        return reply.status(e.statusCode).send({ statusCode: e.statusCode, code: e.code ?? 'BAD_REQUEST', error: e.message ?? 'bad request' });
      }
      req.log.error({ err }, 'unexpected error');
      return reply.status(500).send({ statusCode: 500, code: 'INTERNAL', error: 'internal error' });
    });
    app.setNotFoundHandler((req, reply) => reply.status(404).send({ statusCode: 404, code: 'NOT_FOUND', error: `no route ${req.method} ${req.url.split('?')[0]}` }));
  },
  { name: 'fedmark-errors' },
);
