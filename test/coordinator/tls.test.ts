import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildCoordinator } from '../../coordinator/server.ts';
import { assertTransportAllowed, loadCoordinatorTls } from '../../coordinator/tls.ts';
import { routes } from '../../src/federation/protocol/routes.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { assertCoordinatorUrl, clearTrustedCoordinators, createTlsFetch, loadClientTls, trustCoordinator } from '../../src/transport/tls-client.ts';
import { generateIdentity, type Identity } from '../../src/crypto/identity.ts';
import {
  certificateSha256,
  generateCertificateAuthority,
  generateSelfSignedCertificate,
  issueServerCertificate,
  normalizeSha256Pin,
  writeTestDeployment,
  type PemPair,
} from '../../src/crypto/tls.ts';
import { FedmarkError } from '../../src/errors.ts';
import { makeIdentities, makeJob, runFederation, telcoPartners } from '../helpers/partners.ts';

/**
 * The coordinator over HTTPS with certificates made by src/crypto/tls.ts (system openssl), and the
 * client's trust decisions: configured CA, certificate pin, and the refusals in between.
 */

interface Server {
  app: FastifyInstance;
  url: string;
  /** HTTP requests that reached the app: proves a refused client sent nothing. */
  requests: number;
}

const silent = pino({ level: 'silent' });
let dir: string;
let ca: PemPair;
let otherCa: PemPair;
let selfSigned: PemPair;
const servers: Record<'honest' | 'expired' | 'selfSigned' | 'expiredSelfSigned' | 'wrongHost' | 'plain', Server> = {} as never;
let identity: Identity;

async function start(name: string, https?: PemPair): Promise<Server> {
  const built = await buildCoordinator({ dataDir: join(dir, name), logger: silent, https: https && { key: https.key, cert: https.cert } });
  const server: Server = { app: built.app, url: '', requests: 0 };
  built.app.addHook('onRequest', async () => {
    server.requests++;
  });
  server.url = await built.app.listen({ host: '127.0.0.1', port: 0 });
  return server;
}

/** The FedmarkError a request through `client` fails with (the test fails if it succeeds). */
async function refusal(client: CoordinatorClient): Promise<FedmarkError> {
  const err = await client.request('GET', '/v1/jobs/tls-probe', 'tls-probe', 0).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'the request should have been refused').toBeInstanceOf(FedmarkError);
  return err as FedmarkError;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedmark-tls-test-'));
  identity = generateIdentity('bank-a');
  [ca, otherCa] = await Promise.all([
    generateCertificateAuthority({ commonName: 'deployment CA' }),
    generateCertificateAuthority({ commonName: 'someone else CA' }),
  ]);
  const [honest, expired, wrongHost, ss, expiredSs] = await Promise.all([
    issueServerCertificate(ca, { hosts: ['127.0.0.1', 'localhost'], days: 2 }),
    issueServerCertificate(ca, { hosts: ['127.0.0.1'], notBefore: new Date('2024-01-01T00:00:00Z'), notAfter: new Date('2024-03-01T00:00:00Z') }),
    issueServerCertificate(ca, { hosts: ['coordinator.example.org', '10.1.2.3'], days: 2 }),
    generateSelfSignedCertificate({ hosts: ['127.0.0.1'], days: 2 }),
    generateSelfSignedCertificate({ hosts: ['127.0.0.1'], notBefore: new Date('2024-01-01T00:00:00Z'), notAfter: new Date('2024-03-01T00:00:00Z') }),
  ]);
  selfSigned = ss;
  servers.honest = await start('honest', honest);
  servers.expired = await start('expired', expired);
  servers.selfSigned = await start('self-signed', ss);
  servers.expiredSelfSigned = await start('expired-self-signed', expiredSs);
  servers.wrongHost = await start('wrong-host', wrongHost);
  servers.plain = await start('plain');
}, 30_000);

