/**
 * The `evaluation` part every workload shares: a model's scores of a partner's hold-out as the job's
 * fixed-bin score histograms (the declared fairness segments only), summed across partners, read by
 * the owner (src/metrics/histogram.ts).
 *
 * With DP the vector is a Gaussian release, labelled `evaluation` and charged before it leaves: per-row
 * log loss capped at DP_LOG_LOSS_CAP and its sum carried divided by the cap, so one row moves every
 * cell by at most 1 (L2 sensitivity √(4 + segments), `evaluationSensitivity`), and noise of std
 * σ_eval · sensitivity added to every cell. Each workload calibrates its own σ_eval within the job's
 * target ε (SGD: dp-plan.ts; GBDT: gbdt/settings.ts) and passes it here as an EvaluationNoise.
 */
import { buildEvalHistograms, histogramLayout, metricsFromHistograms, type FederatedEvalMetrics, type HistogramLayout } from '../../metrics/histogram.ts';
import { LOG_LOSS_EPS } from '../../metrics/classification.ts';
import type { Dataset } from '../../data/encode.ts';
import type { LabelledDpEvent } from '../../privacy/dp-event.ts';
import { addGaussianNoiseInPlace } from '../../privacy/noise.ts';
import type { JobManifest } from '../manifest.ts';
import { jobLimits, NOISE_MARGIN_SIGMAS } from '../part-encoding.ts';
import type { PartSpec } from '../workload.ts';

/** p clipped to [1e-4, 1 − 1e-4] in the DP evaluation's log loss: one row adds at most ln(10⁴) ≈ 9.21 nats. */
export const DP_LOG_LOSS_CAP = Math.log(1e4);

/** A DP evaluation release's noise: noise multiplier, L2 sensitivity of one row, and the per-row log-loss cap. */
export interface EvaluationNoise {
  noiseMultiplier: number;
  sensitivity: number;
  logLossCap: number;
}

const layouts = new WeakMap<JobManifest, HistogramLayout>();

export function evaluationLayout(m: JobManifest): HistogramLayout {
  let l = layouts.get(m);
  if (!l) {
    l = histogramLayout(m.evaluation.segments, m.evaluation.bins);
    layouts.set(m, l);
  }
  return l;
}

/**
 * L2 sensitivity of one hold-out row in the evaluation vector (src/metrics/histogram.ts layout): one
 * count in the global histogram, one in each declared segment's histogram, the row count, its
 * squared error (≤ 1) and its capped log loss, which the vector carries divided by the cap (≤ 1).
 */
export function evaluationSensitivity(m: JobManifest): number {
  return Math.sqrt(4 + Object.keys(m.evaluation.segments).length);
}

/** The DP evaluation noise of a job whose evaluation releases have noise multiplier `noiseMultiplier`. */
export function evaluationNoise(m: JobManifest, noiseMultiplier: number): EvaluationNoise {
  return { noiseMultiplier, sensitivity: evaluationSensitivity(m), logLossCap: DP_LOG_LOSS_CAP };
}

/** The labelled DP event one evaluation release is charged as. */
export function evaluationEvent(noise: EvaluationNoise): LabelledDpEvent {
  return { label: 'evaluation', samplingRate: 1, noiseMultiplier: noise.noiseMultiplier, steps: 1, sensitivity: noise.sensitivity };
}

/**
 * Largest |slot| of one partner's evaluation vector: a count, the row count and Σ squared error are
 * at most its rows; Σ log loss at most rows × the per-row cap (carried divided by the cap with DP);
 * with DP, plus the noise margin.
 */
export function evaluationPartBound(m: JobManifest, noise: EvaluationNoise | null): number {
  const rows = jobLimits(m).maxRowsPerPartner;
  if (!noise) return rows * Math.max(1, -Math.log(LOG_LOSS_EPS));
  return rows + NOISE_MARGIN_SIGMAS * noise.noiseMultiplier * noise.sensitivity;
}

/** The `evaluation` part's spec (its Σ squared error and Σ log loss slots are reals). */
export function evaluationPart(m: JobManifest, noise: EvaluationNoise | null): PartSpec {
  const layout = evaluationLayout(m);
  return {
    name: 'evaluation',
    length: layout.length,
    domain: 'count',
    realSlots: [[layout.sums, layout.sums + 2]],
    bound: evaluationPartBound(m, noise),
    use: 'report',
  };
}

/** A model's scores of a partner's hold-out as the job's evaluation histograms; with `noise`, the noised release (call only after it was charged). */
export function evaluationHistograms(m: JobManifest, scores: ArrayLike<number>, test: Dataset, noise: EvaluationNoise | null): Float64Array {
  const declared = m.evaluation.segments;
  const segments = Object.fromEntries(Object.entries(test.sensitive).filter(([name]) => name in declared));
  const layout = evaluationLayout(m);
  const v = buildEvalHistograms(scores, test.y, segments, layout, noise ? { logLossCap: noise.logLossCap } : {});
  if (noise) {
    v[layout.sums] /= noise.logLossCap;
    addGaussianNoiseInPlace(v, noise.noiseMultiplier * noise.sensitivity);
  }
  return v;
}

/** The owner's metrics from summed evaluation vectors of `submitters` partners: the capped log-loss sum scaled back, n/a for groups the noise drowns. */
export function evaluationMetrics(m: JobManifest, sum: Float64Array, noise: EvaluationNoise | null, submitters: number): FederatedEvalMetrics {
  const layout = evaluationLayout(m);
  if (!noise) return metricsFromHistograms(sum, layout);
  const v = Float64Array.from(sum);
  v[layout.sums] *= noise.logLossCap;
  // Noise std of a summed cell: each submitter added its own.
  return metricsFromHistograms(v, layout, { noiseStd: noise.noiseMultiplier * noise.sensitivity * Math.sqrt(submitters) });
}
