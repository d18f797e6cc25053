import type { EarlyStopping, JobManifest } from '../../src/federation/manifest.ts';
import type { ModelSpec } from '../../src/model/spec.ts';

/** A training recipe: whether features are standardised by a feature-statistics job first, and the server strategy. */
export interface Recipe {
  name: string;
  description: string;
  /** Run a feature-stats job (10% of ε) and standardise the numeric features with its release. */
  standardize: boolean;
  /** The server strategy; absent: the preset's (FedAvg, server lr 1). */
  strategy?: JobManifest['strategy'];
  /** The model; absent: the preset's logistic regression. */
  model?: ModelSpec;
  /** Checkpoint evaluations, early stopping and selection (each checkpoint a charged release with DP). */
  earlyStopping?: EarlyStopping;
  /** Run by default (the rest with --recipes or --all). */
  default: boolean;
}

const fedavgmCosine: JobManifest['strategy'] = { name: 'fedavgm', serverLr: 1, momentum: 0.9, schedule: { kind: 'cosine', minFactor: 0.05, warmupRounds: 0 } };

export const RECIPES: Recipe[] = [
  { name: 'preset', description: 'jobPreset as shipped: schema-bound scaling, FedAvg server lr 1', standardize: false, default: true },
  { name: 'standardized', description: 'feature-stats job (ε·0.1), standardised numeric features, then jobPreset at ε·0.9', standardize: true, default: true },
  {
    name: 'standardized-mlp',
    description: 'as standardized, with an MLP (one hidden layer of 16 ReLU units) instead of LR',
    standardize: true,
    model: { kind: 'mlp', hidden: [16], activation: 'relu' },
    default: true,
  },
  {
    name: 'mlp',
    description: 'jobPreset with an MLP (one hidden layer of 16 ReLU units), schema-bound scaling',
    standardize: false,
    model: { kind: 'mlp', hidden: [16], activation: 'relu' },
    default: false,
  },
  {
    // Settings fixed before any run (not tuned): a checkpoint every 4 of 20 rounds, stop after 2 without improvement.
    name: 'standardized-early-stop',
    description: 'as standardized, with a checkpoint every 4 rounds, patience 2, min-delta 0.001 (AUC), best checkpoint released',
    standardize: true,
    earlyStopping: { every: 4, patience: 2, minDelta: 0.001, metric: 'auc' },
    default: true,
  },
  {
    name: 'standardized-fedavgm-cosine',
    description: 'standardised, FedAvgM 0.9 with cosine decay to 0.05',
    standardize: true,
    strategy: fedavgmCosine,
    default: false,
  },
  {
    name: 'standardized-fedyogi',
    description: 'standardised, FedYogi server lr 0.05',
    standardize: true,
    strategy: { name: 'fedyogi', serverLr: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 },
    default: false,
  },
  {
    name: 'fedavgm-0.9',
    description: 'FedAvgM: server momentum 0.9, server lr 1',
    standardize: false,
    strategy: { name: 'fedavgm', serverLr: 1, momentum: 0.9 },
    default: false,
  },
  { name: 'fedavgm-0.9-cosine', description: 'FedAvgM 0.9, cosine decay to 0.05', standardize: false, strategy: fedavgmCosine, default: false },
  {
    name: 'fedyogi-0.05',
    description: 'FedYogi server lr 0.05 (β₁ 0.9, β₂ 0.99, τ 1e-3)',
    standardize: false,
    strategy: { name: 'fedyogi', serverLr: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 },
    default: false,
  },
  {
    name: 'fedadam-0.05',
    description: 'FedAdam server lr 0.05 (β₁ 0.9, β₂ 0.99, τ 1e-3)',
    standardize: false,
    strategy: { name: 'fedadam', serverLr: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 },
    default: false,
  },
];
