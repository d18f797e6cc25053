import type { Command } from 'commander';
import { FedmarkError } from '../src/errors.ts';
import type { jobPreset } from '../src/federation/job-presets.ts';
import { declaredMeanRows, samplingRateForDeclaredRows } from '../src/federation/presets/declared-sampling.ts';
import { earlyStoppingSchema, strategySpecSchema, type StrategySpec } from '../src/federation/manifest.ts';

/**
 * The training options `fedmark job run` and `fedmark simulate` share: every field of the manifest's
 * local training, the server strategy, the DP-SGD clip norm and the evaluation schedule (per-round
 * evaluation, early stopping and selection) has one flag, defined once here. A test walks the
 * manifest schema against TRAINING_FLAGS, so a new manifest field without a flag fails CI.
 */

type Preset = ReturnType<typeof jobPreset>;
type Opts = Record<string, string | string[] | boolean | undefined>;

/** Manifest field → [commander option key, flag, help]. */
export const TRAINING_FLAGS = {
  'localTraining.epochs': ['epochs', 'epochs <n>', 'local training epochs per round (default: 1)'],
  'localTraining.batchSize': ['batchSize', 'batch-size <n>', 'local minibatch size (default: 128 with DP, 32 without)'],
  'localTraining.learningRate': ['learningRate', 'learning-rate <lr>', 'local learning rate (default: 0.5)'],
  'localTraining.optimizer': ['optimizer', 'optimizer <name>', 'local optimizer: sgd, momentum (heavy-ball) or adam (default: sgd)'],
  'localTraining.momentum': ['momentum', 'momentum <beta>', 'heavy-ball β of --optimizer momentum (default: 0.9)'],
  'localTraining.l2': ['l2', 'l2 <lambda>', 'L2 penalty of local training (default: 0)'],
  'localTraining.samplingRate': ['samplingRate', 'sampling-rate <q>', 'DP-SGD Poisson sampling rate per step (default: 0.02; DP jobs only)'],
  'localTraining.declaredRows': [
    'declaredRows',
    'declared-rows <n[,n…]>',
    'training rows per partner as declared (mean, or one per partner): DP-SGD samples q = batch size / mean (DP jobs only)',
  ],
  'dp.clipNorm': ['clipNorm', 'clip-norm <c>', 'DP-SGD per-example clip norm (default: 1; DP jobs only)'],
  strategy: ['strategy', 'strategy <json>', 'server strategy, e.g. {"name":"fedyogi","serverLr":0.05} or {"name":"fedavg","schedule":{"kind":"cosine"}}'],
  'evaluation.everyRound': ['evaluateEveryRound', 'evaluate-every-round', 'score every training round’s model (each a charged release with DP)'],
  'evaluation.earlyStopping.every': [
    'earlyStopEvery',
    'early-stop-every <k>',
    'score the model after every k-th round (a checkpoint; a charged release with DP) and select the best',
  ],
  'evaluation.earlyStopping.patience': [
    'patience',
    'patience <n>',
    'with --early-stop-every: stop after n checkpoints without improvement (default: never stop, only select)',
  ],
  'evaluation.earlyStopping.minDelta': ['minDelta', 'min-delta <d>', 'with --early-stop-every: the improvement a checkpoint must beat (default: 0)'],
  'evaluation.earlyStopping.metric': ['selectMetric', 'select-metric <m>', 'with --early-stop-every: auc or logLoss (default: auc)'],
} as const;

/** Adds every training flag to a command. */
export function addTrainingOptions(cmd: Command): Command {
  for (const [, flag, help] of Object.values(TRAINING_FLAGS)) cmd.option(`--${flag}`, help);
  return cmd;
}

/** The training flags given on the command line, as `--flag` (e.g. to refuse them for a gbdt job). */
export function givenTrainingFlags(o: Opts): string[] {
  return Object.values(TRAINING_FLAGS)
    .filter(([key]) => o[key] !== undefined)
    .map(([, flag]) => `--${flag.split(' ')[0]}`);
}

function num(flag: string, v: unknown): number {
  const x = Number(v);
  if (!Number.isFinite(x)) throw new FedmarkError('CLI_BAD_NUMBER', `--${flag} must be a number, got "${String(v)}"`);
  return x;
}

