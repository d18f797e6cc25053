/**
 * X.509 certificates for a test deployment of the coordinator: a private CA and a server
 * certificate it signs, or a lone self-signed certificate for pinning.
 *
 * node:crypto makes keys but cannot build certificates, and no X.509 package is a dependency, so the
 * certificates are made by the system `openssl` binary (OpenSSL ≥ 1.1.1; no network). Keys are
 * ECDSA P-256, signatures SHA-256. Production deployments should use certificates from their own PKI.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes, randomInt } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FedmarkError } from '../errors.ts';

export interface PemPair {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (PKCS#8, unencrypted): keep it 0600. */
  key: string;
}

/** Validity window. Defaults: from one minute ago (clock skew between machines) for `days` days. */
export interface Validity {
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
}

const DAY_MS = 86_400_000;
const SHA256_PIN_RE = /^(?:[0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$|^[0-9a-fA-F]{64}$/;

function window(v: Validity): { notBefore: Date; notAfter: Date } {
  const days = v.days ?? 30;
  if (!Number.isInteger(days) || days < 1 || days > 3650)
    throw new FedmarkError('TLS_BAD_VALIDITY', `certificate validity must be 1–3650 whole days, got ${days}`);
  const notBefore = v.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = v.notAfter ?? new Date(notBefore.getTime() + days * DAY_MS);
  if (!(notAfter.getTime() > notBefore.getTime())) throw new FedmarkError('TLS_BAD_VALIDITY', 'certificate notAfter must be later than notBefore');
  return { notBefore, notAfter };
}

/** openssl `ca` wants GeneralizedTime for dates outside 1950–2049 and accepts it everywhere. */
function generalizedTime(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

function subjectAltName(hosts: string[]): string {
  if (hosts.length === 0) throw new FedmarkError('TLS_NO_HOST', 'a server certificate needs at least one host name or IP address');
  return hosts
    .map((h) => {
      const bare = h.replace(/^\[(.*)\]$/, '$1');
      if (isIP(bare)) return `IP:${bare}`;
      if (!/^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(bare)) {
        throw new FedmarkError('TLS_BAD_HOST', `"${h}" is neither an IP address nor a DNS name`);
      }
      return `DNS:${bare}`;
    })
    .join(',');
}

function commonNameOf(s: string): string {
  // The subject is passed as one argv element; keep it to characters openssl's -subj parser takes literally.
  return s.replace(/[^A-Za-z0-9 .:_-]/g, '-').slice(0, 64) || 'fedmark';
}

function run(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000, env: { ...process.env, OPENSSL_CONF: join(cwd, 'empty.cnf') } }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(
          new FedmarkError(
            'OPENSSL_MISSING',
            'making certificates needs the `openssl` command on PATH (OpenSSL ≥ 1.1.1); install it or bring certificates from your own PKI',
          ),
        );
      }
      reject(new FedmarkError('OPENSSL_FAILED', `openssl ${args[0]} failed: ${String(stderr).trim().split('\n').slice(-3).join(' ') || err.message}`));
    });
  });
}

async function inScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'fedmark-tls-'));
  try {
    // An empty config keeps the host's openssl.cnf (which may add extensions or demand files) out of it.
    writeFileSync(join(dir, 'empty.cnf'), '');
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Signs `csr` with `issuer` (or self-signs with `selfKey`) using `openssl ca`, which, unlike `x509 -req`, takes explicit start and end dates. */
async function sign(
  dir: string,
  o: { csr: string; issuer?: PemPair; selfKey?: string; extensions: string[]; validity: { notBefore: Date; notAfter: Date } },
): Promise<string> {
  writeFileSync(join(dir, 'index.txt'), '');
  // Random positive serials: a client must never see two certificates with the same issuer and serial.
  writeFileSync(join(dir, 'serial'), `${(0x10 + randomInt(0x70)).toString(16)}${randomBytes(15).toString('hex')}\n`);
  writeFileSync(join(dir, 'ext.cnf'), `[ext]\n${o.extensions.join('\n')}\n`);
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ca]',
      'default_ca = fedmark',
      '[fedmark]',
      `database = ${join(dir, 'index.txt')}`,
      `new_certs_dir = ${dir}`,
      `serial = ${join(dir, 'serial')}`,
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      'email_in_dn = no',
      'copy_extensions = none',
      '[any]',
      'commonName = supplied',
      '',
    ].join('\n'),
  );
  const args = ['ca', '-batch', '-config', join(dir, 'ca.cnf'), '-in', o.csr, '-out', join(dir, 'out.pem'), '-notext'];
  args.push('-startdate', generalizedTime(o.validity.notBefore), '-enddate', generalizedTime(o.validity.notAfter));
  args.push('-extfile', join(dir, 'ext.cnf'), '-extensions', 'ext');
  if (o.issuer) {
    writeFileSync(join(dir, 'issuer.pem'), o.issuer.cert);
    writeFileSync(join(dir, 'issuer.key'), o.issuer.key, { mode: 0o600 });
    args.push('-cert', join(dir, 'issuer.pem'), '-keyfile', join(dir, 'issuer.key'));
  } else {
    args.push('-selfsign', '-keyfile', o.selfKey!);
  }
  await run(args, dir);
  const pem = readFileSync(join(dir, 'out.pem'), 'utf8');
  return pem.slice(pem.indexOf('-----BEGIN CERTIFICATE-----'));
}

