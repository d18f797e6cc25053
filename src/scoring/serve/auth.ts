/**
 * Authentication of scoring requests: either a request signed with a registered fedmark identity
 * (src/crypto/request-signing.ts, scope "fedmark-serve", round 0), or a bearer token read from a
 * local file that only its owner can read (mode 0600, like the identity files).
 */
import fs from 'node:fs';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { FedmarkError } from '../../errors.ts';
import { parsePublicIdentity } from '../../crypto/identity.ts';
import { MemoryNonceStore, verifyRequest, type NonceStore } from '../../crypto/request-signing.ts';

/** The job-id field signed scoring requests carry (`x-fedmark-job`); the round is 0. */
export const SERVE_SCOPE = 'fedmark-serve';

export interface AuthResult {
  ok: boolean;
  /** "token" or the signer's key id. */
  principal?: string;
  code?: string;
  error?: string;
}

export interface ServeAuth {
  check(headers: Record<string, string | string[] | undefined>, req: { method: string; path: string; body: Uint8Array }): AuthResult;
  describe(): string;
}

/** Reads (or, with `create`, makes) a bearer token file; refuses one others can read. */
export function loadTokenFile(file: string, opts: { create?: boolean } = {}): string {
  if (!fs.existsSync(file)) {
    if (!opts.create) throw new FedmarkError('SERVE_TOKEN_MISSING', `token file ${file} does not exist`);
    fs.writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
  }
  const st = fs.statSync(file);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new FedmarkError(
      'SERVE_TOKEN_PERMISSIONS',
      `token file ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${file}`,
    );
  }
  const token = fs.readFileSync(file, 'utf8').trim();
  if (token.length < 16) throw new FedmarkError('SERVE_TOKEN_WEAK', `token in ${file} is shorter than 16 characters`);
  return token;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function createServeAuth(o: {
  token?: string;
  clients?: { keyId: string; signPublicKey: string }[];
  nonces?: NonceStore;
  maxSkewMs?: number;
}): ServeAuth {
  const tokenDigest = o.token ? digest(o.token) : null;
  const keys = new Map((o.clients ?? []).map((c) => [c.keyId, c.signPublicKey]));
  if (!tokenDigest && keys.size === 0) {
    throw new FedmarkError(
      'SERVE_AUTH_REQUIRED',
      'the scoring service needs --token-file or at least one --client identity: it never answers unauthenticated requests',
    );
  }
  const nonces = o.nonces ?? new MemoryNonceStore();
  return {
    describe: () => [tokenDigest ? 'bearer token' : null, keys.size ? `${keys.size} signing client(s)` : null].filter(Boolean).join(' + '),
    check(headers, req) {
      const auth = headers.authorization;
      if (typeof auth === 'string' && auth.startsWith('Bearer ')) {
        if (!tokenDigest) return { ok: false, code: 'AUTH_TOKEN_DISABLED', error: 'bearer tokens are not accepted by this service' };
        // Compare digests: equal length, constant time.
        return timingSafeEqual(digest(auth.slice(7).trim()), tokenDigest)
          ? { ok: true, principal: 'token' }
          : { ok: false, code: 'AUTH_BAD_TOKEN', error: 'bearer token does not match' };
      }
      if (keys.size === 0) return { ok: false, code: 'AUTH_MISSING', error: 'missing "Authorization: Bearer <token>" header' };
      const v = verifyRequest(headers, req, { lookupKey: (k) => keys.get(k), nonces, maxSkewMs: o.maxSkewMs });
      if (!v.ok) return { ok: false, code: v.code, error: v.error };
      if (v.jobId !== SERVE_SCOPE || v.round !== 0) {
        return { ok: false, code: 'AUTH_SCOPE', error: `request is signed for "${v.jobId}" round ${v.round}, not for "${SERVE_SCOPE}" round 0` };
      }
      return { ok: true, principal: v.keyId };
    },
  };
}

/** Public identities (the JSON `fedmark keys init` prints) allowed to sign requests. */
export function readClientIdentities(files: string[]): { keyId: string; signPublicKey: string }[] {
  return files.map((f) => {
    try {
      const p = parsePublicIdentity(JSON.parse(fs.readFileSync(f, 'utf8')));
      return { keyId: p.keyId, signPublicKey: p.signPublicKey };
    } catch (err) {
      throw new FedmarkError('SERVE_CLIENT_IDENTITY', `client identity ${f}: ${(err as Error).message}`);
    }
  });
}