export function parseStrategy(text: string): StrategySpec {
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

/**
 * The training flags over a logistic/MLP preset (which has sensible defaults for private and
 * non-private jobs); the manifest schema then validates them, naming a bad value.
 */
export function withTrainingOptions(preset: Preset, o: Opts): Preset {
  const lt = { ...preset.localTraining };
  if (o.epochs !== undefined) lt.epochs = num('epochs', o.epochs);
  if (o.batchSize !== undefined) lt.batchSize = num('batch-size', o.batchSize);
  if (o.learningRate !== undefined) lt.learningRate = num('learning-rate', o.learningRate);
  if (o.l2 !== undefined) lt.l2 = num('l2', o.l2);
  if (o.optimizer !== undefined) {
    if (o.optimizer !== 'sgd' && o.optimizer !== 'momentum' && o.optimizer !== 'adam')
      throw new FedmarkError('CLI_BAD_OPTION', `--optimizer must be sgd, momentum or adam, got "${String(o.optimizer)}"`);
    lt.optimizer = o.optimizer;
  }
  if (o.momentum !== undefined) {
    if (lt.optimizer !== 'momentum') throw new FedmarkError('CLI_BAD_OPTION', '--momentum is the β of --optimizer momentum: give that too');
    const beta = num('momentum', o.momentum);
    if (!(beta >= 0 && beta < 1)) throw new FedmarkError('CLI_BAD_OPTION', `--momentum must be in [0, 1), got ${beta}`);
    lt.momentum = beta;
  }
  if ((o.samplingRate !== undefined || o.clipNorm !== undefined) && !preset.dp) {
    throw new FedmarkError('CLI_BAD_OPTION', '--sampling-rate and --clip-norm are DP-SGD settings: this job runs without DP (--no-dp)');
  }
  if (o.declaredRows !== undefined && !preset.dp)
    throw new FedmarkError('CLI_BAD_OPTION', '--declared-rows sets DP-SGD’s sampling rate: this job runs without DP (--no-dp)');
  if (o.declaredRows !== undefined && o.samplingRate !== undefined)
    throw new FedmarkError('CLI_BAD_OPTION', '--declared-rows and --sampling-rate both set the sampling rate: give one');
  if (o.samplingRate !== undefined) {
    lt.samplingRate = num('sampling-rate', o.samplingRate);
    delete lt.declaredRows;
  }
  if (o.declaredRows !== undefined) {
    lt.declaredRows = declaredMeanRows(
      String(o.declaredRows)
        .split(',')
        .map((x) => num('declared-rows', x)),
    );
    lt.samplingRate = samplingRateForDeclaredRows(lt.declaredRows, lt.batchSize);
  } else if (lt.declaredRows !== undefined && o.batchSize !== undefined) {
    lt.samplingRate = samplingRateForDeclaredRows(lt.declaredRows, lt.batchSize);
  }
  const dp = preset.dp && o.clipNorm !== undefined ? { ...preset.dp, clipNorm: num('clip-norm', o.clipNorm) } : preset.dp;
  const strategy = typeof o.strategy === 'string' ? parseStrategy(o.strategy) : preset.strategy;
  return { ...preset, localTraining: lt, dp, strategy, evaluation: withEvaluationOptions(preset.evaluation, o) };
}

function withEvaluationOptions(evaluation: Preset['evaluation'], o: Opts): Preset['evaluation'] {
  const out = { ...evaluation };
  if (o.evaluateEveryRound !== undefined) out.everyRound = o.evaluateEveryRound === true;
  const sub = [o.patience, o.minDelta, o.selectMetric].some((v) => v !== undefined);
  if (o.earlyStopEvery === undefined) {
    if (sub) throw new FedmarkError('CLI_BAD_OPTION', '--patience, --min-delta and --select-metric refine --early-stop-every: give it too');
    return out;
  }
  const parsed = earlyStoppingSchema.safeParse({
    every: num('early-stop-every', o.earlyStopEvery),
    ...(o.patience !== undefined ? { patience: num('patience', o.patience) } : {}),
    ...(o.minDelta !== undefined ? { minDelta: num('min-delta', o.minDelta) } : {}),
    ...(o.selectMetric !== undefined ? { metric: o.selectMetric } : {}),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError('CLI_BAD_OPTION', `early stopping: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  out.earlyStopping = parsed.data;
  return out;
}
