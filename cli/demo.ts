import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FedmarkError } from '../src/errors.ts';
import { initBackend } from '../src/model/backend.ts';
import { saveJobModel } from './job-model.ts';
import { DATASET_ALIASES, withJobOptions } from './partner-data.ts';
import { trainBaselines } from './baselines.ts';
import { followJob } from './demo/follow.ts';
import { auditDemo, partnerEpsilons, readBytesPerValue } from './demo/ledgers.ts';
import { startProcesses, waitExit } from './demo/processes.ts';
import { writeDemoReport } from './demo/report.ts';
import { setUpDemo } from './demo/setup.ts';
import { printTable, type DemoSummary } from './demo/summary.ts';
import { printVerticalTable, runVerticalDemo } from './demo/vertical.ts';

export type { DemoSummary } from './demo/summary.ts';

export interface DemoOptions {
  dataset: string;
  partners: number;
  rounds: number;
  out?: string;
  json: boolean;
  seed: number;
  epsilon: number | null;
  insecurePlaintext: boolean;
  /** Masked aggregation inside BFV (manifest encryption `secagg-bfv`) instead of CKKS. */
  masked?: boolean;
  model: 'logistic' | 'mlp' | 'gbdt';
  alpha: number;
}

export function registerDemoCommand(program: Command): void {
  withJobOptions(
    program
      .command('demo')
      .description('the main job: a coordinator and N partner nodes as separate processes on 127.0.0.1, federated training on bundled real data'),
  )
    .option('--out <dir>', 'where every artifact of the run goes (default: a new temp dir)')
    .option('--json', 'print one JSON summary at the end', false)
    .option('--model <kind>', 'logistic, mlp or gbdt (gradient-boosted trees; --rounds is then set by the trees)', 'logistic')
    .option(
      '--vertical',
      'vertical learning instead: a bank and a telco with different columns of overlapping customers, PSI then SecureBoost with label DP (--epsilon)',
      false,
    )
    .option('--vertical-rows <n>', 'with --vertical: customers drawn from the bundled bank-marketing file', '20000')
    .option('--trees <n>', 'with --vertical: trees (depth 3)', '5')
    .option('--masked', 'masked aggregation inside BFV (pairwise masks with dropout recovery, docs/CRYPTO.md) instead of CKKS under one shared key', false)
    .action(async (o: Record<string, string | boolean>) => {
      if (o.vertical) {
        const say = (line: string) => process.stderr.write(`${line}\n`);
        const summary = await runVerticalDemo(
          {
            rows: Number(o.verticalRows),
            trees: Number(o.trees),
            depth: 3,
            epsilon: o.dp === false ? null : Number(o.epsilon),
            seed: Number(o.seed),
            out: o.out ? String(o.out) : undefined,
          },
          say,
        );
        writeFileSync(join(summary.out, 'summary.json'), JSON.stringify(summary, null, 2));
        printVerticalTable(summary, say);
        if (o.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        process.exit(0);
      }
      const summary = await runDemo({
        dataset: String(o.dataset),
        partners: Number(o.partners),
        rounds: Number(o.rounds),
        out: o.out ? String(o.out) : undefined,
        json: Boolean(o.json),
        seed: Number(o.seed),
        epsilon: o.dp === false ? null : Number(o.epsilon),
        insecurePlaintext: Boolean(o.insecurePlaintext),
        masked: Boolean(o.masked),
        model: o.model === 'mlp' || o.model === 'gbdt' ? o.model : 'logistic',
        alpha: Number(o.alpha),
      });
      if (o.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
      // The SEAL wasm module and log streams keep handles open; the demo is done, so end the process.
      process.exit(0);
    });
}

/** The demo, stage by stage (each in cli/demo/). */
export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const t0 = performance.now();
  const datasetName = DATASET_ALIASES[o.dataset];
  if (!datasetName) throw new FedmarkError('DEMO_DATASET', `unknown dataset "${o.dataset}": use bank or telco`);
  if (!(o.partners >= 2 && o.partners <= 50)) throw new FedmarkError('DEMO_PARTNERS', '--partners must be between 2 and 50');
  if (!['logistic', 'mlp', 'gbdt'].includes(o.model)) throw new FedmarkError('DEMO_MODEL', `unknown model "${o.model}": use logistic, mlp or gbdt`);
  if (!(o.rounds >= 1)) throw new FedmarkError('DEMO_ROUNDS', '--rounds must be at least 1');
  const out = resolve(o.out ?? join(tmpdir(), `fedmark-demo-${Date.now()}`));
  for (const sub of ['keys', 'logs', 'partners', 'coordinator']) mkdirSync(join(out, sub), { recursive: true });
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const backend = await initBackend({ log: (m) => say(`[fedmark] ${m}`) });

  const setup = await setUpDemo(o, datasetName, out, say);
  const { manifest, names, plan } = setup;
  const procs = await startProcesses(setup, out, o.seed);
  try {
    const { result, perRoundAuc } = await followJob(setup, procs.url, out, say);
    const codes = await Promise.all(procs.partners.map((c) => waitExit(c, 60_000)));
    codes.forEach((code, i) => code !== 0 && say(`[fedmark] warning: ${names[i]} exited with code ${code}; see ${join(out, 'logs', `${names[i]}.log`)}`));

    const baselines = await trainBaselines(setup, o.rounds, o.seed);
    const modelPath = await saveJobModel(out, manifest, result.finalState, { jobId: manifest.jobId, dataset: datasetName, modelHash: result.modelHash });
    say(`model: ${modelPath}`);
    const epsilon = partnerEpsilons(setup, out);
    const bytesPerParam = readBytesPerValue(out, setup.workload, manifest);

    const { audit, entries } = auditDemo(setup, out, say);
    const report = await writeDemoReport(setup, out, { result, audit, entries, bytesPerParam });
    say(`report: ${report.htmlPath}`);
    say(`model card: ${report.modelCardPath}`);
    const summary: DemoSummary = {
      dataset: datasetName,
      partners: o.partners,
      model: o.model,
      rounds: manifest.rounds,
      backend,
      auc: {
        federated: baselines.aucOf(result.finalState),
        federatedFromHistograms: result.finalMetrics?.auc ?? NaN,
        centralized: baselines.centralized,
        local: baselines.local,
      },
      perRoundAuc,
      encryption:
        manifest.encryption.scheme === 'ckks'
          ? {
              scheme: 'ckks',
              polyModulusDegree: manifest.encryption.polyModulusDegree,
              coeffModulusBits: manifest.encryption.coeffModulusBits,
              wireBytesPerParameter: bytesPerParam,
            }
          : manifest.encryption.scheme === 'secagg-bfv'
            ? {
                scheme: 'secagg-bfv',
                polyModulusDegree: manifest.encryption.bfv.polyModulusDegree,
                coeffModulusBits: manifest.encryption.bfv.coeffModulusBits,
                wireBytesPerParameter: bytesPerParam,
              }
            : { scheme: 'plain-insecure', wireBytesPerParameter: bytesPerParam },
      privacy: plan ? { delta: plan.delta, epsilon, noiseMultiplier: plan.noiseMultiplier, clipNorm: plan.clipNorm, targetEpsilon: plan.targetEpsilon } : null,
      audit: { ok: audit.ok, findings: audit.findings },
      report: report.htmlPath,
      out,
      wallSeconds: (performance.now() - t0) / 1000,
    };
    writeFileSync(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
    printTable(summary, say);
    return summary;
  } finally {
    procs.cleanup();
  }
}