afterAll(async () => {
  clearTrustedCoordinators();
  await Promise.all(Object.values(servers).map((s) => s?.app.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('HTTPS between client nodes and the coordinator', () => {
  it('serves HTTPS, and an honest client trusting the deployment CA gets the coordinator answers', async () => {
    expect(servers.honest.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const partner = new CoordinatorClient(servers.honest.url, identity, { tls: { ca: ca.cert } });
    const res = await partner.request('GET', '/v1/jobs/no-such-job', 'no-such-job', 0);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ statusCode: 401, code: 'AUTH_REJECTED' });
    // A signed JSON body crosses intact: the coordinator parses it and names the bad field.
    await expect(partner.call(routes.createJob, {}, { body: { manifest: { jobId: 'tls-job' }, signature: 'x' }, jobId: 'tls-job' })).rejects.toThrow(
      /coordinator refused POST \/v1\/jobs \(400 INVALID_REQUEST\): body\.manifest/,
    );
    await expect(partner.call(routes.health, {})).resolves.toMatchObject({ ok: true });
  });

  it('runs a whole job (owner + 3 partners, CKKS) over HTTPS with the CA registered for the coordinator', async () => {
    const { schema, schemaHash, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 300 });
    const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b', 'retail-c']);
    const { signed } = makeJob({ jobId: 'tls-job', schema, owner, partners: ids, rounds: 1 });
    trustCoordinator(servers.honest.url, { ca: ca.cert });
    try {
      const before = servers.honest.requests;
      const result = await runFederation({
        url: servers.honest.url,
        owner,
        identities: ids,
        signed,
        parts,
        schemaHash,
        stateDir: join(dir, 'nodes'),
        timeoutMs: 40_000,
      });
      expect(result.owner.state).toBe('completed');
      for (const n of result.nodes) expect(n.modelHash).toBe(result.owner.modelHash);
      expect(servers.honest.requests - before).toBeGreaterThan(20);
    } finally {
      clearTrustedCoordinators();
    }
  }, 60_000);

  it('refuses a server certificate that the configured CA did not issue', async () => {
    const before = servers.honest.requests;
    const err = await refusal(new CoordinatorClient(servers.honest.url, identity, { tls: { ca: otherCa.cert } }));
    expect(err.code).toBe('TLS_UNTRUSTED_CERT');
    expect(err.message).toMatch(/TLS: the certificate of the coordinator at https:\/\/127\.0\.0\.1:\d+ is not issued by the configured CA/);
    expect(servers.honest.requests).toBe(before);
  });

  it('refuses an expired certificate, even one issued by the trusted CA', async () => {
    const err = await refusal(new CoordinatorClient(servers.expired.url, identity, { tls: { ca: ca.cert } }));
    expect(err.code).toBe('TLS_CERT_EXPIRED');
    expect(err.message).toMatch(/expired certificate/);
    expect(servers.expired.requests).toBe(0);
  });

  it('refuses a self-signed certificate that is not pinned (with a CA configured, or with the system store)', async () => {
    for (const tls of [{ ca: ca.cert }, undefined]) {
      const err = await refusal(new CoordinatorClient(servers.selfSigned.url, identity, { tls }));
      expect(err.code).toBe('TLS_UNTRUSTED_CERT');
      expect(err.message).toMatch(/self-signed certificate that is neither issued by the configured CA nor pinned/);
    }
    expect(servers.selfSigned.requests).toBe(0);
  });

  it('refuses a certificate for another host name', async () => {
    const err = await refusal(new CoordinatorClient(servers.wrongHost.url, identity, { tls: { ca: ca.cert } }));
    expect(err.code).toBe('TLS_HOSTNAME_MISMATCH');
    expect(err.message).toMatch(/does not name that host/);
    expect(servers.wrongHost.requests).toBe(0);
  });

  it('accepts a self-signed certificate with the correct SHA-256 pin, in either spelling', async () => {
    const pin = certificateSha256(selfSigned.cert);
    const colons = pin.toUpperCase().match(/../g)!.join(':');
    for (const pinSha256 of [pin, colons]) {
      const client = new CoordinatorClient(servers.selfSigned.url, identity, { tls: { pinSha256 } });
      const res = await client.request('GET', '/health', 'tls-probe', 0);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ ok: true });
    }
  });

  it('refuses a wrong pin after the handshake but before sending a single request byte', async () => {
    const before = servers.honest.requests;
    // A valid, CA-issued certificate is still refused when it is not the pinned one.
    const wrongPin = certificateSha256(selfSigned.cert);
    for (const tls of [{ pinSha256: wrongPin }, { ca: ca.cert, pinSha256: wrongPin }]) {
      const err = await refusal(new CoordinatorClient(servers.honest.url, identity, { tls }));
      expect(err.code).toBe('TLS_PIN_MISMATCH');
      expect(err.message).toContain(`not the pinned ${wrongPin}`);
    }
    expect(servers.honest.requests).toBe(before);
  });

  it('pins on top of the CA when both are given, and checks the dates of a pinned certificate', async () => {
    // CA + matching pin works.
    const honestPin = certificateSha256(await leafOf(servers.honest.url));
    const ok = new CoordinatorClient(servers.honest.url, identity, { tls: { ca: ca.cert, pinSha256: honestPin } });
    expect((await ok.request('GET', '/health', 'tls-probe', 0)).status).toBe(200);
    // A pinned certificate past its notAfter is refused although the pin matches.
    const expiredPin = certificateSha256(await leafOf(servers.expiredSelfSigned.url));
    const err = await refusal(new CoordinatorClient(servers.expiredSelfSigned.url, identity, { tls: { pinSha256: expiredPin } }));
    expect(err.code).toBe('TLS_CERT_EXPIRED');
    expect(err.message).toMatch(/pinned coordinator certificate expired on 2024-03-01/);
    expect(servers.expiredSelfSigned.requests).toBe(0);
  });

  it('names a plain-HTTP server behind an https:// URL as a failed handshake, not as an unreachable coordinator', async () => {
    const url = servers.plain.url.replace('http://', 'https://');
    const err = await refusal(new CoordinatorClient(url, identity, { tls: { ca: ca.cert } }));
    expect(err.code).toBe('TLS_HANDSHAKE_FAILED');
    expect(err.message).toMatch(/handshake with the coordinator at https:\/\/127\.0\.0\.1:\d+ failed/);
  });

  it('keeps connection failures retryable (COORDINATOR_UNREACHABLE), unlike TLS refusals', async () => {
    const closed = await start('closed');
    const url = closed.url.replace('http://', 'https://');
    await closed.app.close();
    const err = await refusal(new CoordinatorClient(url, identity, { tls: { ca: ca.cert } }));
    expect(err.code).toBe('COORDINATOR_UNREACHABLE');
  });
});

