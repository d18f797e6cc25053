import type { Command } from 'commander';
import { FedmarkError } from '../src/errors.ts';
import { jobPreset } from '../src/federation/job-presets.ts';
import { strategySpecSchema, type StrategySpec } from '../src/federation/manifest.ts';
import { featureStatsPreset, standardizedTrainingPreset } from '../src/federation/presets/standardized.ts';
import type { FeatureStats } from '../src/federation/workloads/feature-stats/index.ts';
import { simulate } from '../src/federation/simulate.ts';
import { initBackend } from '../src/model/backend.ts';
import { bundledPartners, DATASET_ALIASES, withJobOptions } from './partner-data.ts';

function parseStrategy(text: string): StrategySpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new FedmarkError('CLI_STRATEGY', `--strategy is not JSON: ${text}`);
  }
  const parsed = strategySpecSchema.safeParse(raw);
  if (!parsed.success)
    throw new FedmarkError('CLI_STRATEGY', `--strategy: ${parsed.error.issues[0].path.join('.') || '(root)'}: ${parsed.error.issues[0].message}`);
  return parsed.data;
}

export function registerSimulateCommand(program: Command): void {
  withJobOptions(
    program.command('simulate').description('run a federated job in one process (same partner, round and encryption code as the nodes, no network)'),
  )
    .option('--json', 'print one JSON summary', false)
    .option('--strategy <json>', 'server strategy, e.g. {"name":"fedyogi","serverLr":0.05} or {"name":"fedavg","schedule":{"kind":"cosine"}}')
    .option('--standardize', 'first run a feature-statistics job (ε·0.1) and train on standardised numeric features (ε·0.9)', false)
    .action(async (o: Record<string, string | boolean>) => {
      const name = DATASET_ALIASES[String(o.dataset)];
      if (!name) throw new FedmarkError('CLI_DATASET', `unknown dataset "${o.dataset}": use bank or telco`);
      const backend = await initBackend({ log: (m) => process.stderr.write(`[fedmark] ${m}\n`) });
      const seed = Number(o.seed);
      const k = Number(o.partners);
      const { schema, names, splits } = await bundledPartners(name, k, Number(o.alpha), seed);
      const partners = splits.map((sp, i) => ({ name: names[i], ...sp }));
      const o2 = {
        jobId: `simulation-${Date.now().toString(36)}`,
        schema,
        partners: k,
        rounds: Number(o.rounds),
        epsilon: o.dp === false ? null : Number(o.epsilon),
        encryption: o.insecurePlaintext ? ({ scheme: 'plain-insecure' } as const) : undefined,
        seed,
      };
      let job = jobPreset(o2);
      if (o.standardize) {
        const stats = await simulate<FeatureStats, FeatureStats>({ job: featureStatsPreset(o2), partners });
        process.stderr.write(
          `feature statistics of ${stats.state.columns.join(', ')}: ε ${
            Object.values(stats.epsilon)
              .map((e) => e.toFixed(3))
              .join('/') || 'none'
          }\n`,
        );
        job = standardizedTrainingPreset(o2, stats.state);
      }
      if (typeof o.strategy === 'string') job = { ...job, strategy: parseStrategy(o.strategy) };
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
      const summary = {
        dataset: name,
        partners: k,
        rounds: Number(o.rounds),
        backend,
        auc: result.finalMetrics.auc,
        epsilon: result.epsilon,
        noiseMultiplier: result.noiseMultiplier,
        wireBytesPerParameter: result.wireBytes.perParameter,
        modelHash: result.modelHash,
        wallSeconds: result.wallSeconds,
      };
      process.stdout.write(
        o.json
          ? `${JSON.stringify(summary)}\n`
          : `federated AUC ${summary.auc.toFixed(4)} after ${summary.rounds} rounds (${summary.wallSeconds.toFixed(1)} s)\n`,
      );
      process.exit(0);
    });
}
