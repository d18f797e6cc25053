import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { earlyStoppingSchema, localTrainingSchema, parseManifest, MANIFEST_SCHEMA_VERSION } from '../../src/federation/manifest.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { loadSchema } from '../../src/data/schema.ts';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { registerJobCommand } from '../../cli/job-command.ts';
import { registerSimulateCommand } from '../../cli/simulate-command.ts';
import { TRAINING_FLAGS, withTrainingOptions } from '../../cli/training-options.ts';

/** Every training field of the manifest, walked from its schema: a field added without a flag fails here. */
const manifestTrainingFields = [
  ...Object.keys(localTrainingSchema.shape).map((k) => `localTraining.${k}`),
  ...Object.keys(earlyStoppingSchema.shape).map((k) => `evaluation.earlyStopping.${k}`),
  'evaluation.everyRound',
  'dp.clipNorm',
  'strategy',
];

function longFlags(cmd: Command): Set<string> {
  return new Set(cmd.options.map((o) => o.long!));
}

describe('fedmark job run and fedmark simulate expose every training option of the manifest', () => {
  const program = new Command();
  registerJobCommand(program);
  registerSimulateCommand(program);
  const jobRun = program.commands.find((c) => c.name() === 'job')!.commands.find((c) => c.name() === 'run')!;
  const sim = program.commands.find((c) => c.name() === 'simulate')!;

  it.each(manifestTrainingFields)('%s has a flag on both commands', (field) => {
    const entry = (TRAINING_FLAGS as Record<string, readonly [string, string, string]>)[field];
    expect(entry, `${field} has no entry in TRAINING_FLAGS (cli/training-options.ts)`).toBeDefined();
    const flag = `--${entry[1].split(' ')[0]}`;
    expect(longFlags(jobRun).has(flag), `job run lacks ${flag}`).toBe(true);
    expect(longFlags(sim).has(flag), `simulate lacks ${flag}`).toBe(true);
  });

  it('the flags land in the manifest partners review, and a bad value is named', async () => {
    const schema = await loadSchema('data/telco-churn.schema.json');
    const preset = jobPreset({ jobId: 'flags', schema, partners: 2, rounds: 6, epsilon: 3 });
    const job = withTrainingOptions(preset, { earlyStopEvery: '2', patience: '1', minDelta: '0.002', selectMetric: 'logLoss', strategy: '{"name":"fedyogi"}' });
    const m = parseManifest({
      ...job,
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      createdAt: new Date(0).toISOString(),
      owner: publicIdentity(generateIdentity('o')),
      partners: [generateIdentity('a'), generateIdentity('b')].map(publicIdentity),
    });
    expect(m.evaluation.earlyStopping).toEqual({ every: 2, patience: 1, minDelta: 0.002, metric: 'logLoss' });
    expect(m.strategy.name).toBe('fedyogi');
    expect(() => withTrainingOptions(preset, { patience: '2' })).toThrow(/--early-stop-every/);
    expect(withTrainingOptions(preset, { optimizer: 'momentum', momentum: '0.8' }).localTraining).toMatchObject({ optimizer: 'momentum', momentum: 0.8 });
    expect(() => withTrainingOptions(preset, { momentum: '0.8' })).toThrow(/--optimizer momentum/);
    const declared = withTrainingOptions(preset, { declaredRows: '1000,3000' }).localTraining;
    expect(declared).toMatchObject({ declaredRows: 2000, samplingRate: 128 / 2000 });
    expect(() => withTrainingOptions(preset, { declaredRows: '1000', samplingRate: '0.1' })).toThrow(/give one/);
    expect(() => withTrainingOptions(preset, { declaredRows: '0' })).toThrow(/≥ 1/);
    expect(() => withTrainingOptions(preset, { optimizer: 'momentum', momentum: '1' })).toThrow(/\[0, 1\)/);
    expect(() => withTrainingOptions(preset, { earlyStopEvery: '2', selectMetric: 'f1' })).toThrow(/early stopping: metric/);
  });
});