describe('plain HTTP only on loopback', () => {
  it('the client refuses http:// to a non-loopback coordinator, and TLS options on an http:// URL', () => {
    for (const url of ['http://10.0.0.5:8470', 'http://coordinator.example.org', 'http://0.0.0.0:8470', 'http://[2001:db8::1]:8470']) {
      expect(() => new CoordinatorClient(url, identity)).toThrow(
        expect.objectContaining({ code: 'INSECURE_TRANSPORT', message: expect.stringMatching(/plain HTTP is allowed on loopback only/) }),
      );
    }
    for (const url of ['http://127.0.0.1:8470', 'http://localhost:8470', 'http://[::1]:8470', 'https://coordinator.example.org', 'https://10.0.0.5:8470']) {
      expect(() => new CoordinatorClient(url, identity)).not.toThrow();
    }
    expect(() => assertCoordinatorUrl('http://127.0.0.1:8470', { ca: ca.cert })).toThrow(expect.objectContaining({ code: 'INSECURE_TRANSPORT' }));
    expect(() => new CoordinatorClient('ftp://127.0.0.1', identity)).toThrow(expect.objectContaining({ code: 'BAD_COORDINATOR_URL' }));
    expect(() => new CoordinatorClient('https://user:pw@127.0.0.1', identity)).toThrow(expect.objectContaining({ code: 'BAD_COORDINATOR_URL' }));
  });

  it('the coordinator refuses plain HTTP off loopback and accepts any address with a certificate', () => {
    expect(() => assertTransportAllowed('0.0.0.0', undefined)).toThrow(expect.objectContaining({ code: 'INSECURE_TRANSPORT' }));
    expect(() => assertTransportAllowed('10.1.2.3', undefined)).toThrow(/give --tls-cert and --tls-key/);
    expect(() => assertTransportAllowed('127.0.0.1', undefined)).not.toThrow();
    expect(() => assertTransportAllowed('0.0.0.0', { key: selfSigned.key, cert: selfSigned.cert })).not.toThrow();
  });
});

