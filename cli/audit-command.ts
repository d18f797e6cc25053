import type { Command } from 'commander';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { FedmarkError } from '../src/errors.ts';
import { auditLedgers, formatAuditSummary } from '../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../src/privacy/accountant.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { checkSecaggLedger } from '../src/federation/secagg/ledger-record.ts';
import { keyIdOption } from './node-commands.ts';

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description("verify a job ledger (hash chain, signatures, ε recomputed, policy limits) and cross-check partners' own ledgers")
    .argument('<ledger>', "the coordinator's job ledger (*.ledger.jsonl)")
    .option('--partner <ledger...>', "partners' local ledgers to cross-check", [])
    .option(
      '--sidecars <dir...>',
      "each --partner ledger's id-sidecar directory (<state-dir>/subject-ids), in the same order: also checks that no scoring run scored a customer after their consent withdrawal took effect",
      [],
    )
    .option('--allow-running', 'the job may still be running (a missing final entry is a warning)', false)
    .option('--trusted-owner <keyid...>', 'the job owner key ids to trust: a ledger whose manifest is signed by any other key fails')
    .option('--trusted-coordinator <keyid...>', 'the coordinator key ids to trust: a ledger naming (and written by) any other coordinator fails')
    .option('--json', 'print the full audit result as JSON', false)
    .option('--out <file>', 'also write the JSON result to a file')
    .action(
      async (
        ledger: string,
        o: {
          partner: string[];
          sidecars: string[];
          allowRunning: boolean;
          json: boolean;
          out?: string;
          trustedOwner?: string[];
          trustedCoordinator?: string[];
        },
      ) => {
        if (o.sidecars.length > o.partner.length) {
          throw new FedmarkError(
            'CLI_OPTION',
            `--sidecars names ${o.sidecars.length} directories for ${o.partner.length} --partner ledger(s): give one per partner ledger, in the same order`,
          );
        }
        for (const dir of o.sidecars) {
          if (!existsSync(dir) || !statSync(dir).isDirectory())
            throw new FedmarkError('CLI_OPTION', `--sidecars ${dir}: not a directory (a partner's sidecars are in <state-dir>/subject-ids)`);
        }
        const keys = (flag: string, ids: string[] | undefined) => ids?.map((k) => keyIdOption(flag, k));
        const result = auditLedgers({
          coordinator: ledger,
          partners: o.partner,
          sidecarDirs: o.sidecars,
          epsilonOf: composedEpsilon,
          allowRunning: o.allowRunning,
          trustedOwnerKeys: keys('--trusted-owner', o.trustedOwner),
          trustedCoordinatorKeys: keys('--trusted-coordinator', o.trustedCoordinator),
        });
        // A masked job's attempts: the recorded secure-aggregation configs against the signed manifest (async: SEAL).
        const secagg = await checkSecaggLedger(result.ledgers[0]?.name ?? ledger, readLedger(ledger).entries);
        if (secagg.length) {
          result.findings.push(...secagg);
          result.ok = result.ok && !secagg.some((f) => f.severity === 'error');
        }
        if (o.out) writeFileSync(o.out, JSON.stringify(result, null, 2));
        if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else process.stdout.write(`${formatAuditSummary(result)}\n`);
        process.exitCode = result.ok ? 0 : 1;
      },
    );
}
