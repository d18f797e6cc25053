import fp from 'fastify-plugin';
import { Transform } from 'node:stream';
import type { FastifyRequest, onRequestHookHandler, preHandlerHookHandler, preParsingHookHandler, preValidationHookHandler } from 'fastify';
import { bodyMatches, headerValue, PUBLIC_KEY_HEADER, SIGNATURE_HEADERS, verifyRequestHeaders, type NonceStore } from '../../src/crypto/request-signing.ts';
import { DomainError, isProtocolErrorCode } from '../../src/federation/protocol/errors.ts';
import { bodyLimitOf, type RouteSpec } from '../../src/federation/protocol/routes.ts';
import type { SignedManifest } from '../../src/federation/manifest.ts';
import type { JobEngine } from '../job-engine.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who signed the request, once authenticated (from its headers, before the body is read). */
    signer?: { keyId: string; role: 'owner' | 'partner' };
    /** What authentication established that the body must match: its signed hash, its size limit. */
    signed?: { bodySha256: string; maxBodyBytes: number; jobId: string; signPublicKey: string };
  }
  interface FastifyContextConfig {
    /** The protocol route a handler serves: its `auth`, `role` and body limit decide the checks below. */
    fedmark?: RouteSpec;
  }
}

export interface AuthOptions {
  engine: JobEngine;
  nonces: NonceStore;
  maxSkewMs?: number;
}

/** What a stranger hears whether the job is unknown, the key is not the job's, or the signature is bad. */
function rejected(jobId: string): DomainError {
  return new DomainError(
    'AUTH_REJECTED',
    `request not authenticated for job "${jobId}": no such job, a key the job does not name, or a signature that does not verify`,
  );
}

/**
 * Authentication, roles and body limits for every route, from the route table, in the order that
 * keeps an unauthenticated caller from costing memory or learning anything:
 *
 * 1. `onRequest` (after the per-address rate limit, before the body is read): the signed headers are
 *    verified — the signature covers the body's hash header — against the key the job names
 *    (`auth: 'job'`; an unknown job and a key the job does not name are one answer, `AUTH_REJECTED`)
 *    or the key the request carries (`auth: 'create'`: the owner's key is in the body not read yet);
 *    then the signer's own rate limit, its role, and the route's body limit (from the job's manifest
 *    for uploads) against the declared `content-length`.
 * 2. `preParsing`: the body is counted as it streams in and cut off past the limit (chunked uploads
 *    declare no length).
 * 3. `preValidation`: the body that arrived must hash to the signed value; then (`preHandler`, once
 *    the schema validated it) a new job's manifest must name the key that signed the request as its owner.
 *
 * Handlers never repeat these checks.
 */