describe('certificates for a test deployment (fedmark keys cert)', () => {
  it('writes a CA and a server certificate (keys 0600) that the coordinator loads and a client trusts', async () => {
    const out = join(dir, 'deployment');
    const files = await writeTestDeployment(out, { hosts: ['127.0.0.1'], days: 3 });
    expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(files.caKeyFile).mode & 0o777).toBe(0o600);
    expect(files.notAfter.getTime() - Date.now()).toBeGreaterThan(2.9 * 86_400_000);
    expect(files.notAfter.getTime() - Date.now()).toBeLessThan(3.1 * 86_400_000);
    await expect(writeTestDeployment(out, { hosts: ['127.0.0.1'] })).rejects.toThrow(/already exists \(pass --force/);

    const loaded = loadCoordinatorTls({ certFile: files.certFile, keyFile: files.keyFile, host: '127.0.0.1' });
    expect(loaded.sha256).toBe(files.sha256);
    expect(loaded.names).toEqual(['127.0.0.1']);
    const server = await start('deployment', { key: loaded.key.toString(), cert: loaded.cert.toString() });
    try {
      // The CLI's path: trust registered per origin, picked up by clients built without TLS options.
      trustCoordinator(server.url, loadClientTls({ caFile: files.caCertFile }));
      expect((await new CoordinatorClient(server.url, identity).request('GET', '/health', 'tls-probe', 0)).status).toBe(200);
      trustCoordinator(server.url, loadClientTls({ pinSha256: files.sha256 }));
      expect((await new CoordinatorClient(server.url, identity).request('GET', '/health', 'tls-probe', 0)).status).toBe(200);
    } finally {
      clearTrustedCoordinators();
      await server.app.close();
    }
  });

  it('the coordinator refuses a mismatched key, an expired certificate, or one for another host at start-up', async () => {
    const out = join(dir, 'deployment');
    const other = join(dir, 'deployment-2');
    const second = await writeTestDeployment(other, { hosts: ['127.0.0.1'] });
    expect(() => loadCoordinatorTls({ certFile: join(out, 'server.pem'), keyFile: second.keyFile })).toThrow(
      expect.objectContaining({ code: 'TLS_KEY_MISMATCH' }),
    );
    expect(() =>
      loadCoordinatorTls({ certFile: join(out, 'server.pem'), keyFile: join(out, 'server.key'), now: new Date(Date.now() + 10 * 86_400_000) }),
    ).toThrow(expect.objectContaining({ code: 'TLS_CERT_EXPIRED' }));
    expect(() => loadCoordinatorTls({ certFile: join(out, 'server.pem'), keyFile: join(out, 'server.key'), host: '10.0.0.7' })).toThrow(
      expect.objectContaining({ code: 'TLS_CERT_HOST', message: expect.stringMatching(/does not cover 10\.0\.0\.7 \(it names 127\.0\.0\.1\)/) }),
    );
    expect(() => loadCoordinatorTls({ certFile: join(out, 'missing.pem'), keyFile: join(out, 'server.key') })).toThrow(
      expect.objectContaining({ code: 'TLS_FILE' }),
    );
  });

  it('checks pins and CA files up front', () => {
    expect(() => normalizeSha256Pin('abc')).toThrow(expect.objectContaining({ code: 'TLS_BAD_PIN' }));
    expect(normalizeSha256Pin(`sha256 Fingerprint=${'AB:'.repeat(31)}AB`)).toBe('ab'.repeat(32));
    expect(() => loadClientTls({ caFile: join(dir, 'deployment', 'server.key') })).toThrow(expect.objectContaining({ code: 'TLS_BAD_CERT' }));
    expect(() => loadClientTls({ caFile: join(dir, 'nope.pem') })).toThrow(expect.objectContaining({ code: 'TLS_FILE' }));
  });
});

/** The leaf certificate a server presents, fetched with a pin-everything probe (test helper only). */
async function leafOf(url: string): Promise<string> {
  const tls = await import('node:tls');
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const der = socket.getPeerCertificate().raw;
      socket.destroy();
      resolve(
        `-----BEGIN CERTIFICATE-----\n${der
          .toString('base64')
          .match(/.{1,64}/g)!
          .join('\n')}\n-----END CERTIFICATE-----\n`,
      );
    });
    socket.once('error', reject);
  });
}

// createTlsFetch is the transport under CoordinatorClient; keep its one direct use honest.
it('createTlsFetch speaks only https', async () => {
  const f = createTlsFetch({ ca: ca.cert });
  await expect(f('http://127.0.0.1:1/')).rejects.toThrow(/only speaks https/);
  f.close();
});
