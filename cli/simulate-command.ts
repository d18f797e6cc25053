import type { Command } from 'commander';
import { FedmarkError } from '../src/errors.ts';
import { jobPreset } from '../src/federation/job-presets.ts';
import { simulate } from '../src/federation/simulate.ts';
import { initBackend } from '../src/model/backend.ts';
import { bundledPartners, DATASET_ALIASES, withJobOptions } from './partner-data.ts';

export function registerSimulateCommand(program: Command): void {
  withJobOptions(
    program.command('simulate').description('run a federated job in one process (same partner, round and encryption code as the nodes, no network)'),
  )
    .option('--json', 'print one JSON summary', false)
    .action(async (o: Record<string, string | boolean>) => {
      const name = DATASET_ALIASES[String(o.dataset)];
      if (!name) throw new FedmarkError('CLI_DATASET', `unknown dataset "${o.dataset}": use bank or telco`);
      const backend = await initBackend({ log: (m) => process.stderr.write(`[fedmark] ${m}\n`) });
      const seed = Number(o.seed);
      const k = Number(o.partners);
      const { schema, names, splits } = await bundledPartners(name, k, Number(o.alpha), seed);
      const partners = splits.map((sp, i) => ({ name: names[i], ...sp }));
      const job = jobPreset({
        jobId: `simulation-${Date.now().toString(36)}`,
        schema,
        partners: k,
        rounds: Number(o.rounds),
        epsilon: o.dp === false ? null : Number(o.epsilon),
        encryption: o.insecurePlaintext ? { scheme: 'plain-insecure' } : undefined,
        seed,
      });
      const result = await simulate({
        job,
        partners,
        onRound: (r) => process.stderr.write(`round ${r.round}: AUC ${r.metrics.auc.toFixed(4)}${Object.keys(r.epsilon).length ? `, ε ${Object.values(r.epsilon).map((e) => e.toFixed(3)).join('/')}` : ''}\n`),
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
      process.stdout.write(o.json ? `${JSON.stringify(summary)}\n` : `federated AUC ${summary.auc.toFixed(4)} after ${summary.rounds} rounds (${summary.wallSeconds.toFixed(1)} s)\n`);
      process.exit(0);
    });
}
