import type { Command } from 'commander';
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
      await writeIdentityFile(o.out, id, { force: o.force });
      process.stdout.write(`${JSON.stringify(publicIdentity(id), null, 2)}\n`);
      process.stderr.write(`wrote ${o.out} (key id ${keyId(id.signPublicKey)}); keep it private\n`);
    });
}
