import type { Command } from 'commander';
import { dirname } from 'node:path';
import { readIdentityFile } from '../src/crypto/identity.ts';
import { diagnoseLedger, repairTornTail, type LedgerDiagnosis } from '../src/privacy/ledger/doctor.ts';
import { signerFromSecretKey } from '../src/privacy/ledger/signing.ts';
import { FedmarkError } from '../src/errors.ts';
import { assertNotLocked } from '../src/util/dir-lock.ts';

export function registerLedgerCommands(program: Command): void {
  const ledger = program.command('ledger').description('inspect and repair ledger files');
  ledger
    .command('doctor')
    .description(
      'check a ledger file (lines, hash chain, signatures, head pointer); with --repair, fix a torn final line — the only repair made without a human',
    )
    .argument('<ledger>', "a *.ledger.jsonl file (a job ledger in <data-dir>/ledgers, or a node's own ledger in its state dir)")
    .option('--repair', 'move a torn final line aside (<ledger>.torn) and record the repair in the ledger', false)
    .option('--identity <file>', "with --repair: the ledger's writer identity (the coordinator's <data-dir>/coordinator.key.json, or the partner's identity)")
    .option('--json', 'print the diagnosis (and repair) as JSON', false)
    .action(async (file: string, o: { repair: boolean; identity?: string; json: boolean }) => {
      const before = diagnoseLedger(file);
      if (!o.repair || before.ok) {
        print(
          o.json,
          { diagnosis: before },
          describe(before) +
            (before.repairable ? `\nrepairable: run again with --repair --identity <writer identity> to move the torn line aside and record it` : ''),
        );
        process.exitCode = before.ok ? 0 : 1;
        return;
      }
      if (!o.identity) throw new FedmarkError('CLI_MISSING_OPTION', '--repair needs --identity: the repair is recorded in the ledger, signed by its writer');
      // Never under a running node: it holds the file open and would append after our cut.
      for (const dir of [dirname(file), dirname(dirname(file))]) assertNotLocked(dir, 'fedmark ledger doctor --repair');
      const identity = await readIdentityFile(o.identity);
      const repair = repairTornTail(file, signerFromSecretKey(identity.signSecretKey));
      print(
        o.json,
        { diagnosis: before, repair },
        `${describe(before)}\nrepaired: moved the torn final line (${repair.tornBytes} bytes, sha256 ${repair.tornSha256}) to ${repair.tornFile} and recorded ledger.truncation-repaired at seq ${repair.repairSeq}\n${describe(repair.after)}`,
      );
      process.exitCode = repair.after.ok ? 0 : 1;
    });
}

function describe(d: LedgerDiagnosis): string {
  const head = `${d.path}: ${d.entries} entries${d.lastSeq === null ? '' : ` (last seq ${d.lastSeq})`}, ${d.kind} ledger`;
  if (d.ok)
    return `${head} — lines, chain and signatures OK${d.warnings.length ? `; ${d.warnings.length} warning(s):\n${d.warnings.map((f) => `  warning ${f.code}: ${f.message}`).join('\n')}` : ''}`;
  return `${head} — DAMAGED:\n${d.errors.map((f) => `  ${f.code}${f.seq === undefined ? '' : ` (seq ${f.seq})`}: ${f.message}`).join('\n')}`;
}

function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${text}\n`);
}
