import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { FedmarkError } from '../src/errors.ts';
import { assertKeyMatchesCertificate, certificateSha256 } from '../src/crypto/tls.ts';
import { isLoopbackHost } from '../src/transport/loopback.ts';

/** What `buildCoordinator({ https })` takes: PEM strings or buffers, handed to node:https as is. */
export interface CoordinatorTls {
  key: string | Buffer;
  cert: string | Buffer;
}

export interface LoadedCoordinatorTls extends CoordinatorTls {
  /** SHA-256 of the certificate (what pinning clients configure). */
  sha256: string;
  notAfter: Date;
  /** Names the certificate covers (subjectAltName), for the start-up log. */
  names: string[];
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new FedmarkError('TLS_FILE', `cannot read the TLS ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Loads and checks the coordinator's certificate and key before the server starts, so a wrong file
 * fails at start-up with a message instead of at every client's handshake: the key must belong to
 * the certificate, the certificate must be valid now and should name the host clients connect to.
 */
export function loadCoordinatorTls(o: { certFile: string; keyFile: string; host?: string; now?: Date }): LoadedCoordinatorTls {
  const cert = readPem(o.certFile, 'certificate');
  const key = readPem(o.keyFile, 'private key');
  assertKeyMatchesCertificate(cert, key);
  const x = new X509Certificate(cert);
  const now = o.now ?? new Date();
  const notBefore = new Date(x.validFrom);
  const notAfter = new Date(x.validTo);
  if (now < notBefore) throw new FedmarkError('TLS_CERT_NOT_YET_VALID', `the TLS certificate ${o.certFile} is not valid before ${notBefore.toISOString()}`);
  if (now > notAfter) throw new FedmarkError('TLS_CERT_EXPIRED', `the TLS certificate ${o.certFile} expired on ${notAfter.toISOString()}`);
  const names = (x.subjectAltName ?? '')
    .split(/,\s*/)
    .filter(Boolean)
    .map((n) => n.replace(/^(DNS|IP Address):/, ''));
  // Listening on a wildcard address says nothing about the name clients use, so only check a concrete host.
  if (o.host && o.host !== '0.0.0.0' && o.host !== '::') {
    const matches = isIP(o.host) ? x.checkIP(o.host) !== undefined : x.checkHost(o.host) !== undefined;
    if (!matches) {
      throw new FedmarkError(
        'TLS_CERT_HOST',
        `the TLS certificate ${o.certFile} does not cover ${o.host} (it names ${names.join(', ') || 'no subjectAltName'}): clients would refuse it`,
      );
    }
  }
  return { cert, key, sha256: certificateSha256(cert), notAfter, names };
}

/**
 * The coordinator serves HTTPS wherever it listens, and plain HTTP on loopback only: on any other
 * interface signatures, sealed keys and ciphertexts would cross the network unprotected.
 */
export function assertTransportAllowed(host: string, tls: CoordinatorTls | undefined): void {
  if (!tls && !isLoopbackHost(host)) {
    throw new FedmarkError(
      'INSECURE_TRANSPORT',
      `refusing plain HTTP on ${host}: plain HTTP is allowed on loopback only (give --tls-cert and --tls-key to serve HTTPS)`,
    );
  }
}
