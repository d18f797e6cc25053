import type { Command } from 'commander';
import { epsilonFor } from '../src/privacy/accountant.ts';
import { computeRdp, DEFAULT_ORDERS, rdpToEpsilon } from '../src/privacy/analysis/rdp.ts';
import { calibrateNoiseMultiplier } from '../src/privacy/calibrate.ts';
import { FedmarkError } from '../src/errors.ts';
import { existsSync, readFileSync } from 'node:fs';
import { BudgetStore } from '../src/privacy/budget/store.ts';
import { rebuildFromLedger } from '../src/privacy/budget/reconcile.ts';
import { verifyLedger } from '../src/privacy/ledger/verify.ts';
import { readLedger } from '../src/privacy/ledger/reader.ts';
import { loadPolicy } from '../src/privacy/policy.ts';
import { parseManifest } from '../src/federation/manifest.ts';
import { builtinWorkloads } from '../src/federation/workloads/index.ts';
import { formatReleaseCosts, releaseCosts } from '../src/federation/release-cost.ts';
import { planDp } from '../src/federation/workloads/sgd/dp-plan.ts';

function num(name: string) {
  return (v: string) => {
    const x = Number(v);
    if (!Number.isFinite(x)) throw new FedmarkError('CLI_BAD_NUMBER', `--${name} must be a number, got "${v}"`);
    return x;
  };
}

