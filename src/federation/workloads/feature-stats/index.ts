import { z } from 'zod';
import { FedmarkError } from '../../../errors.ts';
import { calibrateNoiseMultiplier } from '../../../privacy/calibrate.ts';
import { sha256Canonical } from '../../../privacy/ledger/canonical.ts';
import { addGaussianNoiseInPlace } from '../../../privacy/noise.ts';
import { toGrid } from '../../release-grid.ts';
import type { JobManifest } from '../../manifest.ts';
import type { LocalContext, PrivacyPlan, RoundPlan, Workload } from '../../workload.ts';

/**
 * Private feature statistics (issue 16): the federated mean and standard deviation of chosen
 * encoded feature columns, in one round with every partner, so numeric features can be
 * standardised identically at every partner before training (sgd workload's `standardize`).
 *
 * Each partner clips each chosen encoded value to [−1, 1] (the encoders map numeric columns into
 * [0, 1], or [−1, 1] when centred) and sums the row vectors r = (C/√(2k+1))·(x₁…x_k, x₁²…x_k², 1)
 * over its training rows, k the number of columns: ‖r‖ ≤ C (the manifest's dp.clipNorm), so adding
 * or removing one customer moves the sum by at most C in L2 (C/ROW_UNIT as carried). With DP it adds
 * Gaussian noise of std σ·C (in the same units) to every coordinate — one plain Gaussian release (q = 1, σ, steps = 1) labelled `moments`,
 * σ calibrated to the manifest's target ε, charged by the partner runtime before the sum leaves.
 * Key holders divide the summed (Σx, Σx², n) out; the statistics are on the release grid.
 */
export const featureStatsParamsSchema = z
  .object({
    /** Encoded feature names (the manifest's dataset.featureNames) to estimate. */
    columns: z.array(z.string().min(1)).min(1),
    /** A standard deviation below this (noise, a near-constant column) is replaced by 1: the column is centred, not scaled. */
    minStd: z.number().positive().default(1e-3),
  })
  .strict();
export type FeatureStatsParams = z.infer<typeof featureStatsParamsSchema>;

export interface FeatureStats {
  /** Rows counted (noisy under DP, rounded); 0 before the round. */
  n: number;
  columns: string[];
  mean: number[];
  std: number[];
}

function params(m: JobManifest): FeatureStatsParams {
  const p = featureStatsParamsSchema.safeParse(m.workload.params);
  if (!p.success)
    throw new FedmarkError('MANIFEST_INVALID', `feature-stats: workload.params.${p.error.issues[0].path.join('.')}: ${p.error.issues[0].message}`);
  return p.data;
}

const privacyPlans = new WeakMap<JobManifest, PrivacyPlan | null>();
function privacy(m: JobManifest): PrivacyPlan | null {
  if (!privacyPlans.has(m)) {
    const dp = m.dp;
    const plan = dp
      ? {
          targetEpsilon: dp.targetEpsilon,
          delta: dp.delta,
          noiseMultiplier:
            dp.noiseMultiplier === 'calibrate'
              ? calibrateNoiseMultiplier({ targetEpsilon: dp.targetEpsilon, delta: dp.delta, samplingRate: 1, steps: 1 })
              : dp.noiseMultiplier,
          clipNorm: dp.clipNorm,
        }
      : null;
    privacyPlans.set(m, plan);
  }
  return privacyPlans.get(m)!;
}

/**
 * Sums travel in units of ROW_UNIT rows so they stay inside CKKS's value range (a partner of 4
 * million rows stays below the encoder's limit), as the SGD workload's weights do.
 */
export const ROW_UNIT = 1000;

/** Row vectors are scaled by C/√(2k+1) so each has L2 norm ≤ C (1 without DP), then by 1/ROW_UNIT. */
const scaleOf = (m: JobManifest, k: number): number => (m.dp ? m.dp.clipNorm / Math.sqrt(2 * k + 1) : 1) / ROW_UNIT;

function statsFrom(m: JobManifest, sums: Float64Array): FeatureStats {
  const { columns, minStd } = params(m);
  const k = columns.length;
  if (sums.length !== 2 * k + 1) throw new FedmarkError('AGGREGATE_SHAPE', `feature-stats: aggregate has ${sums.length} values, expected ${2 * k + 1}`);
  const s = scaleOf(m, k);
  const n = sums[2 * k] / s;
  if (!(n >= 1))
    throw new FedmarkError('AGGREGATE_EMPTY', `feature-stats: the summed row count is ${n.toFixed(1)}; too few rows (or too much noise) to estimate anything`);
  const mean: number[] = [];
  const std: number[] = [];
  for (let j = 0; j < k; j++) {
    const mu = Math.min(1, Math.max(-1, sums[j] / s / n));
    const variance = sums[k + j] / s / n - mu * mu;
    const sd = variance > minStd * minStd ? Math.sqrt(variance) : 1;
    mean.push(toGrid(mu));
    std.push(toGrid(sd));
  }
  return { n: Math.round(n), columns, mean, std };
}

export const featureStatsWorkload: Workload<FeatureStats, FeatureStats> = {
  kind: 'feature-stats',
  validate: (m) => {
    const { columns } = params(m);
    const unknown = columns.filter((c) => !m.dataset.featureNames.includes(c));
    if (unknown.length)
      throw new FedmarkError('MANIFEST_INVALID', `feature-stats: ${unknown.map((c) => `"${c}"`).join(', ')} not a feature of the job's dataset`);
    if (new Set(columns).size !== columns.length) throw new FedmarkError('MANIFEST_INVALID', 'feature-stats: workload.params.columns has duplicates');
  },
  totalRounds: () => 1,
  plan: (m): RoundPlan => {
    const dp = privacy(m);
    return {
      kind: 'moments',
      stages: ['upload'],
      parts: [{ name: 'moments', length: 2 * params(m).columns.length + 1, domain: 'real', bound: null, use: 'state' }],
      selection: 'all',
      releases: dp ? [{ label: 'moments', samplingRate: 1, noiseMultiplier: dp.noiseMultiplier, steps: 1, sensitivity: dp.clipNorm / ROW_UNIT }] : [],
      updatesState: true,
    };
  },
  privacy,
  initialState: (m) => ({ n: 0, columns: params(m).columns, mean: [], std: [] }),
  hash: (s) => sha256Canonical(s),
  local: async (ctx: LocalContext<FeatureStats>) => {
    const m = ctx.manifest;
    const { columns } = params(m);
    const k = columns.length;
    const idx = columns.map((c) => m.dataset.featureNames.indexOf(c));
    const { train } = ctx.data;
    const s = scaleOf(m, k);
    const sums = new Float64Array(2 * k + 1);
    for (let i = 0; i < train.n; i++) {
      for (let j = 0; j < k; j++) {
        const x = Math.min(1, Math.max(-1, train.X[i * train.d + idx[j]]));
        sums[j] += s * x;
        sums[k + j] += s * x * x;
      }
      sums[2 * k] += s;
    }
    const [release] = ctx.plan.releases;
    if (release) addGaussianNoiseInPlace(sums, release.noiseMultiplier * release.sensitivity);
    return { parts: { moments: sums } };
  },
  apply: (m, _state, _round, sums) => statsFrom(m, sums.moments),
  report: (m, _round, sums) => statsFrom(m, sums.moments),
};
