/**
 * Parameters of a gradient-boosted tree job (binary log loss). One zod schema is validation, type and
 * documentation; `parseGbdtParams` resolves the defaults that depend on whether the job is private.
 *
 * The defaults were chosen by measurement on bank marketing (the demo's 5-way split) and checked on
 * telco churn; the figures are in benchmarks/RESULTS.md ("GBDT") and the reasoning in docs/MODELS.md.
 */
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';

export const SPLIT_MODES = ['histogram', 'random', 'hybrid'] as const;
export type SplitMode = (typeof SPLIT_MODES)[number];

export const gbdtDpSchema = z.strictObject({
  /** Target ε per partner for every release of the job's trees (bin edges, histograms, leaves). */
  epsilon: z.number().positive().finite(),
  delta: z.number().gt(0).lt(1).default(1e-5),
  /** Share of the RDP budget (precision 1/σ²) spent on leaf releases, when the job has leaf rounds. */
  leafShare: z.number().gt(0).lt(1).optional(),
  /** Share spent on the quantile round (binEdges: 'dp-quantiles'). */
  quantileShare: z.number().gt(0).lt(1).default(0.1),
  /** Within every histogram or leaf release, the share of its precision spent on the hessian part. */
  hessianShare: z.number().gt(0).lt(1).default(0.5),
});

export const gbdtParamsInputSchema = z
  .strictObject({
    trees: z.number().int().min(1).max(5000).optional(),
    depth: z.number().int().min(1).max(10).optional(),
    learningRate: z.number().gt(0).max(1).optional(),
    /** Bins per numeric feature (booleans have 2, categoricals one per declared value + other). */
    bins: z.number().int().min(2).max(1024).default(32),
    /** L2 regularisation λ of the leaf weights (XGBoost `lambda`). */
    lambda: z.number().min(0).finite().optional(),
    /** Minimum hessian sum in each child of a split (XGBoost `min_child_weight`). */
    minChildWeight: z.number().min(0).finite().optional(),
    /** Minimum loss reduction for a split (XGBoost `gamma`). */
    minSplitGain: z.number().min(0).finite().default(0),
    /** |w| ≤ maxDeltaStep·η for every leaf (XGBoost `max_delta_step`); 0 = unbounded. */
    maxDeltaStep: z.number().min(0).finite().default(0),
    /** Public prior probability the ensemble starts from (XGBoost `base_score`). */
    baseScore: z.number().gt(0).lt(1).default(0.5),
    splitMode: z.enum(SPLIT_MODES).optional(),
    /** Hybrid only: levels 0 … histogramLevels−1 split on histograms, the levels below at random. */
    histogramLevels: z.number().int().min(1).optional(),
    /**
     * Schema columns (feature groups) each tree's histogram levels look at, drawn per tree from the seed
     * (XGBoost's colsample_bytree, counted in columns). Fewer columns mean a smaller histogram and, under
     * DP, a smaller sensitivity √columns, so less noise per bin. Default: all columns without DP, 5 with.
     */
    columnsPerTree: z.number().int().min(1).optional(),
    binEdges: z.enum(['schema', 'dp-quantiles']).optional(),
    /** Cells of the fine grid per numeric feature for the quantile round; a power of two. */
    quantileGrid: z
      .number()
      .int()
      .min(16)
      .max(65536)
      .refine((g) => (g & (g - 1)) === 0, 'quantileGrid must be a power of two')
      .default(1024),
    /** The job's public seed: random splits are drawn from it. */
    seed: z.number().int().min(0).max(0xffffffff).default(0),
    dp: gbdtDpSchema.nullable().default(null),
  });

export type GbdtParamsInput = z.input<typeof gbdtParamsInputSchema>;

export interface GbdtDpParams {
  epsilon: number;
  delta: number;
  leafShare: number;
  quantileShare: number;
  hessianShare: number;
}

/** Parameters with every default resolved. */
export interface GbdtParams {
  trees: number;
  depth: number;
  learningRate: number;
  bins: number;
  lambda: number;
  minChildWeight: number;
  minSplitGain: number;
  maxDeltaStep: number;
  baseScore: number;
  splitMode: SplitMode;
  /** Levels split on histograms: depth (histogram), 0 (random), or the hybrid's count. */
  histogramLevels: number;
  /** null: every column. */
  columnsPerTree: number | null;
  binEdges: 'schema' | 'dp-quantiles';
  quantileGrid: number;
  seed: number;
  dp: GbdtDpParams | null;
}

