import { featureLayout } from '../../../trees/index.ts';
import { jobPreset, type JobPresetOptions } from '../../job-presets.ts';
import type { JobManifest } from '../../manifest.ts';
import { gbdtSteps, type GbdtWorkloadParams } from './settings.ts';

export interface GbdtJobPresetOptions extends Omit<JobPresetOptions, 'model' | 'rounds'> {
  /** GBDT settings (src/trees parameters, `dp` tuning, `heUnit`); the layout comes from the schema. Default: the defaults of the privacy regime. */
  gbdt?: Omit<GbdtWorkloadParams, 'layout'>;
}

/**
 * A gradient-boosted trees job with sensible defaults: the schema's feature layout, the privacy
 * regime's GBDT defaults (cyclic additive terms with DP, 100 depth-4 trees without), ε = 3 at
 * δ = 1e-5 per partner unless `epsilon` says otherwise, CKKS aggregation. The SGD sections of the
 * manifest (`localTraining`, `strategy`) keep the preset's values and are ignored by the workload.
 */
export function gbdtJobPreset(o: GbdtJobPresetOptions): Omit<JobManifest, 'owner' | 'partners' | 'schemaVersion' | 'createdAt'> {
  const base = jobPreset(o);
  const dp = base.dp ? { ...base.dp, clipNorm: 1 } : null;
  const params: GbdtWorkloadParams = { ...o.gbdt, layout: featureLayout(o.schema) };
  return {
    ...base,
    model: { kind: 'gbdt' },
    workload: { kind: 'gbdt', params: params as unknown as Record<string, unknown> },
    rounds: gbdtSteps(params, dp, base.quorum),
    dp,
  };
}
