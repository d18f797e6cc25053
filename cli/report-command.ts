import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parseManifest } from '../src/federation/manifest.ts';
import { auditLedgers } from '../src/privacy/ledger/audit.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { composedEpsilon } from '../src/privacy/accountant.ts';
import { writeReport } from '../src/report/html.ts';
import { reportInputFromJob, type JobEvaluation } from '../src/report/from-job.ts';
import { FedmarkError } from '../src/errors.ts';
import type { CampaignInput } from '../src/report/html/campaign.ts';
import { loadXgboostModel } from '../src/trees/index.ts';

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description("write the compliance report (self-contained HTML) and model card from a job ledger and the owner's evaluation")
    .requiredOption('--manifest <file>', 'the job manifest (JSON)')
    .requiredOption('--ledger <file>', "the coordinator's job ledger")
    .option('--partner <ledger...>', "partners' own ledgers (rows used, consent exclusions, cross-check)", [])
    .requiredOption('--evaluation <file>', "the owner's decrypted federated evaluation (evaluation.json from the demo)")
    .option('--model <file>', 'the released tree model (model.xgb.json of a gbdt job): its feature importance goes into the model card')
    .option('--bytes-per-param <n>', 'measured wire bytes per parameter', '0')
    .option('--target <text>', 'what the model predicts', 'the label declared in the dataset schema')
    .option('--intended-use <text>', 'intended use for the model card', 'Rank customers for marketing campaigns, with human review.')
    .requiredOption('--out <dir>', 'where to write report.html and model-card.md')
    .option('--scoring <file>', 'add a scoring run to the report (the JSON of `fedmark score --summary`)')
    .option('--uplift <file>', 'add a measured campaign to the report (the JSON of `fedmark uplift --summary`)')
    .action(
      async (o: {
        manifest: string;
        ledger: string;
        partner: string[];
        evaluation: string;
        bytesPerParam: string;
        target: string;
        intendedUse: string;
        out: string;
        scoring?: string;
        uplift?: string;
        model?: string;
      }) => {
        const readJson = (path: string, what: string): unknown => {
          try {
            return JSON.parse(readFileSync(path, 'utf8'));
          } catch (err) {
            throw new FedmarkError('REPORT_INPUT', `${what} ${path}: ${(err as Error).message}`);
          }
        };
        const manifest = parseManifest(readJson(o.manifest, 'manifest'));
        const evaluation = readJson(o.evaluation, 'evaluation') as JobEvaluation;
        if (o.model && manifest.model.kind !== 'gbdt')
          throw new FedmarkError(
            'REPORT_INPUT',
            `--model ${o.model}: only a gbdt job's tree model carries feature importance (this job trains ${manifest.model.kind})`,
          );
        const model = o.model ? await loadXgboostModel(o.model) : undefined;
        if (model && model.featureNames.join('\u0000') !== manifest.dataset.featureNames.join('\u0000'))
          throw new FedmarkError(
            'REPORT_INPUT',
            `--model ${o.model}: its features are not the job's (${manifest.dataset.featureNames.length} features in the manifest)`,
          );
        const audit = auditLedgers({ coordinator: o.ledger, partners: o.partner, epsilonOf: composedEpsilon, allowRunning: true });
        const campaign =
          o.scoring || o.uplift
            ? ({
                scoring: o.scoring ? readJson(o.scoring, 'scoring summary') : undefined,
                uplift: o.uplift ? readJson(o.uplift, 'uplift summary') : undefined,
              } as CampaignInput)
            : undefined;
        const written = await writeReport(o.out, {
          ...reportInputFromJob({
            manifest,
            ledger: readLedger(o.ledger).entries,
            audit,
            evaluation,
            bytesPerParam: Number(o.bytesPerParam),
            target: o.target,
            intendedUse: o.intendedUse,
            model,
          }),
          ...(campaign ? { campaign } : {}),
        });
        process.stdout.write(`${written.htmlPath}\n${written.modelCardPath}\n`);
      },
    );
}
