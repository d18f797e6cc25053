import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { parsePublicIdentity, publicIdentity, readIdentityFile } from '../src/crypto/identity.ts';
import { FedmarkError } from '../src/errors.ts';
import { schemaHash } from '../src/federation/job-presets.ts';
import { signManifest } from '../src/federation/manifest.ts';
import { auc } from '../src/metrics/classification.ts';
import { PolicyBudgetGuard } from '../src/privacy/budget/policy-guard.ts';
import { BudgetStore } from '../src/privacy/budget/store.ts';
import { loadPolicy } from '../src/privacy/policy.ts';
import { sha256Canonical } from '../src/privacy/ledger/canonical.ts';
import { featureLayout } from '../src/trees/layout.ts';
import { secureBoostManifest, verticalScoreManifest } from '../src/vertical/jobs/manifest.ts';
import { loadAlignedRows, loadVerticalPartySchema, readAlignment } from '../src/vertical/party-data.ts';
import { columnShapes } from '../src/vertical/secureboost/layout.ts';
import { sigmoid } from '../src/vertical/secureboost/model.ts';
import { runRelayJobOwner } from '../owner/relay-job.ts';
import { runSecureBoostNode } from '../partner/vertical/secureboost-node.ts';
import { runScoreNode } from '../partner/vertical/score-node.ts';
import { ownerCoordinatorPin, partyTrust, partyTrustOptions } from './vertical-pins.ts';

const num = (flag: string, v: string, ok: (n: number) => boolean = (n) => Number.isFinite(n)) => {
  const n = Number(v);
  if (!ok(n)) throw new FedmarkError('VERTICAL_OPTION', `${flag}: bad value "${v}"`);
  return n;
};
const int = (flag: string, v: string) => num(flag, v, (n) => Number.isInteger(n) && n >= 1);

function edgesOf(v: string): 'quantiles' | 'schema' {
  if (v !== 'quantiles' && v !== 'schema') throw new FedmarkError('VERTICAL_OPTION', `--edges must be quantiles or schema, got "${v}"`);
  return v;
}

function publicFile(f: string) {
  try {
    return parsePublicIdentity(JSON.parse(readFileSync(f, 'utf8')));
  } catch (err) {
    throw new FedmarkError('VERTICAL_OPTION', `party file ${f}: ${(err as Error).message}`);
  }
}

/**
 * `fedmark vertical train` (the owner defines a vertical SecureBoost job from the parties' public
 * identities, their schemas and a PSI result, registers it and follows it) and `fedmark vertical party`
 * (a party's node: its CSV, its schema and its alignment file in; its model part out).
 */
