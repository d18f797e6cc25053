import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyId, readIdentityFile, signBytes } from '../src/crypto/identity.ts';
import { attestPayload, signerFromSecretKey } from '../src/privacy/ledger/signing.ts';
import { approvalPayload, parseManifest } from '../src/federation/manifest.ts';
import { subjectStatement } from '../src/privacy/ledger/subject-rights.ts';
import { ceilTo, NOT_DP } from '../src/privacy/ledger/audit.ts';
import { composedEpsilon } from '../src/privacy/accountant.ts';
import { FedmarkError } from '../src/errors.ts';
import { CoordinatorClient } from '../src/federation/protocol/client.ts';
import { PartnerLedger } from '../partner/ledger.ts';
import { pendingScorings as pendingScoringsOf } from '../src/scoring/serve/spool.ts';
import { spoolDir } from './serve-command.ts';

/** Data-governance commands: two-person approval, data-subject requests, withdrawal, emergency brake. */
export function registerGovernanceCommands(program: Command): void {
  program
    .command('approve')
    .description("an officer's signature approving a job (two-person rule); give two of them to the partner node with --approvals")
    .requiredOption('--identity <file>', "the officer's identity file")
    .requiredOption('--manifest <file>', 'the job manifest (JSON) being approved')
    .action((o: { identity: string; manifest: string }) => {
      const officer = readIdentityFile(o.identity);
      const manifest = parseManifest(JSON.parse(readFileSync(o.manifest, 'utf8')));
      process.stdout.write(`${JSON.stringify({ officer: officer.name, jobId: manifest.jobId, signature: signBytes(approvalPayload(manifest), officer) })}\n`);
    });

  program
    .command('subject')
    .description("answer a data-subject request from a partner's own ledger: which jobs and models used this customer's record, with what ε")
    .requiredOption('--ledger <file>', "the partner's ledger")
    .requiredOption('--state-dir <dir>', "the partner node's state directory (holds the id salt and id sidecars)")
    .requiredOption('--customer-id <id>', 'the customer id (never leaves this machine)')
    .option('--json', 'print JSON', false)
    .action(async (o: { ledger: string; stateDir: string; customerId: string; json: boolean }) => {
      const salt = readFileSync(join(o.stateDir, 'subject-salt'));
      const st = subjectStatement(o.ledger, join(o.stateDir, 'subject-ids'), o.customerId, salt, { epsilonOf: composedEpsilon });
      // Scoring-service requests not yet sealed into the ledger (docs/SCORING.md).
      const pendingScorings = await pendingScoringsOf(spoolDir(o.stateDir), st.customerIdHash);
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ ...st, pendingScorings })}\n`);
        return;
      }
      process.stdout.write(`Statement for customer (salted hash ${st.customerIdHash}) from partner ${st.partner ?? 'unknown'}\n`);
      if (st.consentWithdrawn) process.stdout.write('Consent withdrawn: the record is excluded from every later round.\n');
      if (!st.uses.length) process.stdout.write('No job used this record.\n');
      for (const u of st.uses) {
        const privacy = u.private
          ? `ε ≤ ${ceilTo(u.epsilon, 3)} at δ = ${u.delta ?? 'n/a'}`
          : `${NOT_DP}: nothing bounds what the model reveals about this record`;
        process.stdout.write(`- job ${u.jobId}: model ${u.modelHash ?? '(not finished)'}, ${u.rounds} round(s), ${privacy}\n`);
      }
      for (const sc of st.scorings) {
        process.stdout.write(
          `- scored by model ${sc.modelHash}${sc.modelJobId ? ` (job ${sc.modelJobId})` : ''} for "${sc.purpose}" (${sc.mode === 'serve' ? 'scoring service' : 'batch run'} ${sc.runId}, ${sc.startedAt} – ${sc.finishedAt})${sc.sidecarVerified ? '' : ' [sidecar altered]'}\n`,
        );
      }
      for (const p of pendingScorings)
        process.stdout.write(
          `- scored by model ${p.modelHash} for "${p.purpose}" (scoring service ${p.windowId}, ${p.firstAt} – ${p.lastAt}; not yet sealed into the ledger)\n`,
        );
      for (const p of st.problems) process.stdout.write(`! ${p.code}${p.seq === undefined ? '' : ` (seq ${p.seq})`}: ${p.message}\n`);
    });

  program
    .command('withdraw')
    .description('leave a running job at once (recorded in both ledgers); the coordinator stops sending this node work')
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--identity <file>', "the partner node's identity")
    .requiredOption('--state-dir <dir>', "the partner node's state directory")
    .requiredOption('--reason <text>', 'why')
    .action(async (o: { coordinator: string; job: string; identity: string; stateDir: string; reason: string }) => {
      const identity = readIdentityFile(o.identity);
      const client = new CoordinatorClient(o.coordinator.replace(/\/$/, ''), identity);
      const status = await client.status(o.job);
      const afterRound = Math.max(0, ...status.closedRounds);
      const ledgerPath = join(o.stateDir, `${identity.name}.ledger.jsonl`);
      let ledger: PartnerLedger | null = null;
      let damage: string | null = null;
      try {
        ledger = PartnerLedger.open(ledgerPath, identity, o.stateDir);
      } catch (err) {
        // Leaving a job must not depend on the local file being intact: the signed statement goes out
        // anyway (the job ledger records it), and the damage is reported with a non-zero exit.
        if (!(err instanceof FedmarkError)) throw err;
        damage = err.message;
      }
      try {
        const statement = ledger
          ? ledger.withdrawal(o.job, o.reason, afterRound)
          : attestPayload({ jobId: o.job, partner: keyId(identity.signPublicKey), reason: o.reason, afterRound }, signerFromSecretKey(identity.signSecretKey));
        await client.withdraw(o.job, o.reason, statement);
      } finally {
        ledger?.close();
      }
      process.stdout.write(`withdrew from job ${o.job} after round ${afterRound}\n`);
      if (damage) {
        process.stderr.write(
          `fedmark: the withdrawal is recorded in the job ledger only — this node's own ledger could not be opened (${damage}); check it with \`fedmark ledger doctor ${ledgerPath}\`\n`,
        );
        process.exitCode = 1;
      }
    });

  program
    .command('halt')
    .description("the job owner's emergency brake: stops the job for every party; recorded in the ledger")
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--identity <file>', "the job owner's identity")
    .requiredOption('--reason <text>', 'why')
    .action(async (o: { coordinator: string; job: string; identity: string; reason: string }) => {
      if (!o.reason.trim()) throw new FedmarkError('CLI_REASON', '--reason must not be empty');
      const client = new CoordinatorClient(o.coordinator.replace(/\/$/, ''), readIdentityFile(o.identity));
      await client.halt(o.job, o.reason);
      process.stdout.write(`job ${o.job} halted\n`);
    });
}
