import { Command } from 'commander';
import { FedmarkError } from '../src/errors.ts';
import { registerKeyCommands } from './keys-command.ts';
import { registerNodeCommands } from './node-commands.ts';
import { registerPrivacyCommands } from './privacy-command.ts';
import { registerDemoCommand } from './demo.ts';
import { registerAuditCommand } from './audit-command.ts';
import { registerReportCommand } from './report-command.ts';
import { registerSimulateCommand } from './simulate-command.ts';
import { registerGovernanceCommands } from './governance-commands.ts';
import { registerJobCommand } from './job-command.ts';
import { registerScoreCommand } from './score-command.ts';
import { registerServeCommand } from './serve-command.ts';
import { registerUpliftCommand } from './uplift-command.ts';
import { registerLedgerCommands } from './ledger-command.ts';
import { registerPsiCommand } from './psi-command.ts';
import { registerVerticalCommand } from './vertical-command.ts';

const program = new Command();
program
  .name('fedmark')
  .description('Privacy-preserving federated learning of marketing models: CKKS-encrypted, differentially private, audited.')
  .showHelpAfterError();

registerKeyCommands(program);
registerNodeCommands(program);
registerPrivacyCommands(program);
registerAuditCommand(program);
registerReportCommand(program);
registerSimulateCommand(program);
registerGovernanceCommands(program);
registerJobCommand(program);
registerScoreCommand(program);
registerServeCommand(program);
registerUpliftCommand(program);
registerLedgerCommands(program);
registerPsiCommand(program);
registerVerticalCommand(program);
registerDemoCommand(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof FedmarkError) {
    process.stderr.write(`fedmark: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`fedmark: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
