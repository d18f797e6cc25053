import type { Command } from 'commander';
import { FedmarkError } from '../src/errors.ts';
import { jobPreset } from '../src/federation/job-presets.ts';
import { featureStatsPreset, standardizedTrainingPreset } from '../src/federation/presets/standardized.ts';
import type { FeatureStats } from '../src/federation/workloads/feature-stats/index.ts';
import { simulate } from '../src/federation/simulate.ts';
import { initBackend } from '../src/model/backend.ts';
import { trainBaselines } from './baselines.ts';
import { jobManifestFor, parseModelOption } from './job-model.ts';
import { bundledPartners, DATASET_ALIASES, withJobOptions } from './partner-data.ts';
import { userPartners, type SplitSpec } from './simulate-data.ts';
import { addTrainingOptions, givenTrainingFlags, withTrainingOptions } from './training-options.ts';

/** --partition-by or --partners/--alpha, never both: a user who gave both meant one of them. */
function splitSpec(o: Record<string, string | boolean>, cmd: Command): SplitSpec {
  // α and K are checked where the split is made (userPartners), after the file is read.
  if (typeof o.schema !== 'string') throw new FedmarkError('CLI_SCHEMA', '--data needs --schema (the dataset schema JSON of the file)');
  const given = (opt: string) => cmd.getOptionValueSource(opt) === 'cli';
  if (typeof o.partitionBy === 'string') {
    if (given('partners') || given('alpha'))
      throw new FedmarkError('CLI_SPLIT', '--partition-by makes one partner per column value: do not also give --partners/--alpha (the Dirichlet split)');
    return { by: 'column', column: o.partitionBy };
  }
  return { by: 'dirichlet', partners: Number(o.partners), alpha: Number(o.alpha) };
}

function formatComparison(s: {
  auc: { federated: number; pooled: number; alone: Record<string, number> };
  epsilon: Record<string, number>;
  partners: { name: string; holds: string }[];
  holdoutRows: number;
  wallSeconds: number;
}): string {
  const lines = [
    `AUC on the pooled hold-out (${s.holdoutRows} rows):`,
    `  federated        ${s.auc.federated.toFixed(4)}`,
    `  pooled (no DP)   ${s.auc.pooled.toFixed(4)}`,
    ...s.partners.map(
      (p) => `  ${p.name} alone ${s.auc.alone[p.name].toFixed(4)}  (${p.holds}${p.name in s.epsilon ? `; ε spent ${s.epsilon[p.name].toFixed(3)}` : ''})`,
    ),
    `(${s.wallSeconds.toFixed(1)} s)`,
  ];
  return `${lines.join('\n')}\n`;
}