async function keyAndCsr(dir: string, commonName: string): Promise<{ key: string; csr: string; keyFile: string }> {
  const keyFile = join(dir, 'key.pem');
  const csr = join(dir, 'req.csr');
  await run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], dir);
  await run(['req', '-new', '-config', join(dir, 'empty.cnf'), '-key', keyFile, '-subj', `/CN=${commonNameOf(commonName)}`, '-out', csr], dir);
  return { key: readFileSync(keyFile, 'utf8'), csr, keyFile };
}

/** A private certificate authority for one deployment. */
export async function generateCertificateAuthority(o: { commonName?: string } & Validity = {}): Promise<PemPair> {
  const validity = window({ days: 365, ...o });
  return inScratch(async (dir) => {
    const { key, csr, keyFile } = await keyAndCsr(dir, o.commonName ?? 'fedmark test CA');
    const cert = await sign(dir, {
      csr,
      selfKey: keyFile,
      validity,
      extensions: ['basicConstraints = critical, CA:TRUE, pathlen:0', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash'],
    });
    return { cert, key };
  });
}

const SERVER_EXTENSIONS = ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth'];

/** A server certificate for `hosts` (IP addresses or DNS names), signed by `ca`. */
export async function issueServerCertificate(ca: PemPair, o: { hosts: string[] } & Validity): Promise<PemPair> {
  const validity = window(o);
  const san = subjectAltName(o.hosts);
  return inScratch(async (dir) => {
    const { key, csr } = await keyAndCsr(dir, o.hosts[0]);
    const cert = await sign(dir, {
      csr,
      issuer: ca,
      validity,
      extensions: [...SERVER_EXTENSIONS, `subjectAltName = ${san}`, 'authorityKeyIdentifier = keyid'],
    });
    return { cert, key };
  });
}

/** A self-signed server certificate: trusted only by clients that pin its SHA-256 fingerprint. */
export async function generateSelfSignedCertificate(o: { hosts: string[] } & Validity): Promise<PemPair> {
  const validity = window(o);
  const san = subjectAltName(o.hosts);
  return inScratch(async (dir) => {
    const { key, csr, keyFile } = await keyAndCsr(dir, o.hosts[0]);
    const cert = await sign(dir, { csr, selfKey: keyFile, validity, extensions: [...SERVER_EXTENSIONS, `subjectAltName = ${san}`] });
    return { cert, key };
  });
}

/** SHA-256 fingerprint of a certificate's DER bytes, lowercase hex without separators (the `--pin-sha256` format). */
export function certificateSha256(certPem: string | Buffer): string {
  return new X509Certificate(certPem).fingerprint256.replace(/:/g, '').toLowerCase();
}

/** Accepts `ab12…` (64 hex) or `AB:12:…` (openssl's -fingerprint form); returns lowercase hex. */
export function normalizeSha256Pin(pin: string): string {
  const trimmed = pin.trim().replace(/^sha256( Fingerprint)?[=:]/i, '');
  if (!SHA256_PIN_RE.test(trimmed)) {
    throw new FedmarkError('TLS_BAD_PIN', `certificate pin must be a SHA-256 fingerprint (64 hex digits, colons allowed), got "${pin.slice(0, 100)}"`);
  }
  return trimmed.replace(/:/g, '').toLowerCase();
}

/** Checks that `key` is the private key of `cert` (both PEM); throws FedmarkError naming the mismatch. */
export function assertKeyMatchesCertificate(certPem: string | Buffer, keyPem: string | Buffer): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new FedmarkError('TLS_BAD_CERT', `not a PEM X.509 certificate: ${(err as Error).message}`);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new FedmarkError('TLS_BAD_KEY', `not a readable unencrypted PEM private key: ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(key)) throw new FedmarkError('TLS_KEY_MISMATCH', 'the TLS private key does not belong to the certificate');
}

export interface TestDeploymentFiles {
  caCertFile: string;
  caKeyFile: string;
  certFile: string;
  keyFile: string;
  /** Pin of the server certificate, for clients that pin instead of trusting the CA. */
  sha256: string;
  notAfter: Date;
}

/**
 * Writes ca.pem, ca.key, server.pem and server.key into `outDir` (keys mode 0600). The CA key is
 * only needed to issue more server certificates; it never goes to the coordinator or the clients.
 */
export async function writeTestDeployment(outDir: string, o: { hosts: string[]; days?: number; force?: boolean }): Promise<TestDeploymentFiles> {
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const files = {
    caCertFile: join(outDir, 'ca.pem'),
    caKeyFile: join(outDir, 'ca.key'),
    certFile: join(outDir, 'server.pem'),
    keyFile: join(outDir, 'server.key'),
  };
  const ca = await generateCertificateAuthority({ days: Math.max(o.days ?? 30, 1), commonName: `fedmark test CA ${o.hosts[0] ?? ''}`.trim() });
  const server = await issueServerCertificate(ca, { hosts: o.hosts, days: o.days ?? 30 });
  const flag = o.force ? 'w' : 'wx';
  try {
    writeFileSync(files.caCertFile, ca.cert, { flag, mode: 0o644 });
    writeFileSync(files.caKeyFile, ca.key, { flag, mode: 0o600 });
    writeFileSync(files.certFile, server.cert, { flag, mode: 0o644 });
    writeFileSync(files.keyFile, server.key, { flag, mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FedmarkError('FILE_EXISTS', `${(err as NodeJS.ErrnoException).path} already exists (pass --force to overwrite)`);
    }
    throw err;
  }
  // writeFileSync's mode only applies to new files: tighten keys that were overwritten.
  chmodSync(files.caKeyFile, 0o600);
  chmodSync(files.keyFile, 0o600);
  return { ...files, sha256: certificateSha256(server.cert), notAfter: new Date(new X509Certificate(server.cert).validTo) };
}
