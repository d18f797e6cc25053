import { Option, type Command } from 'commander';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import cliProgress from 'cli-progress';
import { parsePublicIdentity, publicIdentity, readIdentityFile } from '../src/crypto/identity.ts';
import { loadSchema } from '../src/data/schema.ts';
import { FedmarkError } from '../src/errors.ts';
import { jobIdSchema, parseManifest, MANIFEST_SCHEMA_VERSION } from '../src/federation/manifest.ts';
import { initBackend } from '../src/model/backend.ts';
import { runJobOwner } from '../owner/node.ts';
import { jobManifestFor, parseModelOption, saveJobModel } from './job-model.ts';
import { resolveSignedManifest, SIGNED_MANIFEST_FILE } from '../owner/job-state.ts';
import type { JobEvaluation } from '../src/report/from-job.ts';
import { keyIdOption } from './node-commands.ts';
import { roundStage } from './demo/follow.ts';
import { formatReleaseCosts, releaseCosts } from '../src/federation/release-cost.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import { addTrainingOptions, givenTrainingFlags, withTrainingOptions } from './training-options.ts';

/** The data scientist's node against a real coordinator: define, register and follow a job. */
export function registerJobCommand(program: Command): void {
  const job = program.command('job').description("the job owner's node (data scientist)");
  addTrainingOptions(job.command('run'))
    .description('define a job from a dataset schema, register it, run the key ceremony and follow it to the final model and metrics')
    .requiredOption('--coordinator <url>', 'coordinator base URL')
    .option('--coordinator-key-id <keyid>', 'name this coordinator in the job ledger only if it proves it holds this key')
    .requiredOption('--identity <file>', "the job owner's identity")
    .requiredOption('--job <id>', 'job id (3–64 chars: a-z 0-9 . _ -)')
    .requiredOption('--schema <json>', 'the dataset schema every partner holds')
    .option('--partner <file...>', "partners' public identities (the JSON `fedmark keys init` prints)")
    .addOption(new Option('--participant <file...>', 'old name of --partner').hideHelp())
    .option('--purpose <text>', 'purpose partners check against their policy', 'propensity-model')
    .option(
      '--rounds <n>',
      "training rounds (logistic/MLP; default: the preset's for the model and ε, docs/MODELS.md; a gbdt job takes the rounds its trees need)",
    )
    .option('--epsilon <e>', 'target ε per partner', '3')
    .option('--delta <d>', 'δ', '1e-5')
    .option('--no-dp', 'train without differential privacy')
    .option('--model <json>', 'logistic, mlp, gbdt or a spec, e.g. {"kind":"mlp","hidden":[16]} or {"kind":"gbdt","trees":20,"depth":3}', 'logistic')
    .option('--seed <n>', 'seed of the initial model and partner selection', '42')
    .option('--round-deadline <seconds>', 'how long a round waits for the selected partners (default: 120)')
    .option('--quorum <n>', 'submissions a round needs to close (default: 60 % of the partners, at most the partners per round)')
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
      const preset = jobManifestFor(model, {
        jobId: jobId.data,
        purpose: String(o.purpose),
        schema,
        partners: partners.length,
        // Absent: the preset's rounds for the model kind and privacy target.
        rounds: o.rounds === undefined ? undefined : Number(o.rounds),
        epsilon: o.dp === false ? null : Number(o.epsilon),
        delta: Number(o.delta),
        seed: Number(o.seed),
      });
      if (model.kind === 'gbdt') {
        const given = givenTrainingFlags(o);
        if (given.length)
          throw new FedmarkError(
            'CLI_BAD_OPTION',
            `${given.join(', ')}: local SGD settings; a gbdt job takes its settings in --model (e.g. {"kind":"gbdt","trees":20,"depth":3})`,
          );
      }
      const fresh = parseManifest({
        ...(model.kind === 'gbdt' ? preset : withTrainingOptions(preset, o)),
        ...roundOptions(o),
        schemaVersion: MANIFEST_SCHEMA_VERSION,
        createdAt: new Date().toISOString(),
        owner: publicIdentity(owner),
        partners,
      });
      // A restart with the same --out resumes the job registered with the persisted, signed manifest.
      const { signed, resumed } = resolveSignedManifest(out, fresh, owner);
      const manifest = signed.manifest;
      if (o.manifestOnly) {
        process.stdout.write(`${join(out, 'manifest.json')}\n`);
        return;
      }
      // What every partner will release, and what it costs, before anything starts.
      const cost = releaseCosts(builtinWorkloads.resolve(manifest), manifest);
      process.stderr.write(cost ? `${formatReleaseCosts(cost)}\n` : `job ${manifest.jobId} is not differentially private (ε = ∞)\n`);
      if (resumed) process.stderr.write(`fedmark: resuming job ${manifest.jobId} from ${join(out, SIGNED_MANIFEST_FILE)}\n`);
      await initBackend({ log: (m) => process.stderr.write(`fedmark: ${m}\n`) });
      const bar = new cliProgress.SingleBar(
        { format: 'rounds [{bar}] {value}/{total} {stage} | global AUC {auc}', stream: process.stderr },
        cliProgress.Presets.shades_classic,
      );
      bar.start(manifest.rounds + 1, 0, { auc: '—', stage: roundStage(0, manifest.rounds) });
      const result = await runJobOwner({
        coordinatorUrl: String(o.coordinator).replace(/\/$/, ''),
        identity: owner,
        signed,
        stateDir: out,
        coordinatorKeyId: o.coordinatorKeyId === undefined ? undefined : keyIdOption('--coordinator-key-id', String(o.coordinatorKeyId)),
        log: pino({ level: 'warn' }, pino.destination(2)),
        onRound: (p) => bar.update(p.round, { auc: p.metrics ? p.metrics.auc.toFixed(4) : '—', stage: roundStage(p.round, manifest.rounds) }),
      });
      bar.stop();
      if (result.state !== 'completed') throw new FedmarkError('JOB_ENDED', `job ${manifest.jobId} ended ${result.state}: ${result.reason ?? ''}`);
      const evaluation: JobEvaluation = {
        roundMetrics: result.roundMetrics.filter((r) => r.metrics).map((r) => ({ round: r.round - 1, auc: r.metrics!.auc, logLoss: r.metrics!.logLoss })),
        finalMetrics: result.finalMetrics!,
      };
      writeFileSync(join(out, 'evaluation.json'), JSON.stringify(evaluation));
      const modelPath = await saveJobModel(out, manifest, result.finalState, { jobId: manifest.jobId, modelHash: result.modelHash });
      process.stdout.write(
        `${JSON.stringify({
          jobId: manifest.jobId,
          state: result.state,
          modelHash: result.modelHash,
          auc: result.finalMetrics?.auc ?? null,
          // With early stopping: the training round whose model was released, and whether training stopped early.
          selection: builtinWorkloads.resolve(manifest).selection?.(manifest, result.finalState) ?? null,
          out,
          model: modelPath,
        })}\n`,
      );
      process.exit(0);
    });
}

function num(flag: string, v: unknown): number {
  const x = Number(v);
  if (!Number.isFinite(x)) throw new FedmarkError('CLI_BAD_NUMBER', `--${flag} must be a number, got "${String(v)}"`);
  return x;
}

/** `--round-deadline` and `--quorum` over the preset; the manifest schema then checks their ranges (and quorum ≤ partnersPerRound). */
export function roundOptions(o: Record<string, string | string[] | boolean | undefined>): { roundDeadlineSeconds?: number; quorum?: number } {
  return {
    ...(o.roundDeadline !== undefined ? { roundDeadlineSeconds: num('round-deadline', o.roundDeadline) } : {}),
    ...(o.quorum !== undefined ? { quorum: num('quorum', o.quorum) } : {}),
  };
}
