import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { FedmarkError } from '../src/errors.ts';
import { writeTestDeployment } from '../src/crypto/tls.ts';
import { generateIdentity, keyId, publicIdentity, writeIdentityFile } from '../src/crypto/identity.ts';

export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('node identities (Ed25519 signing + X25519 box keys)');
  keys
    .command('init')
    .description('create an identity file (mode 0600) and print its public part')
    .requiredOption('--out <file>', 'where to write the identity')
    .requiredOption('--name <name>', 'the node name shown to other parties (e.g. "bank-a")')
    .option('--force', 'overwrite an existing file', false)
    .action(async (o: { out: string; name: string; force: boolean }) => {
      const id = generateIdentity(o.name);
      // A missing directory is made (private to the user): the identity holds secret keys.
      mkdirSync(dirname(resolve(o.out)), { recursive: true, mode: 0o700 });
      await writeIdentityFile(o.out, id, { force: o.force });
      process.stdout.write(`${JSON.stringify(publicIdentity(id), null, 2)}\n`);
      process.stderr.write(`wrote ${o.out} (key id ${keyId(id.signPublicKey)}); keep it private\n`);
    });
  keys
    .command('cert')
    .description('make a private CA and a coordinator TLS certificate for a test deployment (uses the system openssl)')
    .requiredOption('--out-dir <dir>', 'where to write ca.pem, ca.key, server.pem, server.key')
    .requiredOption('--host <hosts>', 'IP address(es) or DNS name(s) clients use to reach the coordinator, comma-separated')
    .option('--days <n>', 'validity of the certificates in days', '30')
    .option('--force', 'overwrite existing files', false)
    .action(async (o: { outDir: string; host: string; days: string; force: boolean }) => {
      const days = Number(o.days);
      if (!Number.isInteger(days) || days < 1 || days > 3650)
        throw new FedmarkError('BAD_OPTION', `--days must be a whole number of days from 1 to 3650, got "${o.days}"`);
      const hosts = o.host
        .split(',')
        .map((h) => h.trim())
        .filter(Boolean);
      const files = await writeTestDeployment(o.outDir, { hosts, days, force: o.force });
      process.stdout.write(
        `${JSON.stringify({ ca: files.caCertFile, cert: files.certFile, key: files.keyFile, sha256: files.sha256, notAfter: files.notAfter.toISOString(), hosts }, null, 2)}\n`,
      );
      process.stderr.write(
        `coordinator: --tls-cert ${files.certFile} --tls-key ${files.keyFile}\n` +
          `clients:     --ca ${files.caCertFile}   (or --pin-sha256 ${files.sha256})\n` +
          `keep ${files.caKeyFile} offline: it can issue certificates every client trusts\n`,
      );
    });
}