export function registerVerticalCommand(program: Command): void {
  const v = program
    .command('vertical')
    .description('vertical learning: boosted trees across parties that hold different columns of the same customers (after fedmark psi)');
  v.command('train')
    .description('define a vertical SecureBoost job, register it and follow it to its end')
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--identity <file>', "the job owner's identity")
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--label <file>', "the label holder's public identity")
    .requiredOption('--label-schema <json>', "the label holder's dataset schema (its label and columns)")
    .requiredOption('--features <file...>', "the feature holders' public identities")
    .requiredOption('--features-schema <json...>', "the feature holders' schemas, in the order of --features (no label column)")
    .requiredOption('--psi-job <id>', 'the PSI job that aligned the customers')
    .requiredOption('--order-digest <hex>', 'its order digest (fedmark psi party prints it)')
    .requiredOption('--aligned <n>', 'its intersection size')
    .option('--trees <n>', 'trees', '10')
    .option('--depth <n>', 'depth', '3')
    .option('--bins <n>', 'bins per column', '16')
    .option('--learning-rate <x>', 'learning rate', '0.3')
    .option('--edges <kind>', "bin edges: quantiles (each party's own, of its training rows) or schema (from the declared bounds)", 'quantiles')
    .option('--epsilon <e>', 'label DP: target ε of the label holder (omit for none)')
    .option('--delta <d>', 'label DP δ', '1e-5')
    .option('--seed <n>', 'seed of the hold-out split', '42')
    .option('--poll-ms <ms>', 'how often to poll the coordinator', '200')
    .option('--coordinator-key-id <keyid>', 'name this coordinator in the job ledger only if it proves it holds this key')
    .action(async (o: Record<string, string | string[] | undefined>) => {
      const owner = readIdentityFile(String(o.identity));
      const features = (o.features as string[]).map(publicFile);
      const fschemas = o.featuresSchema as string[];
      if (fschemas.length !== features.length)
        throw new FedmarkError('VERTICAL_OPTION', `--features names ${features.length} parties, --features-schema ${fschemas.length} schemas`);
      const label = publicFile(String(o.label));
      const ls = loadVerticalPartySchema(String(o.labelSchema));
      if (!ls.labelled) throw new FedmarkError('VERTICAL_OPTION', `--label-schema ${String(o.labelSchema)} declares no label column`);
      const bins = int('--bins', String(o.bins));
      const manifest = secureBoostManifest({
        jobId: String(o.job),
        owner: publicIdentity(owner),
        parties: [label, ...features],
        params: {
          parties: [
            { role: 'label', keyId: label.keyId, schemaHash: schemaHash(ls.schema), columnCount: featureLayout(ls.schema).groups.length },
            ...features.map((f, i) => {
              const fs = loadVerticalPartySchema(fschemas[i]);
              return { role: 'features' as const, keyId: f.keyId, schemaHash: schemaHash(fs.schema), columns: columnShapes(featureLayout(fs.schema), bins) };
            }),
          ],
          alignment: { psiJobId: String(o.psiJob), orderDigest: String(o.orderDigest), size: int('--aligned', String(o.aligned)) },
          trees: int('--trees', String(o.trees)),
          depth: int('--depth', String(o.depth)),
          bins,
          learningRate: num('--learning-rate', String(o.learningRate)),
          edges: edgesOf(String(o.edges)),
          seed: num('--seed', String(o.seed), Number.isInteger),
          labelDp: o.epsilon === undefined ? null : { epsilon: num('--epsilon', String(o.epsilon), (n) => n > 0), delta: num('--delta', String(o.delta)) },
        },
      });
      const result = await runRelayJobOwner({
        coordinatorUrl: String(o.coordinator).replace(/\/$/, ''),
        identity: owner,
        signed: signManifest(manifest, owner),
        log: pino({ level: 'warn' }, pino.destination(2)),
        pollMs: int('--poll-ms', String(o.pollMs)),
        coordinatorKeyId: ownerCoordinatorPin(o.coordinatorKeyId as string | undefined),
        onStatus: (s) => process.stderr.write(`[fedmark] vertical ${manifest.jobId}: ${s.state}, round ${s.round}/${manifest.rounds}\n`),
      });
      process.stdout.write(`${JSON.stringify({ jobId: manifest.jobId, ...result })}\n`);
      if (result.state !== 'completed') throw new FedmarkError('JOB_ENDED', `vertical job ${manifest.jobId} ended ${result.state}: ${result.reason ?? ''}`);
    });

  partyTrustOptions(v.command('party'))
    .description(
      "a party's node of a vertical SecureBoost job: its own columns of the aligned customers, never sent; its model part kept in <state-dir>/model.json",
    )
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--job <id>', 'job id')
    .requiredOption('--identity <file>', "this party's identity (mode 0600)")
    .requiredOption('--data <csv>', "this party's CSV (every row must load)")
    .requiredOption('--schema <json>', 'its dataset schema (the label holder declares the label)')
    .requiredOption('--alignment <csv>', 'its PSI alignment file (fedmark psi party)')
    .requiredOption('--state-dir <dir>', "the node's state (ledger, model part)")
    .option('--policy <file>', "label holder with label DP: its privacy policy (the job's ε is charged to its budget in <state-dir>)")
    .option('--poll-ms <ms>', 'how often to poll the coordinator', '200')
    .option('--log-level <level>', 'pino log level', 'warn')
    .action(async (o: Record<string, string | undefined>) => {
      const policy = o.policy ? loadPolicy(o.policy) : undefined;
      const trust = partyTrust({ ...o, coordinator: String(o.coordinator), job: String(o.job) }, policy, o.policy);
      const identity = readIdentityFile(String(o.identity));
      const party = loadVerticalPartySchema(String(o.schema));
      const alignment = readAlignment(String(o.alignment));
      const rows = await loadAlignedRows(String(o.data), party, alignment);
      const stateDir = String(o.stateDir);
      const budget = policy ? new PolicyBudgetGuard(policy, BudgetStore.open(join(stateDir, 'budget.json'))) : undefined;
      const result = await runSecureBoostNode({
        coordinatorUrl: trust.coordinatorUrl,
        ownerKeyId: trust.ownerKeyId,
        coordinatorKeyId: trust.coordinatorKeyId,
        reviewJob: trust.reviewOwner,
        onWaiting: (m) => process.stderr.write(`fedmark vertical party: ${m}\n`),
        identity,
        jobId: String(o.job),
        rows,
        schemaHash: schemaHash(party.schema),
        alignment: { psiJobId: alignment.psiJobId, orderDigest: alignment.orderDigest },
        stateDir,
        log: pino({ level: String(o.logLevel) }, pino.destination(2)),
        pollMs: int('--poll-ms', String(o.pollMs)),
        budget,
      });
      const holdout = result.scores ? { rows: result.scores.rows.length, auc: auc(sigmoid(result.scores.margins), result.scores.labels) } : null;
      process.stdout.write(
        `${JSON.stringify({ jobId: o.job, state: result.state, reason: result.reason, role: result.role, holdout, model: result.model ? join(stateDir, 'model.json') : null, modelHash: result.model ? sha256Canonical(result.model) : null, bytesSent: result.bytesSent })}\n`,
      );
      if (result.state !== 'completed') throw new FedmarkError('JOB_ENDED', `vertical job ${String(o.job)} ended ${result.state}: ${result.reason ?? ''}`);
    });

  v.command('score')
    .description('define a scoring job with a trained vertical model (each party names the model part it committed to), register it and follow it')
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--identity <file>', "the job owner's identity")
    .requiredOption('--job <id>', 'job id of the scoring job')
    .requiredOption('--model-job <id>', 'the training job')
    .requiredOption('--label <file>', "the label holder's public identity")
    .requiredOption('--features <file...>', "the feature holders' public identities")
    .requiredOption('--model-hash <hex...>', "each party's model hash (fedmark vertical party prints it), label holder first")
    .requiredOption('--psi-job <id>', 'the PSI job that aligned the customers')
    .requiredOption('--order-digest <hex>', 'its order digest')
    .requiredOption('--aligned <n>', 'its intersection size')
    .option('--poll-ms <ms>', 'how often to poll the coordinator', '200')
    .option('--coordinator-key-id <keyid>', 'name this coordinator in the job ledger only if it proves it holds this key')
    .action(async (o: Record<string, string | string[] | undefined>) => {
      const owner = readIdentityFile(String(o.identity));
      const parties = [publicFile(String(o.label)), ...(o.features as string[]).map(publicFile)];
      const hashes = o.modelHash as string[];
      if (hashes.length !== parties.length)
        throw new FedmarkError('VERTICAL_OPTION', `--model-hash gives ${hashes.length} hashes for ${parties.length} parties`);
      const manifest = verticalScoreManifest({
        jobId: String(o.job),
        owner: publicIdentity(owner),
        parties,
        params: {
          parties: parties.map((p, i) => ({ role: i === 0 ? ('label' as const) : ('features' as const), keyId: p.keyId, modelHash: hashes[i] })),
          model: { jobId: String(o.modelJob) },
          alignment: { psiJobId: String(o.psiJob), orderDigest: String(o.orderDigest), size: int('--aligned', String(o.aligned)) },
        },
      });
      const result = await runRelayJobOwner({
        coordinatorUrl: String(o.coordinator).replace(/\/$/, ''),
        identity: owner,
        signed: signManifest(manifest, owner),
        log: pino({ level: 'warn' }, pino.destination(2)),
        pollMs: int('--poll-ms', String(o.pollMs)),
        coordinatorKeyId: ownerCoordinatorPin(o.coordinatorKeyId as string | undefined),
      });
      process.stdout.write(`${JSON.stringify({ jobId: manifest.jobId, ...result })}\n`);
      if (result.state !== 'completed') throw new FedmarkError('JOB_ENDED', `scoring job ${manifest.jobId} ended ${result.state}: ${result.reason ?? ''}`);
    });

  partyTrustOptions(v.command('score-party'))
    .description("a party's node of a scoring job: answers for its own splits (feature holder) or walks the trees and writes the scores (label holder)")
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--job <id>', 'job id of the scoring job')
    .requiredOption('--identity <file>', "this party's identity (mode 0600)")
    .requiredOption('--data <csv>', "this party's CSV")
    .requiredOption('--schema <json>', 'its dataset schema')
    .requiredOption('--alignment <csv>', 'its PSI alignment file')
    .requiredOption('--model <json>', 'its model part (<state-dir>/model.json of the training job)')
    .requiredOption('--state-dir <dir>', "the node's state (ledger)")
    .option('--out <csv>', 'label holder: where the scores go (position,score)')
    .option('--poll-ms <ms>', 'how often to poll the coordinator', '200')
    .option('--log-level <level>', 'pino log level', 'warn')
    .action(async (o: Record<string, string | undefined>) => {
      const trust = partyTrust({ ...o, coordinator: String(o.coordinator), job: String(o.job) });
      const identity = readIdentityFile(String(o.identity));
      const alignment = readAlignment(String(o.alignment));
      const rows = await loadAlignedRows(String(o.data), loadVerticalPartySchema(String(o.schema)), alignment);
      const result = await runScoreNode({
        coordinatorUrl: trust.coordinatorUrl,
        ownerKeyId: trust.ownerKeyId,
        coordinatorKeyId: trust.coordinatorKeyId,
        onWaiting: (m) => process.stderr.write(`fedmark vertical score-party: ${m}\n`),
        identity,
        jobId: String(o.job),
        modelPath: String(o.model),
        rows,
        alignment: { psiJobId: alignment.psiJobId, orderDigest: alignment.orderDigest },
        stateDir: String(o.stateDir),
        outPath: o.out,
        log: pino({ level: String(o.logLevel) }, pino.destination(2)),
        pollMs: int('--poll-ms', String(o.pollMs)),
      });
      const out = result.scores ? (o.out ?? join(String(o.stateDir), `${String(o.job)}.scores.csv`)) : null;
      process.stdout.write(
        `${JSON.stringify({ jobId: o.job, state: result.state, reason: result.reason, scored: result.scores?.rows.length ?? null, out })}\n`,
      );
      if (result.state !== 'completed') throw new FedmarkError('JOB_ENDED', `scoring job ${String(o.job)} ended ${result.state}: ${result.reason ?? ''}`);
    });
}