export const authPlugin = fp<AuthOptions>(
  async (app, o) => {
    const authenticate =
      (spec: RouteSpec): onRequestHookHandler =>
      async (req) => {
        const params = (req.params ?? {}) as { jobId?: string; round?: string };
        const create = spec.auth === 'create';
        const jobId = create ? (headerValue(req.headers, SIGNATURE_HEADERS.job) ?? '') : String(params.jobId ?? '');
        const carried = headerValue(req.headers, PUBLIC_KEY_HEADER);
        let role: 'owner' | 'partner' | undefined;
        let signPublicKey = '';
        const result = verifyRequestHeaders(
          req.headers as Record<string, string | string[] | undefined>,
          { method: req.method, path: req.url },
          {
            lookupKey: (keyId) => {
              if (create) {
                role = 'owner';
                signPublicKey = carried ?? '';
                return carried;
              }
              const key = o.engine.lookupKey(jobId, keyId);
              role = key?.role;
              signPublicKey = key?.signPublicKey ?? '';
              return key?.signPublicKey;
            },
            nonces: o.nonces,
            maxSkewMs: o.maxSkewMs,
          },
        );
        if (!result.ok) {
          if (!create && (result.code === 'AUTH_UNKNOWN_KEY' || result.code === 'AUTH_BAD_SIGNATURE')) throw rejected(jobId);
          // Every code verifyRequest returns is in the table (test/federation/protocol/errors.test.ts checks it).
          throw new DomainError(isProtocolErrorCode(result.code) ? result.code : 'AUTH_MALFORMED', result.error);
        }
        if (result.jobId !== jobId) throw new DomainError('SIGNATURE_SCOPE', `request is signed for job "${result.jobId}", not "${jobId}"`);
        const round = params.round === undefined ? 0 : Number(params.round);
        if (result.round !== round) throw new DomainError('SIGNATURE_SCOPE', `request is signed for round ${result.round}, not ${params.round}`);
        req.signer = { keyId: result.keyId, role: role! };
        await app.limitSigner(req);
        if (spec.role === 'owner' && req.signer.role !== 'owner') throw new DomainError('OWNER_ONLY', 'only the job owner may do this');
        if (spec.role === 'partner' && req.signer.role !== 'partner') throw new DomainError('PARTNER_ONLY', 'only a partner may do this');
        const limit = bodyLimitOf(spec);
        const maxBodyBytes = limit === 'round-plan' ? await o.engine.maxSubmissionBytes(jobId, round) : limit;
        req.signed = { bodySha256: result.bodySha256, maxBodyBytes, jobId, signPublicKey };
        const declared = Number(req.headers['content-length'] ?? 0);
        if (declared > maxBodyBytes) throw tooLarge(spec, declared, maxBodyBytes);
      };

    const countBody =
      (spec: RouteSpec): preParsingHookHandler =>
      async (req, _reply, payload) => {
        const limit = req.signed?.maxBodyBytes ?? 0;
        let seen = 0;
        const counted = new Transform({
          transform(chunk: Buffer, _enc, done) {
            seen += chunk.length;
            if (seen > limit) done(tooLarge(spec, seen, limit));
            else done(null, chunk);
          },
        });
        payload.on('error', (err) => counted.destroy(err));
        return payload.pipe(counted);
      };

    const checkBody: preValidationHookHandler = async (req: FastifyRequest) => {
      const signed = req.signed!;
      if (!bodyMatches(signed.bodySha256, req.rawBody ?? new Uint8Array(0))) {
        throw new DomainError('AUTH_BAD_SIGNATURE', `the request body does not match the signed ${SIGNATURE_HEADERS.bodySha256}`);
      }
    };

    /** After validation (so a malformed manifest is named as such): a new job is registered by the owner it names. */
    const checkOwner =
      (spec: RouteSpec): preHandlerHookHandler =>
      async (req: FastifyRequest) => {
        const signed = req.signed!;
        if (spec.auth === 'create') {
          const { manifest } = (req.body ?? {}) as Partial<SignedManifest>;
          if (manifest?.jobId !== signed.jobId)
            throw new DomainError('SIGNATURE_SCOPE', `request is signed for job "${signed.jobId}", the manifest is for "${String(manifest?.jobId)}"`);
          if (manifest.owner?.keyId !== req.signer!.keyId || manifest.owner?.signPublicKey !== signed.signPublicKey) {
            throw new DomainError('OWNER_ONLY', "a job is registered by its owner: the request must be signed by the manifest's owner key");
          }
        }
      };

    app.addHook('onRoute', (route) => {
      const spec = route.config?.fedmark;
      if (!spec || spec.auth === 'none') return;
      const add = <K extends 'onRequest' | 'preParsing' | 'preValidation' | 'preHandler'>(hook: K, fn: unknown) => {
        const existing = route[hook] ? (Array.isArray(route[hook]) ? route[hook] : [route[hook]]) : [];
        (route as unknown as Record<string, unknown>)[hook] = [...(existing as unknown[]), fn];
      };
      add('onRequest', authenticate(spec));
      add('preParsing', countBody(spec));
      add('preValidation', checkBody);
      if (spec.auth === 'create') add('preHandler', checkOwner(spec));
    });
  },
  { name: 'fedmark-auth', dependencies: ['fedmark-rate-limit'] },
);

function tooLarge(spec: RouteSpec, bytes: number, limit: number): DomainError {
  return new DomainError('BODY_TOO_LARGE', `${spec.method} ${spec.url}: a body of ${bytes} bytes exceeds this route's limit of ${limit} bytes`);
}
