import { Option, type Command } from 'commander';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import cliProgress from 'cli-progress';
import { parsePublicIdentity, publicIdentity, readIdentityFile } from '../src/crypto/identity.ts';
import { loadSchema } from '../src/data/schema.ts';
import { FedmarkError } from '../src/errors.ts';
import { jobIdSchema, parseManifest, signManifest , MANIFEST_SCHEMA_VERSION } from '../src/federation/manifest.ts';
import { initBackend } from '../src/model/backend.ts';
import { runJobOwner } from '../owner/node.ts';
import { jobManifestFor, parseModelOption, saveJobModel } from './job-model.ts';
import type { JobEvaluation } from '../src/report/from-job.ts';

/** The data scientist's node against a real coordinator: define, register and follow a job. */
export function registerJobCommand(program: Command): void {
  const job = program.command('job').description("the job owner's node (data scientist)");
  job
    .command('run')
    .description('define a job from a dataset schema, register it, run the key ceremony and follow it to the final model and metrics')
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .requiredOption('--identity <file>', "the job owner's identity")
    .requiredOption('--job <id>', 'job id (3–64 chars: a-z 0-9 . _ -)')
    .requiredOption('--schema <json>', 'the dataset schema every partner holds')
    .option('--partner <file...>', "partners' public identities (the JSON `fedmark keys init` prints)")
    .addOption(new Option('--participant <file...>', 'old name of --partner').hideHelp())
    .option('--purpose <text>', 'purpose partners check against their policy', 'propensity-model')
    .option('--rounds <n>', 'training rounds (logistic/MLP; a gbdt job takes the rounds its trees need)', '20')
    .option('--epsilon <e>', 'target ε per partner', '3')
    .option('--delta <d>', 'δ', '1e-5')
    .option('--no-dp', 'train without differential privacy')
    .option('--model <json>', 'logistic, mlp, gbdt or a spec, e.g. {"kind":"mlp","hidden":[16]} or {"kind":"gbdt","trees":20,"depth":3}', 'logistic')
    .option('--seed <n>', 'seed of the initial model and partner selection', '42')
    .option('--manifest-only', 'write the manifest (for officers to approve) and stop', false)
    .requiredOption('--out <dir>', 'where manifest.json, evaluation.json and the model go')
    .action(async (o: Record<string, string | string[] | boolean>) => {
      const out = String(o.out);
      mkdirSync(out, { recursive: true });
      const owner = readIdentityFile(String(o.identity));
      const schema = await loadSchema(String(o.schema));
      const files = [...((o.partner as string[] | undefined) ?? []), ...((o.participant as string[] | undefined) ?? [])];
      if (files.length === 0) throw new FedmarkError('JOB_PARTNER', "required option '--partner <file...>' not specified");
      const partners = files.map((f) => {
        try {
          return parsePublicIdentity(JSON.parse(readFileSync(f, 'utf8')));
        } catch (err) {
          throw new FedmarkError('JOB_PARTNER', `partner file ${f}: ${(err as Error).message}`);
        }
      });
      const jobId = jobIdSchema.safeParse(o.job);
      if (!jobId.success) throw new FedmarkError('JOB_ID', `--job: ${jobId.error.issues[0].message}`);
      const model = parseModelOption(String(o.model));
      const manifest = parseManifest({
        ...jobManifestFor(model, {
          jobId: jobId.data,
          purpose: String(o.purpose),
          schema,
          partners: partners.length,
          rounds: Number(o.rounds),
          epsilon: o.dp === false ? null : Number(o.epsilon),
          delta: Number(o.delta),
          seed: Number(o.seed),
        }),
        schemaVersion: MANIFEST_SCHEMA_VERSION,
        createdAt: new Date().toISOString(),
        owner: publicIdentity(owner),
        partners,
      });
      writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2));
      if (o.manifestOnly) {
        process.stdout.write(`${join(out, 'manifest.json')}\n`);
        return;
      }
      await initBackend({ log: (m) => process.stderr.write(`[fedmark] ${m}\n`) });
      const bar = new cliProgress.SingleBar({ format: 'rounds [{bar}] {value}/{total} | global AUC {auc}', stream: process.stderr }, cliProgress.Presets.shades_classic);
      bar.start(manifest.rounds + 1, 0, { auc: '—' });
      const result = await runJobOwner({
        coordinatorUrl: String(o.coordinator).replace(/\/$/, ''),
        identity: owner,
        signed: signManifest(manifest, owner),
        log: pino({ level: 'warn' }, pino.destination(2)),
        onRound: (p) => bar.update(p.round, { auc: p.metrics ? p.metrics.auc.toFixed(4) : '—' }),
      });
      bar.stop();
      if (result.state !== 'completed') throw new FedmarkError('JOB_ENDED', `job ${manifest.jobId} ended ${result.state}: ${result.reason ?? ''}`);
      const evaluation: JobEvaluation = {
        roundMetrics: result.roundMetrics.filter((r) => r.metrics).map((r) => ({ round: r.round - 1, auc: r.metrics!.auc, logLoss: r.metrics!.logLoss })),
        finalMetrics: result.finalMetrics!,
      };
      writeFileSync(join(out, 'evaluation.json'), JSON.stringify(evaluation));
      const modelPath = await saveJobModel(out, manifest, result.finalState, { jobId: manifest.jobId, modelHash: result.modelHash });
      process.stdout.write(`${JSON.stringify({ jobId: manifest.jobId, state: result.state, modelHash: result.modelHash, auc: result.finalMetrics?.auc ?? null, out, model: modelPath })}\n`);
      process.exit(0);
    });
}