/**
 * Defaults by privacy regime, measured on bank marketing (the demo's split) and checked on telco churn
 * (benchmarks/RESULTS.md, "GBDT"; docs/MODELS.md, "GBDT defaults"). Without DP: 100 trees of depth 4 at
 * η = 0.1 — within 0.007 AUC of the best depth on bank and 0.002 on telco, where deeper trees overfit.
 * With DP: few, shallow trees whose root split is chosen on histograms of 5 columns per tree and whose
 * lower levels are random, so a tree costs two releases; larger λ and minChildWeight keep noisy leaves
 * small.
 */
export const GBDT_DEFAULTS = {
  plain: { trees: 100, depth: 4, learningRate: 0.1, lambda: 1, minChildWeight: 1, splitMode: 'histogram', columnsPerTree: null, binEdges: 'dp-quantiles' },
  private: {
    trees: 40,
    depth: 3,
    learningRate: 0.3,
    lambda: 10,
    minChildWeight: 50,
    splitMode: 'hybrid',
    histogramLevels: 1,
    columnsPerTree: 5,
    binEdges: 'dp-quantiles',
    leafShare: 0.6,
  },
} as const;

function resolve(input: z.output<typeof gbdtParamsInputSchema>): GbdtParams {
  const dp = input.dp;
  const base = dp ? GBDT_DEFAULTS.private : GBDT_DEFAULTS.plain;
  const depth = input.depth ?? base.depth;
  const splitMode = input.splitMode ?? base.splitMode;
  let histogramLevels: number;
  if (splitMode === 'histogram') histogramLevels = depth;
  else if (splitMode === 'random') histogramLevels = 0;
  else {
    histogramLevels = input.histogramLevels ?? Math.min(GBDT_DEFAULTS.private.histogramLevels, depth - 1);
    if (depth < 2) throw new FedmarkError('GBDT_BAD_PARAMS', 'invalid GBDT parameters: hybrid split mode needs depth ≥ 2');
    if (histogramLevels >= depth) {
      throw new FedmarkError(
        'GBDT_BAD_PARAMS',
        `invalid GBDT parameters: histogramLevels (${histogramLevels}) must be below depth (${depth}) in hybrid mode; use splitMode "histogram" for all levels`,
      );
    }
  }
  if (input.histogramLevels !== undefined && splitMode !== 'hybrid') {
    throw new FedmarkError('GBDT_BAD_PARAMS', `invalid GBDT parameters: histogramLevels applies to splitMode "hybrid" only (splitMode is "${splitMode}")`);
  }
  return {
    trees: input.trees ?? base.trees,
    depth,
    learningRate: input.learningRate ?? base.learningRate,
    bins: input.bins,
    lambda: input.lambda ?? base.lambda,
    minChildWeight: input.minChildWeight ?? base.minChildWeight,
    minSplitGain: input.minSplitGain,
    maxDeltaStep: input.maxDeltaStep,
    baseScore: input.baseScore,
    splitMode,
    histogramLevels,
    columnsPerTree: input.columnsPerTree ?? base.columnsPerTree,
    binEdges: input.binEdges ?? base.binEdges,
    quantileGrid: input.quantileGrid,
    seed: input.seed,
    dp: dp
      ? {
          epsilon: dp.epsilon,
          delta: dp.delta,
          leafShare: dp.leafShare ?? GBDT_DEFAULTS.private.leafShare,
          quantileShare: dp.quantileShare,
          hessianShare: dp.hessianShare,
        }
      : null,
  };
}

/** Validates and resolves GBDT parameters; bad input is a FedmarkError('GBDT_BAD_PARAMS') naming the field. */
export function parseGbdtParams(input: unknown = {}): GbdtParams {
  const r = gbdtParamsInputSchema.safeParse(input ?? {});
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
    throw new FedmarkError('GBDT_BAD_PARAMS', `invalid GBDT parameters:\n  ${problems.join('\n  ')}`, {
      issues: r.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
    });
  }
  return resolve(r.data);
}

/** Whether a tree ends with a leaf round (random levels below, or DP leaves) or takes its leaves from the last level. */
export function hasLeafRound(p: GbdtParams): boolean {
  return p.histogramLevels < p.depth || p.dp !== null;
}

/**
 * Whether a histogram level queries left children only (the right = parent − left). Without DP this
 * halves the bytes. With DP it does not pay: a row touches one node per level either way, so querying
 * both children costs the same ε, and subtraction would add the parent's noise to every right child.
 */
export function usesSubtraction(p: GbdtParams): boolean {
  return p.dp === null;
}
