import https from 'node:https';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { FedmarkError } from '../errors.ts';
import { normalizeSha256Pin } from '../crypto/tls.ts';
import { isLoopbackHost } from './loopback.ts';

/**
 * How a client node decides that it is talking to the real coordinator.
 * - `ca` only: the certificate must chain to this CA (the system store is NOT consulted) and name the host.
 * - `pinSha256` only: the leaf certificate must have exactly this SHA-256 fingerprint and be within its
 *   validity dates; its issuer and names are not checked (the pin identifies it completely), so a
 *   self-signed certificate works.
 * - both: all of the above.
 * - neither: the system CA store, as any HTTPS client.
 */
export interface ClientTlsOptions {
  ca?: string | Buffer;
  pinSha256?: string;
}

/** A fetch over node:https, for HTTPS coordinators; `close()` drops its kept-alive connections. */
export type CoordinatorFetch = typeof fetch & { close(): void };

/**
 * Refuses coordinator URLs that would send signed requests, sealed keys and ciphertexts in clear over
 * a network: plain http:// is accepted for loopback hosts only.
 */
export function assertCoordinatorUrl(baseUrl: string, tlsOptions?: ClientTlsOptions): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new FedmarkError('BAD_COORDINATOR_URL', `coordinator URL "${baseUrl}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FedmarkError('BAD_COORDINATOR_URL', `coordinator URL "${baseUrl}" must start with https:// (or http:// on loopback)`);
  }
  if (url.username || url.password)
    throw new FedmarkError('BAD_COORDINATOR_URL', 'coordinator URL must not carry credentials; requests are signed with the node identity');
  if (url.protocol === 'http:') {
    if (tlsOptions && (tlsOptions.ca !== undefined || tlsOptions.pinSha256 !== undefined)) {
      throw new FedmarkError('INSECURE_TRANSPORT', `a CA or certificate pin was given but the coordinator URL ${baseUrl} is plain http://; use https://`);
    }
    if (!isLoopbackHost(url.hostname)) {
      throw new FedmarkError(
        'INSECURE_TRANSPORT',
        `refusing plain HTTP to the coordinator at ${url.host}: plain HTTP is allowed on loopback only (use https:// with --ca or --pin-sha256)`,
      );
    }
  }
  return url;
}

/** Reads the CLI's `--ca FILE` and `--pin-sha256 HEX` into options, checking both up front. */
export function loadClientTls(o: { caFile?: string; pinSha256?: string }): ClientTlsOptions {
  const out: ClientTlsOptions = {};
  if (o.caFile) {
    let pem: Buffer;
    try {
      pem = readFileSync(o.caFile);
    } catch (err) {
      throw new FedmarkError('TLS_FILE', `cannot read the CA file ${o.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      new X509Certificate(pem);
    } catch {
      throw new FedmarkError('TLS_BAD_CERT', `the CA file ${o.caFile} holds no PEM certificate`);
    }
    out.ca = pem;
  }
  if (o.pinSha256 !== undefined) out.pinSha256 = normalizeSha256Pin(o.pinSha256);
  return out;
}

// Node's and OpenSSL's verification codes, translated into what the operator has to fix.
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
]);

/** Turns a socket/TLS error into a FedmarkError whose code and message name the TLS problem. */
export function describeTlsError(err: unknown, origin: string): FedmarkError {
  if (err instanceof FedmarkError) return err;
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = e?.code ?? '';
  const detail = `${e?.message ?? String(err)}${code ? ` [${code}]` : ''}`;
  const at = `the coordinator at ${origin}`;
  if (code === 'CERT_HAS_EXPIRED') return new FedmarkError('TLS_CERT_EXPIRED', `TLS: ${at} presented an expired certificate (${detail})`, { tlsCode: code });
  if (code === 'CERT_NOT_YET_VALID')
    return new FedmarkError('TLS_CERT_NOT_YET_VALID', `TLS: ${at} presented a certificate that is not valid yet (${detail})`, { tlsCode: code });
  if (code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'SELF_SIGNED_CERT_IN_CHAIN') {
    return new FedmarkError(
      'TLS_UNTRUSTED_CERT',
      `TLS: ${at} presented a self-signed certificate that is neither issued by the configured CA nor pinned (give --ca or --pin-sha256) (${detail})`,
      { tlsCode: code },
    );
  }
  if (UNTRUSTED.has(code))
    return new FedmarkError('TLS_UNTRUSTED_CERT', `TLS: the certificate of ${at} is not issued by the configured CA (${detail})`, { tlsCode: code });
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return new FedmarkError('TLS_HOSTNAME_MISMATCH', `TLS: the certificate of ${at} does not name that host (${detail})`, { tlsCode: code });
  if (code.startsWith('ERR_SSL_') || code === 'EPROTO' || code.startsWith('ERR_TLS_')) {
    return new FedmarkError('TLS_HANDSHAKE_FAILED', `TLS: handshake with ${at} failed — is it serving HTTPS? (${detail})`, { tlsCode: code });
  }
  // Not a TLS problem (refused, reset, DNS): callers may retry these.
  return new FedmarkError('COORDINATOR_UNREACHABLE', `cannot reach ${at}: ${detail}`, { errno: code });
}

/**
 * An https.Agent whose sockets are handed to the HTTP layer only after the server is verified, so
 * not one byte of a signed request goes to a server that fails the CA check or the pin.
 */
class VerifyingAgent extends https.Agent {
  private readonly pin: string | undefined;
  private readonly ca: string | Buffer | undefined;

  constructor(o: ClientTlsOptions) {
    super({ keepAlive: true });
    this.pin = o.pinSha256 === undefined ? undefined : normalizeSha256Pin(o.pinSha256);
    this.ca = o.ca;
  }

  override createConnection(options: tls.ConnectionOptions, callback: (err: Error | null, socket?: Duplex) => void): Duplex | undefined {
    const pinOnly = this.pin !== undefined && this.ca === undefined;
    // Chain verification stays on unless the pin alone defines trust.
    const socket = tls.connect({ ...options, ca: this.ca, rejectUnauthorized: !pinOnly, session: undefined });
    const fail = (err: Error) => {
      socket.destroy();
      callback(err);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.removeListener('error', fail);
      if (this.pin !== undefined) {
        const peer = socket.getPeerCertificate();
        const actual = peer?.fingerprint256?.replace(/:/g, '').toLowerCase();
        if (!actual) return fail(new FedmarkError('TLS_PIN_MISMATCH', 'TLS: the coordinator presented no certificate to compare with the pin'));
        if (actual !== this.pin) {
          return fail(new FedmarkError('TLS_PIN_MISMATCH', `TLS: the coordinator's certificate has SHA-256 ${actual}, not the pinned ${this.pin}`));
        }
        if (pinOnly) {
          // Without chain verification OpenSSL's date check did not apply: do it here.
          const now = Date.now();
          if (now > Date.parse(peer.valid_to))
            return fail(new FedmarkError('TLS_CERT_EXPIRED', `TLS: the pinned coordinator certificate expired on ${new Date(peer.valid_to).toISOString()}`));
          if (now < Date.parse(peer.valid_from))
            return fail(
              new FedmarkError(
                'TLS_CERT_NOT_YET_VALID',
                `TLS: the pinned coordinator certificate is not valid before ${new Date(peer.valid_from).toISOString()}`,
              ),
            );
        }
      }
      callback(null, socket);
    });
    return undefined;
  }
}

