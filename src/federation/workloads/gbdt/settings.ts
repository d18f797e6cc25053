/**
 * The GBDT workload's settings as the manifest carries them, and their resolution — once per manifest
 * object, since every party resolves them on every upload and calibration is not free.
 *
 *   "model":    { "kind": "gbdt" }
 *   "workload": { "kind": "gbdt", "params": { "layout": …, "trees": 100, "depth": 4, …, "dp": { "hessianShare": 0.2 } } }
 *   "dp":       { "targetEpsilon": 3, "delta": 1e-5, "clipNorm": 1, "noiseMultiplier": "calibrate" }
 *
 * The job's privacy target is the manifest's `dp` (what partners' policies, the ledgers and the audit
 * read for every workload); `params.dp` only tunes how the GBDT releases share it. `layout` is the
 * schema's feature grouping (src/trees/layout.ts): the coordinator holds no schema, and every part
 * length follows from it.
 */
import { z } from 'zod';
import type { DpEvent } from '../../../privacy/dp-event.ts';
import { FedmarkError } from '../../../errors.ts';
import {
  calibrateGbdtNoise,
  checkLayout,
  gbdtParamsInputSchema,
  parseGbdtParams,
  releasePlan as treeReleasePlan,
  totalSteps,
  type FeatureLayout,
  type GbdtNoisePlan,
  type GbdtParams,
} from '../../../trees/index.ts';
import type { JobManifest } from '../../manifest.ts';
import { composedEpsilon } from '../../../privacy/accountant.ts';
import { evaluationEvent, evaluationNoise, type EvaluationNoise } from '../evaluation.ts';

const layoutSchema = z.strictObject({
  d: z.number().int().positive(),
  featureNames: z.array(z.string()),
  groups: z
    .array(
      z.discriminatedUnion('kind', [
        z.strictObject({ kind: z.literal('numeric'), name: z.string(), feature: z.number().int().min(0), lo: z.number(), hi: z.number() }),
        z.strictObject({ kind: z.literal('binary'), name: z.string(), feature: z.number().int().min(0) }),
        z.strictObject({ kind: z.literal('categorical'), name: z.string(), offset: z.number().int().min(0), slots: z.number().int().min(1) }),
      ]),
    )
    .min(1),
});

/** Everything of src/trees's GBDT parameters except the privacy target, which is the manifest's `dp`. */
const dpKnobsSchema = gbdtParamsInputSchema.shape.dp.unwrap().unwrap().omit({ epsilon: true, delta: true, minContributors: true });

export const gbdtWorkloadParamsSchema = gbdtParamsInputSchema.omit({ dp: true }).extend({
  layout: layoutSchema,
  dp: dpKnobsSchema.optional(),
  /**
   * Values are divided by this power of two before encryption and multiplied back after decryption
   * (exact in binary floating point). Range is the part encoding's job since the per-part bounds
   * (src/federation/part-encoding.ts: each part declares its bound from the manifest's `limits` and
   * is scaled to fit the HE slot bound); decrypted sums are put on the release grid (2⁻²⁰) in the
   * unit's domain, so a unit above 1 coarsens every gradient sum to heUnit · 2⁻²⁰. Default 1: sums
   * at 2⁻²⁰ ≈ 9.5e-7, far below the trees' empty-bin threshold (1e-5).
   */
  heUnit: z
    .number()
    .int()
    .min(1)
    .max(2 ** 10)
    .refine((u) => (u & (u - 1)) === 0, 'heUnit must be a power of two')
    .default(1),
});
export type GbdtWorkloadParams = z.input<typeof gbdtWorkloadParamsSchema>;

export interface GbdtSettings {
  params: GbdtParams;
  layout: FeatureLayout;
  /** The trees' releases, calibrated to the target ε less the evaluation's share (`dp.split.evaluation`). */
  noise: GbdtNoisePlan;
  /** The final evaluation round's noised release (null without DP); its σ spends what the trees leave of the target. */
  evaluation: EvaluationNoise | null;
  /** ε of every release of the job composed (trees and evaluation; ≤ dp.targetEpsilon), 0 without DP. */
  epsilon: number;
  heUnit: number;
  /** Rounds that grow the model (= manifest.rounds); the evaluation round follows. */
  steps: number;
}

const invalid = (m: JobManifest, why: string) => new FedmarkError('MANIFEST_INVALID', `job ${m.jobId} (gbdt): ${why}`);

/** Aggregation schemes under which no single partner's upload can ever be decrypted (masked aggregation, issue 13). */
function hidesSingleUploads(encryption: JobManifest['encryption']): boolean {
  // CKKS with a shared key: a key holder colluding with the coordinator decrypts any one upload; plaintext: anyone.
  return encryption.scheme !== 'ckks' && encryption.scheme !== 'plain-insecure';
}

