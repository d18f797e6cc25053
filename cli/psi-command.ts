import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { generateIdentity, parsePublicIdentity, publicIdentity, readIdentityFile } from '../src/crypto/identity.ts';
import { FedmarkError } from '../src/errors.ts';
import { signManifest } from '../src/federation/manifest.ts';
import { CoordinatorClient } from '../src/federation/protocol/client.ts';
import { psiManifest } from '../src/vertical/jobs/manifest.ts';
import { psiSpecOf } from '../src/vertical/jobs/psi-workload.ts';
import { SUITES, type Suite } from '../src/vertical/psi/group.ts';
import { idRulesSchema } from '../src/vertical/psi/normalise.ts';
import { readPsiIds } from '../src/vertical/psi/read-ids.ts';
import { runRelayJobOwner } from '../owner/relay-job.ts';
import { runPsiNode } from '../partner/vertical/psi-node.ts';
import { ownerCoordinatorPin, partyTrust, partyTrustOptions } from './vertical-pins.ts';

function parseJsonOption<T>(flag: string, text: string, parse: (v: unknown) => T): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new FedmarkError('PSI_OPTION', `${flag}: not JSON (${(err as Error).message})`);
  }
  return parse(raw);
}

const positive = (flag: string, v: string) => {
  const n = Number(v);
  if (!(Number.isInteger(n) && n >= 1)) throw new FedmarkError('PSI_OPTION', `${flag} must be a positive integer, got "${v}"`);
  return n;
};

function suiteOf(v: string): Suite {
  if (!(SUITES as readonly string[]).includes(v)) throw new FedmarkError('PSI_OPTION', `--suite must be one of ${SUITES.join(', ')}, got "${v}"`);
  return v as Suite;
}

/**
 * `fedmark psi run` (the owner registers a PSI job and follows it) and `fedmark psi party` (a party's
 * node: its id column in, its aligned rows out). The result stays with the parties; the owner learns
 * only the job's state.
 */