export function registerPrivacyCommands(program: Command): void {
  const privacy = program.command('privacy').description('privacy accounting for the Poisson-subsampled Gaussian mechanism (DP-SGD)');
  privacy
    .command('epsilon')
    .description('ε spent by T steps of DP-SGD at sampling rate Q and noise multiplier S')
    .requiredOption('--sampling-rate <q>', 'Poisson sampling rate', num('sampling-rate'))
    .requiredOption('--noise-multiplier <s>', 'noise multiplier σ', num('noise-multiplier'))
    .requiredOption('--steps <t>', 'number of steps', num('steps'))
    .requiredOption('--delta <d>', 'δ', num('delta'))
    .option('--accountant <kind>', 'rdp or pld', 'rdp')
    .option('--json', 'print JSON', false)
    .action((o: { samplingRate: number; noiseMultiplier: number; steps: number; delta: number; accountant: string; json: boolean }) => {
      if (o.accountant !== 'rdp' && o.accountant !== 'pld')
        throw new FedmarkError('CLI_BAD_ACCOUNTANT', `--accountant must be rdp or pld, got "${o.accountant}"`);
      let out: Record<string, unknown>;
      if (o.accountant === 'rdp') {
        const rdp = computeRdp(o.samplingRate, o.noiseMultiplier, o.steps, DEFAULT_ORDERS);
        const { epsilon, bestOrder } = rdpToEpsilon(DEFAULT_ORDERS, rdp, o.delta);
        out = { accountant: 'rdp', epsilon, bestOrder };
      } else {
        out = {
          accountant: 'pld',
          epsilon: epsilonFor({ samplingRate: o.samplingRate, noiseMultiplier: o.noiseMultiplier, steps: o.steps, delta: o.delta, accountant: 'pld' }),
        };
      }
      const full = { samplingRate: o.samplingRate, noiseMultiplier: o.noiseMultiplier, steps: o.steps, delta: o.delta, ...out };
      if (o.json) process.stdout.write(`${JSON.stringify(full)}\n`);
      else process.stdout.write(`ε = ${out.epsilon} at δ = ${o.delta}${out.bestOrder !== undefined ? ` (RDP, best order ${out.bestOrder})` : ' (PLD)'}\n`);
    });
  privacy
    .command('calibrate')
    .description('the smallest noise multiplier that keeps T steps at sampling rate Q within (ε, δ)')
    .requiredOption('--epsilon <e>', 'target ε', num('epsilon'))
    .requiredOption('--delta <d>', 'δ', num('delta'))
    .requiredOption('--sampling-rate <q>', 'Poisson sampling rate', num('sampling-rate'))
    .requiredOption('--steps <t>', 'number of steps', num('steps'))
    .option('--json', 'print JSON', false)
    .action((o: { epsilon: number; delta: number; samplingRate: number; steps: number; json: boolean }) => {
      const sigma = calibrateNoiseMultiplier({ targetEpsilon: o.epsilon, delta: o.delta, samplingRate: o.samplingRate, steps: o.steps });
      const achieved = epsilonFor({ samplingRate: o.samplingRate, noiseMultiplier: sigma, steps: o.steps, delta: o.delta, accountant: 'rdp' });
      if (o.json)
        process.stdout.write(
          `${JSON.stringify({ noiseMultiplier: sigma, epsilon: achieved, targetEpsilon: o.epsilon, delta: o.delta, samplingRate: o.samplingRate, steps: o.steps })}\n`,
        );
      else process.stdout.write(`noise multiplier σ = ${sigma} (ε = ${achieved} ≤ ${o.epsilon} at δ = ${o.delta})\n`);
    });
  privacy
    .command('rebuild-budget')
    .description(
      "add to a partner's privacy budget store every charge its own signed ledger records (after the store was lost or reset); never removes a charge",
    )
    .requiredOption('--ledger <file>', "the partner's own ledger (<state-dir>/<name>.ledger.jsonl)")
    .requiredOption('--budget <file>', 'the budget store to rebuild (<state-dir>/privacy-budget.json; created if missing)')
    .requiredOption('--policy <file>', "the partner's policy (its datasetId and δ limit)")
    .option('--json', 'print JSON', false)
    .action((o: { ledger: string; budget: string; policy: string; json: boolean }) => {
      if (!existsSync(o.ledger)) throw new FedmarkError('LEDGER_NOT_FOUND', `${o.ledger}: no such ledger`);
      const policy = loadPolicy(o.policy);
      const v = verifyLedger(readLedger(o.ledger));
      const self = v.keyRing.kind === 'local' ? v.keyRing.ownerKeyId : undefined;
      if (!self) throw new FedmarkError('NOT_A_PARTNER_LEDGER', `${o.ledger}: not a partner's own ledger (it must start with ledger.genesis)`);
      if (!v.ok) {
        const bad = v.findings.filter((f) => f.severity === 'error').map((f) => `${f.code}: ${f.message}`);
        throw new FedmarkError('LEDGER_NOT_INTACT', `${o.ledger} does not verify, so it cannot vouch for the budget: ${bad.slice(0, 3).join('; ')}`);
      }
      const store = BudgetStore.open(o.budget);
      const added = rebuildFromLedger(store, v.entries, self, policy.datasetId, policy.maxDelta);
      if (o.json) process.stdout.write(`${JSON.stringify({ budget: o.budget, added })}\n`);
      else
        process.stdout.write(
          `${o.budget}: added ${added.length} charge(s) from ${o.ledger}${added.length ? ` (${[...new Set(added.map((c) => c.jobId))].join(', ')})` : ''}\n`,
        );
    });
  privacy
    .command('plan')
    .description("every release a job's manifest plans per partner — noise, count and ε — before the job starts")
    .requiredOption('--manifest <file>', 'the job manifest (as `fedmark job run --manifest-only` writes it, or a signed one)')
    .option('--json', 'print JSON', false)
    .action((o: { manifest: string; json: boolean }) => {
      let raw: unknown;
      try {
        raw = JSON.parse(readFileSync(o.manifest, 'utf8'));
      } catch (err) {
        throw new FedmarkError('CLI_MANIFEST', `--manifest ${o.manifest}: ${(err as Error).message}`);
      }
      const doc = raw as { manifest?: unknown };
      const manifest = parseManifest(doc && typeof doc === 'object' && 'signature' in doc ? doc.manifest : raw);
      const cost = releaseCosts(builtinWorkloads.resolve(manifest), manifest);
      const sgd = manifest.workload.kind === 'sgd' ? planDp(manifest) : null;
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ jobId: manifest.jobId, differentiallyPrivate: cost !== null, plan: cost, split: sgd?.split ?? null })}\n`);
        return;
      }
      if (!cost) {
        process.stdout.write(`job ${manifest.jobId} is not differentially private (ε = ∞): its releases are not noised\n`);
        return;
      }
      process.stdout.write(`${formatReleaseCosts(cost)}\n`);
      if (sgd) {
        const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
        process.stdout.write(
          `budget split (share of the Rényi divergence at order ${sgd.split.order}): training ${pct(sgd.split.training)}, weight ${pct(sgd.split.weight)}, evaluation ${pct(sgd.split.evaluation)}\n`,
        );
      }
    });
}