function resolve(m: JobManifest): GbdtSettings {
  if (m.model.kind !== 'gbdt') throw invalid(m, `the gbdt workload trains model kind "gbdt", the manifest names "${m.model.kind}"`);
  const parsed = gbdtWorkloadParamsSchema.safeParse(m.workload.params);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw invalid(m, `workload.params.${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const { layout, dp: knobs, heUnit, ...rest } = parsed.data;
  try {
    checkLayout(layout);
  } catch (err) {
    throw invalid(m, `workload.params.layout: ${(err as Error).message}`);
  }
  if (layout.featureNames.join('\u0000') !== m.dataset.featureNames.join('\u0000'))
    throw invalid(m, "workload.params.layout names other features than the manifest's dataset");
  if (knobs && !m.dp) throw invalid(m, 'workload.params.dp tunes the DP releases, but the job has no dp section (no differential privacy)');
  if (m.dp) {
    if (m.dp.clipNorm !== 1)
      throw invalid(m, `dp.clipNorm must be 1 for trees (each row's gradient is clipped to [−1, 1]; the sensitivities follow), not ${m.dp.clipNorm}`);
    if (m.dp.noiseMultiplier !== 'calibrate')
      throw invalid(m, 'dp.noiseMultiplier must be "calibrate" for trees: σ of every release is calibrated to dp.targetEpsilon');
  }
  if (knobs?.noise === 'distributed' && !hidesSingleUploads(m.encryption)) {
    throw invalid(
      m,
      `dp.noise "distributed" is refused under ${m.encryption.scheme} aggregation: each partner adds only a share of the noise, which is sound only when no single upload is ever decrypted (masked aggregation); here a key holder colluding with the coordinator could decrypt one partner's upload. Use dp.noise "local".`,
    );
  }
  let params: GbdtParams;
  try {
    params = treeParams(rest, knobs, m.dp && { ...m.dp, targetEpsilon: treesEpsilon(m.dp) }, m.quorum);
  } catch (err) {
    if (err instanceof FedmarkError) throw invalid(m, err.message);
    throw err;
  }
  const steps = totalSteps(params, layout);
  if (m.rounds !== steps) throw invalid(m, `rounds must be ${steps} (the rounds these trees take: ${m.rounds} given)`);
  const noise = calibrateGbdtNoise(params, layout);
  if (!m.dp) return { params, layout, noise, evaluation: null, epsilon: 0, heUnit, steps };
  const trees = treeReleasePlan(params, layout, noise);
  const evaluation = calibrateEvaluation(m, trees, m.dp);
  return { params, layout, noise, evaluation, epsilon: composedEpsilon([...trees, evaluationEvent(evaluation)], m.dp.delta), heUnit, steps };
}

/** The trees' share of the target: ε·(1 − dp.split.evaluation); the evaluation release gets the rest. */
function treesEpsilon(dp: NonNullable<JobManifest['dp']>): number {
  return dp.targetEpsilon * (1 - dp.split.evaluation);
}

/**
 * The evaluation release's σ: the smallest (within 1e-9 relative) for which every release of the job —
 * the trees' events and the one evaluation — composed by the RDP accountant stays within the target ε.
 */
function calibrateEvaluation(m: JobManifest, trees: readonly DpEvent[], dp: NonNullable<JobManifest['dp']>): EvaluationNoise {
  const fits = (z: number) => composedEpsilon([...trees, evaluationEvent(evaluationNoise(m, z))], dp.delta) <= dp.targetEpsilon;
  let hi = 1;
  for (let k = 0; !fits(hi); k++) {
    if (k > 60) throw invalid(m, `could not calibrate the evaluation release's noise to ε = ${dp.targetEpsilon}`);
    hi *= 2;
  }
  let lo = hi / 2;
  if (fits(lo)) {
    while (fits(lo / 2) && lo > 1e-6) lo /= 2;
    hi = lo;
    lo /= 2;
  }
  while (hi - lo > 1e-9 * hi) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) hi = mid;
    else lo = mid;
  }
  return evaluationNoise(m, hi);
}

/** src/trees's parameters from the workload params and the manifest's privacy target (distributed noise holds against the quorum). */
function treeParams(rest: Record<string, unknown>, knobs: z.output<typeof dpKnobsSchema> | undefined, dp: JobManifest['dp'], quorum: number): GbdtParams {
  const distributed = knobs?.noise === 'distributed';
  return parseGbdtParams({
    ...rest,
    dp: dp ? { ...knobs, epsilon: dp.targetEpsilon, delta: dp.delta, ...(distributed ? { minContributors: quorum } : {}) } : null,
  });
}

/** The rounds a GBDT job with these settings takes before its evaluation round (what `manifest.rounds` must say). */
export function gbdtSteps(params: GbdtWorkloadParams, dp: JobManifest['dp'], quorum: number): number {
  const parsed = gbdtWorkloadParamsSchema.safeParse(params);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new FedmarkError('GBDT_BAD_PARAMS', `invalid GBDT parameters: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const { layout, dp: knobs, heUnit: _unit, ...rest } = parsed.data;
  return totalSteps(treeParams(rest, knobs, dp, quorum), checkLayout(layout));
}

const cache = new WeakMap<JobManifest, GbdtSettings>();

/** The job's resolved GBDT settings (throws MANIFEST_INVALID naming the problem). */
export function gbdtSettings(m: JobManifest): GbdtSettings {
  let s = cache.get(m);
  if (!s) {
    s = resolve(m);
    cache.set(m, s);
  }
  return s;
}