export function registerSimulateCommand(program: Command): void {
  addTrainingOptions(
    withJobOptions(
      program.command('simulate').description('run a federated job in one process (same partner, round and encryption code as the nodes, no network)'),
    ),
  )
    .option('--json', 'print one JSON summary', false)
    .option('--standardize', 'first run a feature-statistics job (ε·0.1) and train on standardised numeric features (ε·0.9)', false)
    .option('--data <file>', 'your own CSV or Parquet file instead of --dataset (needs --schema, and --partition-by or --partners/--alpha)')
    .option('--schema <file>', 'dataset schema of --data')
    .option('--partition-by <column>', 'with --data: one partner per value (or declared band) of this schema column')
    .option('--model <json>', 'logistic, mlp, gbdt or a spec, e.g. {"kind":"gbdt","trees":20,"depth":3} (as in job run)')
    .action(async (o: Record<string, string | boolean>, cmd: Command) => {
      const own = typeof o.data === 'string';
      if (own && cmd.getOptionValueSource('dataset') === 'cli')
        throw new FedmarkError('CLI_DATA', 'give --data (your file) or --dataset (bundled data), not both');
      if (!own && (typeof o.schema === 'string' || typeof o.partitionBy === 'string'))
        throw new FedmarkError('CLI_DATA', '--schema and --partition-by describe a --data file; without --data, simulate uses --dataset bank|telco');
      const name = DATASET_ALIASES[String(o.dataset)];
      if (!own && !name) throw new FedmarkError('CLI_DATASET', `unknown dataset "${o.dataset}": use bank or telco`);
      const split = own ? splitSpec(o, cmd) : null;
      const model = typeof o.model === 'string' ? parseModelOption(o.model) : null;
      if (model?.kind === 'gbdt' && (o.standardize || givenTrainingFlags(o).length))
        throw new FedmarkError(
          'CLI_MODEL_OPTION',
          `${['--standardize', ...givenTrainingFlags(o)].filter((f) => f !== '--standardize' || o.standardize).join(', ')}: logistic/MLP training settings, not --model gbdt (a gbdt job takes its settings in --model)`,
        );
      const backend = await initBackend({ log: (m) => process.stderr.write(`[fedmark] ${m}\n`) });
      const seed = Number(o.seed);
      const { schema, names, splits, describe } = split
        ? await userPartners(String(o.data), String(o.schema), split, seed)
        : { ...(await bundledPartners(name, Number(o.partners), Number(o.alpha), seed)), describe: null };
      const k = splits.length;
      if (describe)
        process.stderr.write(
          `[fedmark] ${o.data}: ${k} partners: ${names.map((nm, i) => `${nm} = ${describe[i]} (${splits[i].train.n + splits[i].test.n} rows)`).join(', ')}\n`,
        );
      const partners = splits.map((sp, i) => ({ name: names[i], ...sp }));
      const o2 = {
        jobId: `simulation-${Date.now().toString(36)}`,
        schema,
        partners: k,
        rounds: Number(o.rounds),
        epsilon: o.dp === false ? null : Number(o.epsilon),
        encryption: o.insecurePlaintext ? ({ scheme: 'plain-insecure' } as const) : undefined,
        seed,
        ...(model?.kind === 'sgd' ? { model: model.spec } : {}),
      };
      let job = model ? jobManifestFor(model, o2) : jobPreset(o2);
      let statsEpsilon: Record<string, number> | null = null;
      if (o.standardize) {
        const stats = await simulate<FeatureStats, FeatureStats>({ job: featureStatsPreset(o2), partners });
        process.stderr.write(
          `feature statistics of ${stats.state.columns.join(', ')}: ε ${
            Object.values(stats.epsilon)
              .map((e) => e.toFixed(3))
              .join('/') || 'none'
          }\n`,
        );
        statsEpsilon = stats.epsilon;
        job = standardizedTrainingPreset(o2, stats.state);
      }
      if (model?.kind !== 'gbdt') job = withTrainingOptions(job, o);
      const result = await simulate({
        job,
        partners,
        // A DP job's training rounds carry no evaluation unless the manifest buys one (evaluation.everyRound).
        onRound: (r) =>
          process.stderr.write(
            `round ${r.round}: ${r.metrics ? `AUC ${r.metrics.auc.toFixed(4)}` : 'not evaluated'}${
              Object.keys(r.epsilon).length
                ? `, ε ${Object.values(r.epsilon)
                    .map((e) => e.toFixed(3))
                    .join('/')}`
                : ''
            }\n`,
          ),
      });
      if (own) {
        const baselines = await trainBaselines({ manifest: result.manifest, names, splits }, result.manifest.rounds, seed);
        const summary = {
          data: String(o.data),
          model: result.manifest.model.kind,
          split: split!.by === 'column' ? { partitionBy: (split as { column: string }).column } : { partners: k, alpha: Number(o.alpha), seed },
          partners: names.map((nm, i) => ({ name: nm, holds: describe![i], trainRows: splits[i].train.n, holdoutRows: splits[i].test.n })),
          holdoutRows: splits.reduce((a, sp) => a + sp.test.n, 0),
          rounds: result.manifest.rounds,
          backend,
          auc: { federated: baselines.aucOf(result.state), pooled: baselines.centralized, alone: baselines.local },
          targetEpsilon: o2.epsilon,
          epsilon: result.epsilon,
          // --standardize: the feature-statistics job ran first and spent its own share (ε·0.1) of the target.
          ...(statsEpsilon ? { featureStatsEpsilon: statsEpsilon } : {}),
          noiseMultiplier: result.noiseMultiplier,
          selection: result.selection,
          modelHash: result.modelHash,
          wallSeconds: result.wallSeconds,
        };
        process.stdout.write(o.json ? `${JSON.stringify(summary)}\n` : formatComparison(summary));
        process.exit(0);
      }
      const summary = {
        dataset: name,
        partners: k,
        rounds: result.manifest.rounds,
        backend,
        auc: result.finalMetrics.auc,
        epsilon: result.epsilon,
        noiseMultiplier: result.noiseMultiplier,
        selection: result.selection,
        wireBytesPerParameter: result.wireBytes.perParameter,
        modelHash: result.modelHash,
        wallSeconds: result.wallSeconds,
      };
      process.stdout.write(
        o.json
          ? `${JSON.stringify(summary)}\n`
          : `federated AUC ${summary.auc.toFixed(4)} after ${summary.rounds} rounds${
              summary.selection ? ` (released round ${summary.selection.round}'s model${summary.selection.stopped ? ', stopped early' : ''})` : ''
            } (${summary.wallSeconds.toFixed(1)} s)\n`,
      );
      process.exit(0);
    });
}
