import type { Command } from 'commander';
import { epsilonFor } from '../src/privacy/accountant.ts';
import { computeRdp, DEFAULT_ORDERS, rdpToEpsilon } from '../src/privacy/analysis/rdp.ts';
import { calibrateNoiseMultiplier } from '../src/privacy/calibrate.ts';
import { FedmarkError } from '../src/errors.ts';

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
      if (o.accountant !== 'rdp' && o.accountant !== 'pld') throw new FedmarkError('CLI_BAD_ACCOUNTANT', `--accountant must be rdp or pld, got "${o.accountant}"`);
      let out: Record<string, unknown>;
      if (o.accountant === 'rdp') {
        const rdp = computeRdp(o.samplingRate, o.noiseMultiplier, o.steps, DEFAULT_ORDERS);
        const { epsilon, bestOrder } = rdpToEpsilon(DEFAULT_ORDERS, rdp, o.delta);
        out = { accountant: 'rdp', epsilon, bestOrder };
      } else {
        out = { accountant: 'pld', epsilon: epsilonFor({ samplingRate: o.samplingRate, noiseMultiplier: o.noiseMultiplier, steps: o.steps, delta: o.delta, accountant: 'pld' }) };
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
      if (o.json) process.stdout.write(`${JSON.stringify({ noiseMultiplier: sigma, epsilon: achieved, targetEpsilon: o.epsilon, delta: o.delta, samplingRate: o.samplingRate, steps: o.steps })}\n`);
      else process.stdout.write(`noise multiplier σ = ${sigma} (ε = ${achieved} ≤ ${o.epsilon} at δ = ${o.delta})\n`);
    });
}
