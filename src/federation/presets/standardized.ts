import { isFeature, isTypedColumn, type DatasetSchema } from '../../data/schema.ts';
import { FedmarkError } from '../../errors.ts';
import { jobPreset, presetRecipe, type JobPresetOptions } from '../job-presets.ts';
import type { JobManifest } from '../manifest.ts';
import type { FeatureStats } from '../workloads/feature-stats/index.ts';

type PresetManifest = ReturnType<typeof jobPreset>;

/** The encoded feature names of the schema's numeric feature columns: what feature statistics standardise (one-hot columns are already 0/1). */
export function numericFeatureColumns(schema: DatasetSchema): string[] {
  return schema.columns.filter((c) => isTypedColumn(c) && c.type === 'numeric' && isFeature(c)).map((c) => c.name);
}

/** Share of a job's ε the feature-statistics release takes by default; training gets the rest (budgets add across the two jobs). */
export const DEFAULT_STATS_SHARE = 0.1;

/**
 * A standardised training plan (issue 16): a one-round `feature-stats` job releasing the noisy mean
 * and standard deviation of every numeric feature (ε · statsShare per partner), then the training
 * job — `jobPreset` with ε · (1 − statsShare) — standardising those columns with the released values
 * (`withStandardization`). The two jobs' ε add up to the requested ε per partner (basic composition,
 * never less than what the two accountants record).
 */
export function featureStatsPreset(o: JobPresetOptions & { statsShare?: number }): PresetManifest {
  const columns = numericFeatureColumns(o.schema);
  if (columns.length === 0) throw new FedmarkError('PRESET_INVALID', `schema "${o.schema.name}" has no numeric feature column to standardise`);
  const share = o.statsShare ?? DEFAULT_STATS_SHARE;
  if (!(share > 0 && share < 1)) throw new FedmarkError('PRESET_INVALID', `statsShare must be in (0, 1), got ${share}`);
  const base = jobPreset({ ...o, jobId: o.jobId, rounds: 1 });
  const eps = o.epsilon === null ? null : (o.epsilon ?? 3) * share;
  return {
    ...base,
    purpose: 'feature-statistics',
    workload: { kind: 'feature-stats', params: { columns } },
    rounds: 1,
    quorum: o.partners,
    dp: base.dp && eps !== null ? { ...base.dp, targetEpsilon: eps } : null,
    evaluation: { bins: base.evaluation.bins, segments: {} },
  };
}

/** The training job of the plan: `jobPreset` at ε · (1 − statsShare). */
export function standardizedTrainingPreset(o: JobPresetOptions & { statsShare?: number }, stats: FeatureStats): PresetManifest {
  const share = o.statsShare ?? DEFAULT_STATS_SHARE;
  // The recipe follows the plan's whole ε, not the training job's share of it.
  const job = jobPreset({ ...o, rounds: o.rounds ?? presetRecipe(o).rounds, epsilon: o.epsilon === null ? null : (o.epsilon ?? 3) * (1 - share) });
  return withStandardization(job, stats);
}

/** A job that standardises the released statistics' columns before training. */
export function withStandardization<J extends Pick<JobManifest, 'workload'>>(job: J, stats: FeatureStats): J {
  if (stats.mean.length !== stats.columns.length || stats.std.length !== stats.columns.length) {
    throw new FedmarkError('PRESET_INVALID', 'feature statistics have no estimates yet (the statistics round has not run)');
  }
  if (job.workload.kind !== 'sgd') throw new FedmarkError('PRESET_INVALID', `standardisation applies to the sgd workload, not "${job.workload.kind}"`);
  return { ...job, workload: { kind: 'sgd', params: { ...job.workload.params, standardize: { columns: stats.columns, mean: stats.mean, std: stats.std } } } };
}