export function registerPsiCommand(program: Command): void {
  const psi = program.command('psi').description('private set intersection: align the customer lists of 2–8 parties for a later joint job');
  psi
    .command('run')
    .description('define a PSI job (ring ECDH-PSI, relayed by the coordinator), register it and follow it to its end')
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--identity <file>', "the job owner's identity")
    .requiredOption('--job <id>', 'job id (also the hash domain: ids hash differently in every job)')
    .requiredOption('--party <file...>', "the parties' public identities (`fedmark keys init` output), in ring order")
    .requiredOption('--id-column <name>', 'the column holding the customer id at every party')
    .option('--id-rules <json>', 'normalisation rules, e.g. {"kind":"phone","defaultCountryCode":"49"} (docs/VERTICAL.md)', '{"kind":"email"}')
    .option('--max-set-size <n>', "cap on each party's list (guards against probing)", '1000000')
    .option('--no-pad', "do not pad lists to the cap (then each party's set size is released)")
    .option('--suite <suite>', 'hash-to-curve suite: p256-ti-sha256 or p256-rfc9380-sswu', 'p256-ti-sha256')
    .option('--poll-ms <ms>', 'how often to poll the coordinator', '200')
    .option('--coordinator-key-id <keyid>', 'name this coordinator in the job ledger only if it proves it holds this key')
    .action(
      async (o: {
        coordinator: string;
        identity: string;
        job: string;
        party: string[];
        idColumn: string;
        idRules: string;
        maxSetSize: string;
        pad: boolean;
        suite: string;
        pollMs: string;
        coordinatorKeyId?: string;
      }) => {
        const url = o.coordinator.replace(/\/$/, '');
        const coordinatorKeyId = ownerCoordinatorPin(o.coordinatorKeyId);
        const owner = await readIdentityFile(o.identity);
        const parties = o.party.map((f) => {
          try {
            return parsePublicIdentity(JSON.parse(readFileSync(f, 'utf8')));
          } catch (err) {
            throw new FedmarkError('PSI_OPTION', `party file ${f}: ${(err as Error).message}`);
          }
        });
        const rules = parseJsonOption('--id-rules', o.idRules, (v) => {
          const r = idRulesSchema.safeParse(v);
          if (!r.success) throw new FedmarkError('PSI_OPTION', `--id-rules: ${r.error.issues[0].path.join('.') || 'kind'}: ${r.error.issues[0].message}`);
          return r.data;
        });
        const coordinator = await new CoordinatorClient(url, generateIdentity('probe')).coordinatorIdentity({ pinnedKeyId: coordinatorKeyId });
        const manifest = psiManifest({
          jobId: o.job,
          owner: publicIdentity(owner),
          coordinator,
          parties,
          id: { column: o.idColumn, rules },
          maxSetSize: positive('--max-set-size', o.maxSetSize),
          padToMax: o.pad,
          suite: suiteOf(o.suite),
        });
        const result = await runRelayJobOwner({
          coordinatorUrl: url,
          identity: owner,
          signed: signManifest(manifest, owner),
          log: pino({ level: 'warn' }, pino.destination(2)),
          pollMs: positive('--poll-ms', o.pollMs),
          coordinatorKeyId,
          onStatus: (s) => process.stderr.write(`[fedmark] psi ${o.job}: ${s.state}, round ${s.round}/${manifest.rounds}\n`),
        });
        process.stdout.write(`${JSON.stringify({ jobId: o.job, ...result })}\n`);
        if (result.state !== 'completed') throw new FedmarkError('JOB_ENDED', `PSI job ${o.job} ended ${result.state}: ${result.reason ?? ''}`);
      },
    );

  partyTrustOptions(psi.command('party'))
    .description("a party's PSI node: reads its id column, takes part in the job, writes which of its rows are in the intersection, in the common order")
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--identity <file>', "this party's identity (mode 0600)")
    .requiredOption('--ids <csv>', 'CSV with a header; the id column is the one the job names')
    .requiredOption('--id-column <name>', 'the id column this party expects the job to name (it refuses a job naming another)')
    .requiredOption('--state-dir <dir>', "the node's state (its ledger)")
    .option('--out <csv>', 'where the alignment goes (default <state-dir>/<job>.alignment.csv): position,row,id')
    .option('--poll-ms <ms>', 'how often to poll the coordinator', '200')
    .option('--log-level <level>', 'pino log level', 'warn')
    .action(
      async (o: {
        coordinator: string;
        job: string;
        identity: string;
        ids: string;
        idColumn: string;
        stateDir: string;
        out?: string;
        pollMs: string;
        logLevel: string;
        ownerKeyId?: string;
        coordinatorKeyId?: string;
        ca?: string;
        pinSha256?: string;
      }) => {
        const trust = partyTrust(o);
        const identity = await readIdentityFile(o.identity);
        const { ids } = await readPsiIds(o.ids, { jobId: o.job, id: { column: o.idColumn } });
        const result = await runPsiNode({
          coordinatorUrl: trust.coordinatorUrl,
          ownerKeyId: trust.ownerKeyId,
          coordinatorKeyId: trust.coordinatorKeyId,
          onWaiting: (m) => process.stderr.write(`fedmark psi party: ${m}\n`),
          identity,
          jobId: o.job,
          ids,
          stateDir: o.stateDir,
          outPath: o.out,
          log: pino({ level: o.logLevel }, pino.destination(2)),
          pollMs: positive('--poll-ms', o.pollMs),
          reviewJob: (m) =>
            psiSpecOf(m).id.column === o.idColumn ? [] : [`the job aligns on column "${psiSpecOf(m).id.column}", this party was started for "${o.idColumn}"`],
        });
        process.stdout.write(
          `${JSON.stringify({ jobId: o.job, state: result.state, reason: result.reason, intersection: result.outcome?.intersectionSize ?? null, orderDigest: result.outcome?.orderDigest ?? null, out: result.outPath })}\n`,
        );
        if (result.state !== 'completed') throw new FedmarkError('JOB_ENDED', `PSI job ${o.job} ended ${result.state}: ${result.reason ?? ''}`);
      },
    );
}
