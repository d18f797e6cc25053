import { sha256Canonical } from '../privacy/ledger/canonical.ts';
import { bandLabels, featureNames, OTHER_BUCKET, type DatasetSchema } from '../data/schema.ts';
import { DEFAULT_HE_PARAMS } from '../crypto/index.ts';
import { FedmarkError } from '../errors.ts';
import type { ModelSpec } from '../model/spec.ts';
import type { EarlyStopping, EncryptionSpec, JobManifest, ManifestModel } from './manifest.ts';
import { privacyTarget, trainingRecipe, type TrainingRecipe } from './presets/recipes.ts';
import { gbdtJobPreset } from './workloads/gbdt/preset.ts';
import { declaredMeanRows, samplingRateForDeclaredRows } from './presets/declared-sampling.ts';

/** sha256 of the canonical schema: partners refuse a job defined for another schema. */
export function schemaHash(schema: DatasetSchema): string {
  return sha256Canonical(schema);
}

/** Fairness segments come from the schema's declarations, never from the data. */
export function sensitiveGroups(schema: DatasetSchema): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const c of schema.columns) {
    if (!('type' in c) || !c.sensitive) continue;
    if (c.type === 'categorical') out[c.name] = [...c.values, OTHER_BUCKET];
    else if (c.type === 'boolean') out[c.name] = ['true', 'false'];
    else if (c.type === 'numeric' && c.groups) out[c.name] = bandLabels(c.groups);
  }
  return out;
}

/** Columns a job reads (a partner's policy must allow each). */
export function usedColumns(schema: DatasetSchema): string[] {
  return schema.columns.filter((c) => !('role' in c) || c.role === 'label' || c.role === 'consent').map((c) => c.name);
}

export interface JobPresetOptions {
  jobId: string;
  purpose?: string;
  schema: DatasetSchema;
  partners: number;
  rounds?: number;
  /** The model; `{ kind: 'gbdt' }` delegates to the trees' preset (workloads/gbdt/preset.ts, its default settings). */
  model?: ModelSpec | Extract<ManifestModel, { kind: 'gbdt' }>;
  /** null = no differential privacy. */
  epsilon?: number | null;
  delta?: number;
  encryption?: EncryptionSpec;
  seed?: number;
  strategy?: JobManifest['strategy'];
  /** Score histograms of every round, not only of the final model (default: only without DP — with DP each costs budget). */
  evaluateEveryRound?: boolean;
  /** Checkpoint evaluations, early stopping and selection of the released round (each checkpoint a planned, charged release with DP). */
  earlyStopping?: EarlyStopping;
  /**
   * Training rows per partner as the partners declared them (one mean, or one per partner; never
   * measured). With DP the sampling rate becomes min(1, batchSize / mean) instead of the recipe's
   * fixed rate, and the mean is recorded as localTraining.declaredRows (presets/declared-sampling.ts).
   */
  declaredRows?: number | readonly number[];
}

/** Score-histogram bins of a DP job's evaluation (1,000 without DP). */
export const DP_EVALUATION_BINS = 50;

export { NON_PRIVATE_TRAINING } from './presets/recipes.ts';

/** The training recipe `jobPreset` applies for these options: by model kind and privacy target (presets/recipes.ts). */
export function presetRecipe(o: Pick<JobPresetOptions, 'model' | 'epsilon'>): TrainingRecipe {
  const kind = o.model?.kind ?? 'logistic';
  if (kind === 'gbdt')
    throw new FedmarkError(
      'PRESET_INVALID',
      'gradient-boosted trees take their settings from the gbdt preset (workloads/gbdt/preset.ts), not a training recipe',
    );
  return trainingRecipe(kind, privacyTarget(o.epsilon === undefined ? 3 : o.epsilon));
}

type PresetManifest = Omit<JobManifest, 'owner' | 'partners' | 'schemaVersion' | 'createdAt'>;

/**
 * Sensible defaults for a marketing model job, by model kind and privacy target: logistic
 * regression unless `model` says otherwise, FedAvg, DP-SGD calibrated to ε = 3 at δ = 1e-5 unless
 * `epsilon` says otherwise (null: no DP), CKKS aggregation; rounds, local training, clipping and
 * early stopping from `presetRecipe` (docs/MODELS.md says which run chose each). Explicit options
 * win over the recipe. Trees (`model: { kind: 'gbdt' }`) get `gbdtJobPreset`'s defaults.
 */
export function jobPreset(o: JobPresetOptions): PresetManifest {
  const model = o.model;
  if (model?.kind === 'gbdt') {
    const { model: _model, rounds: _rounds, ...rest } = o;
    return gbdtJobPreset(rest);
  }
  const recipe = presetRecipe(o);
  const dp =
    o.epsilon === null
      ? null
      : {
          targetEpsilon: o.epsilon ?? 3,
          delta: o.delta ?? 1e-5,
          clipNorm: recipe.clipNorm,
          noiseMultiplier: 'calibrate' as const,
          accountant: 'rdp' as const,
          split: { weight: 0.02, evaluation: 0.1 },
        };
  const earlyStopping = o.earlyStopping ?? recipe.earlyStopping;
  const localTraining: JobManifest['localTraining'] = { ...recipe.localTraining };
  if (o.declaredRows !== undefined && dp) {
    localTraining.declaredRows = declaredMeanRows(o.declaredRows);
    localTraining.samplingRate = samplingRateForDeclaredRows(localTraining.declaredRows, localTraining.batchSize);
  }
  return {
    jobId: o.jobId,
    purpose: o.purpose ?? 'propensity-model',
    dataset: {
      name: o.schema.name,
      columns: usedColumns(o.schema),
      featureNames: featureNames(o.schema),
      schemaHash: schemaHash(o.schema),
      sensitiveColumns: Object.keys(sensitiveGroups(o.schema)),
    },
    workload: { kind: 'sgd', params: {} },
    model: model ?? { kind: 'logistic' },
    rounds: o.rounds ?? recipe.rounds,
    partnersPerRound: o.partners,
    quorum: Math.max(1, Math.ceil(o.partners * 0.6)),
    roundDeadlineSeconds: 120,
    strategy: o.strategy ?? { name: 'fedavg', serverLr: 1 },
    // A copy: callers may edit a manifest's sections, and the recipe's objects are shared constants.
    localTraining,
    dp,
    encryption: o.encryption ?? DEFAULT_HE_PARAMS,
    // DP noise is added to every bin, so a DP job's histograms are coarser: fewer cells of noise per count.
    evaluation: {
      bins: dp ? DP_EVALUATION_BINS : 1000,
      segments: sensitiveGroups(o.schema),
      ...(o.evaluateEveryRound === undefined ? {} : { everyRound: o.evaluateEveryRound }),
      ...(earlyStopping ? { earlyStopping } : {}),
    },
    seed: o.seed ?? 42,
  };
}