/** Largest response body accepted (aggregates of big models are tens of MB). */
const MAX_RESPONSE_BYTES = 512 * 1024 * 1024;

/**
 * A fetch-compatible function over node:https with the given trust settings. Node 20's global fetch
 * (undici) takes no CA or pin, and undici itself is not a dependency, so HTTPS goes through node:https.
 */
export function createTlsFetch(o: ClientTlsOptions = {}): CoordinatorFetch {
  const agent = new VerifyingAgent(o);
  const f = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
      if (url.protocol !== 'https:') return reject(new FedmarkError('BAD_COORDINATOR_URL', `the TLS transport only speaks https://, got ${url.protocol}`));
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((v, k) => {
        headers[k] = v;
      });
      const body = init.body;
      if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
        return reject(new TypeError('createTlsFetch: body must be a string or Uint8Array'));
      }
      if (body !== undefined && body !== null) headers['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
      const req = https.request(url, { method: init.method ?? 'GET', headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new FedmarkError('RESPONSE_TOO_LARGE', `coordinator response exceeds ${MAX_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', (err) => reject(describeTlsError(err, url.origin)));
        res.on('end', () => {
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (Array.isArray(v)) for (const x of v) out.append(k, x);
            else if (v !== undefined) out.set(k, v);
          }
          const status = res.statusCode ?? 0;
          const nullBody = status === 204 || status === 304 || init.method === 'HEAD';
          resolve(new Response(nullBody ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage, headers: out }));
        });
      });
      req.on('error', (err) => reject(describeTlsError(err, url.origin)));
      init.signal?.addEventListener('abort', () => req.destroy(new FedmarkError('ABORTED', 'request aborted')), { once: true });
      req.end(body ?? undefined);
    });
  return Object.assign(f, { close: () => agent.destroy() }) as CoordinatorFetch;
}

const trusted = new Map<string, ClientTlsOptions>();

/**
 * Registers how to verify the coordinator at `baseUrl`'s origin for every CoordinatorClient built
 * without explicit TLS options in this process (the CLI sets it once; runPartnerNode and
 * runJobOwner build their clients internally).
 */
export function trustCoordinator(baseUrl: string, o: ClientTlsOptions): void {
  trusted.set(assertCoordinatorUrl(baseUrl, o).origin, o);
}

/** Forgets every registration (tests). */
export function clearTrustedCoordinators(): void {
  trusted.clear();
}

/**
 * The transport a CoordinatorClient uses for `baseUrl`: global fetch for loopback http://, a
 * verifying node:https transport for https:// (explicit options, else the registered ones, else
 * the system CA store). Refuses plain HTTP off loopback.
 */
export function coordinatorTransport(baseUrl: string, o?: ClientTlsOptions): typeof fetch {
  const url = assertCoordinatorUrl(baseUrl, o);
  if (url.protocol === 'http:') return fetch;
  return createTlsFetch(o ?? trusted.get(url.origin) ?? {});
}
