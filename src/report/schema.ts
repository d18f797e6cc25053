/**
 * The input of the compliance report and model card. Everything the report shows comes from here, so
 * the CLI can build it from a ledger + evaluation and a reviewer can re-render it from saved JSON.
 *
 * Metric values may legitimately be NaN (single-class AUC, empty segment). JSON has no NaN and writes
 * null, so metric fields accept null and read it back as NaN.
 */
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import type { FederatedEvalMetrics } from '../metrics/histogram.ts';
import { campaignInputSchema, type CampaignInput } from './html/campaign.ts';

/** A metric value: finite number, NaN, or null (= NaN after a JSON round trip). */
const metric = z.preprocess((v) => (v === null ? NaN : v), z.union([z.number(), z.nan()]));
const count = z.number().nonnegative();
const rate = metric;

const calibrationBinSchema = z.object({
  lower: z.number(),
  upper: z.number(),
  meanPredicted: metric,
  observedRate: metric,
  count,
});

const groupSchema = z.object({
  group: z.string(),
  count,
  positives: count,
  baseRate: rate,
  selectionRate: rate,
  tpr: rate,
  fpr: rate,
  auc: metric,
  disparateImpact: metric,
  flagged: z.boolean(),
});

const segmentSchema = z.object({
  segment: z.string(),
  threshold: z.number(),
  referenceGroup: z.string().nullable(),
  groups: z.array(groupSchema),
});

export const federatedEvalMetricsSchema = z.object({
  bins: z.number().int().positive(),
  threshold: z.number(),
  n: count,
  positives: count,
  negatives: count,
  baseRate: rate,
  auc: metric,
  logLoss: metric,
  brier: metric,
  accuracy: metric,
  roc: z.array(z.object({ threshold: z.number(), fpr: metric, tpr: metric })),
  pr: z.array(z.object({ threshold: z.number(), recall: metric, precision: metric })),
  lift: z.array(
    z.object({
      decile: z.number().int(),
      fraction: z.number(),
      count,
      positives: count,
      responseRate: metric,
      lift: metric,
      cumulativeLift: metric,
      gain: metric,
      minScore: z.number(),
    }),
  ),
  calibration: z.array(calibrationBinSchema),
  segments: z.array(segmentSchema),
});

export const reportInputSchema = z
  .object({
    job: z.object({
      jobId: z.string().min(1),
      dataset: z.string().min(1),
      /** A model spec object (e.g. `{ kind: 'mlp', hidden: [16] }`) or a one-line description. */
      modelSpec: z.union([z.string(), z.record(z.string(), z.unknown())]),
      rounds: z.number().int().nonnegative(),
      strategy: z.string().min(1),
      createdAt: z.string().min(1),
      finishedAt: z.string().min(1).nullable().optional(),
      owner: z.string().optional(),
    }),
    partners: z
      .array(
        z.object({
          name: z.string().min(1),
          keyId: z.string().min(1),
          rowsUsed: z.number().int().nonnegative(),
          rowsExcludedConsent: z.number().int().nonnegative(),
          rowsExcludedWithdrawn: z.number().int().nonnegative(),
        }),
      )
      .min(1),
    /**
     * False for a job trained without differential privacy: the report and model card then say "not
     * differentially private (ε = ∞)" wherever ε is shown, never ε = 0. Default true.
     */
    differentiallyPrivate: z.boolean().default(true),
    privacy: z.array(
      z.object({
        /** Must equal a partner's `name`. */
        partner: z.string().min(1),
        delta: z.number().gt(0).lt(1),
        /** The partner's ε budget for this job (policy max ε). */
        maxEpsilon: z.number().positive(),
        /** Cumulative ε after each round the partner took part in. */
        epsilonByRound: z.array(z.object({ round: z.number().int().nonnegative(), epsilon: z.number().nonnegative() })),
        noiseMultiplier: z.number().positive().optional(),
        clipNorm: z.number().positive().optional(),
        accountant: z.string().optional(),
      }),
    ),
    /** Global metrics after each round (federated evaluation). */
    roundMetrics: z.array(z.object({ round: z.number().int().nonnegative(), auc: metric, logLoss: metric.optional() })),
    evaluation: federatedEvalMetricsSchema,
    encryption: z.object({
      scheme: z.enum(['ckks', 'secagg-bfv', 'plain-insecure']),
      polyModulusDegree: z.number().int().positive(),
      coeffModulusBits: z.array(z.number().int().positive()),
      scaleBits: z.number().positive().optional(),
      bytesPerParam: z.number().nonnegative(),
      securityLevel: z.number().int().positive().optional(),
    }),
    audit: z
      .object({
        ok: z.boolean(),
        findings: z.array(z.object({ entry: z.number().int().optional(), code: z.string(), message: z.string() })),
        summary: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
      })
      .optional(),
    modelCard: z.object({
      intendedUse: z.string().min(1),
      outOfScope: z.array(z.string()).default([]),
      target: z.string().min(1),
      features: z.array(z.string()).min(1),
      trainingData: z.string().optional(),
      limitations: z.array(z.string()).default([]),
      ethicalConsiderations: z.array(z.string()).default([]),
      version: z.string().optional(),
    }),
    /**
     * Tree models: importance per schema column from what the released model carries
     * (src/report/importance.ts); rendered in the model card's "Feature importance" section.
     */
    featureImportance: z
      .object({
        measure: z.string().min(1),
        rows: z.array(z.object({ feature: z.string().min(1), gain: z.number().finite(), share: z.number().min(0).max(1) })).min(1),
      })
      .optional(),
    /** Scoring run / measured uplift (src/report/html/campaign.ts); rendered as the "Campaign" section. */
    campaign: z
      .custom<CampaignInput>()
      .superRefine((v, ctx) => {
        const r = campaignInputSchema.safeParse(v);
        for (const i of r.success ? [] : r.error.issues.slice(0, 3)) ctx.addIssue({ code: 'custom', path: i.path as (string | number)[], message: i.message });
      })
      .optional(),
    /** ISO timestamp of rendering; defaults to now. Fixed in tests for reproducible output. */
    generatedAt: z.string().optional(),
  })
  .superRefine((input, ctx) => {
    const names = new Set(input.partners.map((p) => p.name));
    if (names.size !== input.partners.length) {
      ctx.addIssue({ code: 'custom', path: ['partners'], message: 'partner names must be unique' });
    }
    input.privacy.forEach((p, i) => {
      if (!names.has(p.partner)) {
        ctx.addIssue({
          code: 'custom',
          path: ['privacy', i, 'partner'],
          message: `privacy entry names "${p.partner}", who is not a partner`,
        });
      }
    });
  });

export type ReportInput = z.output<typeof reportInputSchema>;
/** What callers may pass (defaults not yet applied). */
export type ReportInputDraft = z.input<typeof reportInputSchema>;

// Compile-time check that the schema and the metrics module agree on the evaluation shape.
type Assert<T extends true> = T;
export type _EvalShapeAgrees = Assert<z.output<typeof federatedEvalMetricsSchema> extends FederatedEvalMetrics ? true : false>;
export type _EvalShapeAgreesBack = Assert<FederatedEvalMetrics extends z.output<typeof federatedEvalMetricsSchema> ? true : false>;

export function parseReportInput(input: unknown): ReportInput {
  const r = reportInputSchema.safeParse(input);
  if (!r.success) {
    const first = r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
      .join('; ');
    throw new FedmarkError('REPORT_INVALID_INPUT', `invalid report input — ${first}`, { issues: r.error.issues });
  }
  return r.data;
}
