import { z } from 'zod';
import { FedmarkError } from '../../../src/errors.ts';
import type { JobManifest } from '../../../src/federation/manifest.ts';
import type { LocalContext, PrivacyPlan, RoundPlan, Workload } from '../../../src/federation/workload.ts';
import { calibrateNoiseMultiplier } from '../../../src/privacy/calibrate.ts';
import { addGaussianNoiseInPlace } from '../../../src/privacy/noise.ts';
import { sha256Canonical } from '../../../src/privacy/ledger/canonical.ts';

/**
 * A second workload, written against the seam only (no edit to the engine, store, codec, round
 * machine or SGD strategy): the federated mean and variance of one numeric column, in one round.
 *
 * Each partner clips its values to the declared range [lo, hi], maps them to u ∈ [0, 1] and sums
 * the row vectors r = (C/√3)·(u, u², 1), whose L2 norm is at most C (the manifest's dp.clipNorm):
 * adding or removing one customer changes the sum by at most C. With DP it adds Gaussian noise of
 * standard deviation σ·C to each coordinate — a plain Gaussian release, the DP event (q = 1, σ,
 * steps = 1), charged before the sum leaves. Key holders divide the summed (Σu, Σu², n) back out.
 */

export const paramsSchema = z.object({ column: z.string().min(1), lo: z.number(), hi: z.number() }).strict();
export type ColumnMomentsParams = z.infer<typeof paramsSchema>;

export interface Moments {
  /** Rows counted (noisy under DP, rounded). */
  n: number;
  mean: number | null;
  variance: number | null;
}

const params = (m: JobManifest): ColumnMomentsParams => paramsSchema.parse(m.workload.params);

const privacy = (m: JobManifest): PrivacyPlan | null => {
  if (!m.dp) return null;
  const noiseMultiplier =
    m.dp.noiseMultiplier === 'calibrate'
      ? calibrateNoiseMultiplier({ targetEpsilon: m.dp.targetEpsilon, delta: m.dp.delta, samplingRate: 1, steps: 1 })
      : m.dp.noiseMultiplier;
  return { targetEpsilon: m.dp.targetEpsilon, delta: m.dp.delta, noiseMultiplier, clipNorm: m.dp.clipNorm };
};

/** Row vectors are scaled by C/√3 so that each has L2 norm ≤ C; without DP the scale is 1. */
const scaleOf = (m: JobManifest): number => (m.dp ? m.dp.clipNorm / Math.sqrt(3) : 1);

function momentsFrom(m: JobManifest, sums: Float64Array): Moments {
  const { lo, hi } = params(m);
  const s = scaleOf(m);
  const [su, su2, n] = [sums[0] / s, sums[1] / s, sums[2] / s];
  if (!(n >= 1)) return { n: Math.max(0, Math.round(n)), mean: null, variance: null };
  const meanU = su / n;
  const varU = Math.max(0, su2 / n - meanU * meanU);
  return { n: Math.round(n), mean: lo + (hi - lo) * meanU, variance: (hi - lo) ** 2 * varU };
}

export const columnMomentsWorkload: Workload<Moments, Moments> = {
  kind: 'column-moments',
  validate: (m) => {
    const p = paramsSchema.safeParse(m.workload.params);
    if (!p.success)
      throw new FedmarkError('MANIFEST_INVALID', `column-moments: workload.params.${p.error.issues[0].path.join('.')}: ${p.error.issues[0].message}`);
    if (!m.dataset.featureNames.includes(p.data.column))
      throw new FedmarkError('MANIFEST_INVALID', `column-moments: "${p.data.column}" is not a feature of the job's dataset`);
    if (!(p.data.lo < p.data.hi)) throw new FedmarkError('MANIFEST_INVALID', `column-moments: lo (${p.data.lo}) must be below hi (${p.data.hi})`);
  },
  totalRounds: () => 1,
  plan: (m): RoundPlan => {
    const dp = privacy(m);
    return {
      kind: 'moments',
      stages: ['upload'],
      parts: [{ name: 'moments', length: 3, domain: 'real', bound: null, use: 'state' }],
      selection: 'all',
      releases: dp ? [{ label: 'moments', samplingRate: 1, noiseMultiplier: dp.noiseMultiplier, steps: 1, sensitivity: dp.clipNorm }] : [],
      updatesState: true,
    };
  },
  privacy,
  initialState: () => ({ n: 0, mean: null, variance: null }),
  hash: (s) => sha256Canonical(s),
  local: async (ctx: LocalContext<Moments>) => {
    const m = ctx.manifest;
    const { column, lo, hi } = params(m);
    const j = m.dataset.featureNames.indexOf(column);
    const { train } = ctx.data;
    const s = scaleOf(m);
    const sums = new Float64Array(3);
    for (let i = 0; i < train.n; i++) {
      const u = Math.min(1, Math.max(0, (train.X[i * train.d + j] - lo) / (hi - lo)));
      sums[0] += s * u;
      sums[1] += s * u * u;
      sums[2] += s;
    }
    const [release] = ctx.plan.releases;
    if (release) addGaussianNoiseInPlace(sums, release.noiseMultiplier * release.sensitivity);
    return { parts: { moments: sums } };
  },
  apply: (m, _state, _round, sums) => momentsFrom(m, sums.moments),
  report: (m, _round, sums) => momentsFrom(m, sums.moments),
};
