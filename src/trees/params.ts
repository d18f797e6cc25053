/**
 * Parameters of a gradient-boosted tree job (binary log loss). One zod schema is validation, type and
 * documentation; `parseGbdtParams` resolves the defaults that depend on whether the job is private.
 *
 * The defaults were chosen by measurement on bank marketing (the demo's 5-way split) and checked on
 * telco churn; the figures are in benchmarks/RESULTS.md ("GBDT") and the reasoning in docs/MODELS.md.
 */
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';

export const SPLIT_MODES = ['histogram', 'random', 'hybrid', 'cyclic'] as const;
export type SplitMode = (typeof SPLIT_MODES)[number];

/**
 * Where each partner's Gaussian noise goes. `local`: every partner adds the full calibrated noise to
 * its own upload, so its guarantee depends on nobody else (the sum of K uploads carries K times the
 * variance). `distributed` (Kairouz, Liu & Steinke, ICML 2021): each partner adds a share so that the
 * uploads of any `minContributors − colluders` honest partners together carry the calibrated noise —
 * about √K times less noise in the sum, but sound only when no single upload is ever decrypted
 * (masked aggregation) and only against coalitions of at most `colluders` partners.
 */
export const NOISE_MODES = ['local', 'distributed'] as const;
export type NoiseMode = (typeof NOISE_MODES)[number];

export const gbdtDpSchema = z.strictObject({
  /** Target ε per partner for every release of the job's trees (bin edges, histograms, leaves). */
  epsilon: z.number().positive().finite(),
  delta: z.number().gt(0).lt(1).default(1e-5),
  /** Share of the RDP budget (precision 1/σ²) spent on leaf releases, when the job has leaf rounds. */
  leafShare: z.number().gt(0).lt(1).optional(),
  /** Share spent on the quantile round (binEdges: 'dp-quantiles'). */
  quantileShare: z.number().gt(0).lt(1).default(0.1),
  /** Within every histogram, leaf or term release, the share of its precision spent on the hessian part. */
  hessianShare: z.number().gt(0).lt(1).optional(),
  /** Cyclic mode: share of the budget (after the quantile round) spent on interactions (screening + pair rounds). */
  interactionShare: z.number().gt(0).lt(1).optional(),
  /** Cyclic mode: share of the interaction budget spent on the screening round. */
  screenShare: z.number().gt(0).lt(1).optional(),
  noise: z.enum(NOISE_MODES).default('local'),
  /** Distributed noise: the largest coalition of partners the noise must hold against (they know their own shares). */
  colluders: z.number().int().min(1).optional(),
  /** Distributed noise: the fewest uploads any sum holds (the job's quorum); set by the federation from the manifest. */
  minContributors: z.number().int().min(2).optional(),
});

export const gbdtParamsInputSchema = z.strictObject({
  trees: z.number().int().min(1).max(5000).optional(),
  /** Cyclic mode: passes over every column (main effects), before the interaction terms. */
  cyclicEpochs: z.number().int().min(1).max(100).optional(),
  /** Cyclic mode: two-column interaction terms, chosen by a screening round among the strongest columns (0: main effects only). */
  interactions: z.number().int().min(0).max(64).optional(),
  /** Cyclic mode: the columns (strongest main effects first) whose pairs the screening round scores. */
  interactionColumns: z.number().int().min(2).max(64).optional(),
  /** Cyclic mode: passes over the interaction terms. */
  interactionEpochs: z.number().int().min(1).max(100).optional(),
  /** Cyclic mode: cells per numeric column in an interaction term (its bins merged into this many). */
  interactionBins: z.number().int().min(2).max(256).optional(),
  /** Cyclic mode: cells per numeric column in the screening round. */
  screenBins: z.number().int().min(2).max(64).optional(),
  depth: z.number().int().min(1).max(10).optional(),
  learningRate: z.number().gt(0).max(1).optional(),
  /** Bins per numeric feature (booleans have 2, categoricals one per declared value + other). */
  bins: z.number().int().min(2).max(1024).optional(),
  /** L2 regularisation λ of the leaf weights (XGBoost `lambda`). */
  lambda: z.number().min(0).finite().optional(),
  /**
   * Cyclic mode: λ of every term update grows with the noise, λ + lambdaNoise·σ_G, where σ_G is the
   * standard deviation of the DP noise in one summed gradient cell (√(partners) × each partner's std,
   * public: it follows from the noise plan and how many partners the sum holds). Without DP σ_G = 0.
   */
  lambdaNoise: z.number().min(0).finite().optional(),
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
  interactionShare: number;
  screenShare: number;
  noise: NoiseMode;
  /** Distributed noise only (null for local noise). */
  distributed: { colluders: number; minContributors: number } | null;
}

/** The additive model of cyclic mode (DP-EBM main effects, then interaction terms). */
export interface CyclicParams {
  epochs: number;
  /** λ per standard deviation of a summed gradient cell's noise, added to λ in term updates. */
  lambdaNoise: number;
  interactions: number;
  interactionColumns: number;
  interactionEpochs: number;
  interactionBins: number;
  screenBins: number;
}

/** Parameters with every default resolved. */
export interface GbdtParams {
  /** Boosted trees (0 in cyclic mode, whose model is its terms). */
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
  /** Cyclic mode only (null otherwise). */
  cyclic: CyclicParams | null;
  dp: GbdtDpParams | null;
}

/**
 * Defaults by privacy regime, measured on bank marketing (the demo's split) and checked on telco churn
 * (benchmarks/RESULTS.md, "GBDT"; docs/MODELS.md, "GBDT defaults"). Without DP: 100 trees of depth 4 at
 * η = 0.1 — within 0.007 AUC of the best depth on bank and 0.002 on telco, where deeper trees overfit.
 * With DP: few, shallow trees whose root split is chosen on histograms of 5 columns per tree and whose
 * lower levels are random, so a tree costs two releases; larger λ and minChildWeight keep noisy leaves
 * small. Cyclic mode has its own defaults (an additive model: every release becomes model values).
 */
export const GBDT_DEFAULTS = {
  plain: {
    trees: 100,
    depth: 4,
    learningRate: 0.1,
    lambda: 1,
    minChildWeight: 1,
    splitMode: 'histogram',
    columnsPerTree: null,
    binEdges: 'dp-quantiles',
    bins: 32,
  },
  private: {
    /** The additive model: bank at ε = 3 0.771 against 0.751 for the best tree mode; telco 0.832 against 0.836 (benchmarks/results/gbdt-tuning.json). */
    splitMode: 'cyclic',
    trees: 40,
    depth: 3,
    learningRate: 0.3,
    lambda: 10,
    minChildWeight: 50,
    /** The tree mode a private job gets when it asks for trees without naming a mode (`trees` or `depth` given). */
    treeMode: 'hybrid',
    histogramLevels: 1,
    columnsPerTree: 5,
    binEdges: 'dp-quantiles',
    bins: 32,
    leafShare: 0.6,
    hessianShare: 0.5,
  },
  cyclic: {
    bins: 12,
    learningRate: 0.5,
    /**
     * λ = 5 + 1.5·σ_G: shrinkage in step with the noise (bank at ε = 3: σ_G ≈ 33, λ ≈ 55; at ε = 8
     * σ_G ≈ 14, λ ≈ 26; without DP 5). A fixed λ = 50 over-shrank at ε = 8 and without DP and
     * under-shrank at ε = 1 (benchmarks/gbdt/tune.ts; docs/MODELS.md, "GBDT defaults").
     */
    lambda: 5,
    lambdaNoise: 1.5,
    epochs: 2,
    interactions: 3,
    interactionColumns: 6,
    interactionEpochs: 1,
    interactionBins: 8,
    screenBins: 4,
    hessianShare: 0.2,
    interactionShare: 0.5,
    screenShare: 0.3,
  },
} as const;

type Input = z.output<typeof gbdtParamsInputSchema>;

const badParams = (m: string) => new FedmarkError('GBDT_BAD_PARAMS', `invalid GBDT parameters: ${m}`);

/** Fields that only shape greedy trees, and those that only shape the cyclic additive model: each refused in the other mode. */
const TREE_FIELDS = ['trees', 'depth', 'histogramLevels', 'columnsPerTree', 'minChildWeight'] as const;
const CYCLIC_FIELDS = ['lambdaNoise', 'cyclicEpochs', 'interactions', 'interactionColumns', 'interactionEpochs', 'interactionBins', 'screenBins'] as const;

function resolveCyclic(input: Input): CyclicParams {
  for (const f of TREE_FIELDS)
    if (input[f] !== undefined) throw badParams(`${f} applies to tree modes, not to splitMode "cyclic" (whose model is one term per column or pair)`);
  const d = GBDT_DEFAULTS.cyclic;
  return {
    epochs: input.cyclicEpochs ?? d.epochs,
    lambdaNoise: input.lambdaNoise ?? d.lambdaNoise,
    interactions: input.interactions ?? d.interactions,
    interactionColumns: input.interactionColumns ?? d.interactionColumns,
    interactionEpochs: input.interactionEpochs ?? d.interactionEpochs,
    interactionBins: input.interactionBins ?? d.interactionBins,
    screenBins: input.screenBins ?? d.screenBins,
  };
}

function resolveDp(input: Input, cyclic: boolean): GbdtDpParams | null {
  const dp = input.dp;
  if (!dp) return null;
  let distributed: GbdtDpParams['distributed'] = null;
  if (dp.noise === 'distributed') {
    const colluders = dp.colluders ?? 1;
    if (dp.minContributors === undefined)
      throw badParams('dp.noise "distributed" needs dp.minContributors (the fewest uploads a sum may hold: the job quorum)');
    if (colluders >= dp.minContributors) {
      throw badParams(
        `dp.colluders (${colluders}) must be below dp.minContributors (${dp.minContributors}): the noise must come from at least one partner outside the coalition`,
      );
    }
    distributed = { colluders, minContributors: dp.minContributors };
  } else if (dp.colluders !== undefined || dp.minContributors !== undefined) {
    throw badParams('dp.colluders and dp.minContributors apply to dp.noise "distributed" only');
  }
  return {
    epsilon: dp.epsilon,
    delta: dp.delta,
    leafShare: dp.leafShare ?? GBDT_DEFAULTS.private.leafShare,
    quantileShare: dp.quantileShare,
    hessianShare: dp.hessianShare ?? (cyclic ? GBDT_DEFAULTS.cyclic.hessianShare : GBDT_DEFAULTS.private.hessianShare),
    interactionShare: dp.interactionShare ?? GBDT_DEFAULTS.cyclic.interactionShare,
    screenShare: dp.screenShare ?? GBDT_DEFAULTS.cyclic.screenShare,
    noise: dp.noise,
    distributed,
  };
}

function resolve(input: Input): GbdtParams {
  const base = input.dp ? GBDT_DEFAULTS.private : GBDT_DEFAULTS.plain;
  // A private job that sets tree fields without a mode wants trees, not the additive default.
  const wantsTrees = TREE_FIELDS.some((f) => input[f] !== undefined);
  const splitMode = input.splitMode ?? (input.dp && wantsTrees ? GBDT_DEFAULTS.private.treeMode : base.splitMode);
  if (input.histogramLevels !== undefined && splitMode !== 'hybrid') {
    throw badParams(`histogramLevels applies to splitMode "hybrid" only (splitMode is "${splitMode}")`);
  }
  if (splitMode === 'cyclic') {
    const c = GBDT_DEFAULTS.cyclic;
    return {
      trees: 0,
      depth: 1,
      learningRate: input.learningRate ?? c.learningRate,
      bins: input.bins ?? c.bins,
      lambda: input.lambda ?? c.lambda,
      minChildWeight: 0,
      minSplitGain: input.minSplitGain,
      maxDeltaStep: input.maxDeltaStep,
      baseScore: input.baseScore,
      splitMode,
      histogramLevels: 0,
      columnsPerTree: null,
      binEdges: input.binEdges ?? base.binEdges,
      quantileGrid: input.quantileGrid,
      seed: input.seed,
      cyclic: resolveCyclic(input),
      dp: resolveDp(input, true),
    };
  }
  for (const f of CYCLIC_FIELDS) if (input[f] !== undefined) throw badParams(`${f} applies to splitMode "cyclic" only (splitMode is "${splitMode}")`);
  const depth = input.depth ?? base.depth;
  let histogramLevels: number;
  if (splitMode === 'histogram') histogramLevels = depth;
  else if (splitMode === 'random') histogramLevels = 0;
  else {
    if (depth < 2) throw badParams('hybrid split mode needs depth ≥ 2');
    histogramLevels = input.histogramLevels ?? Math.min(GBDT_DEFAULTS.private.histogramLevels, depth - 1);
    if (histogramLevels >= depth) {
      throw badParams(`histogramLevels (${histogramLevels}) must be below depth (${depth}) in hybrid mode; use splitMode "histogram" for all levels`);
    }
  }
  const dp = resolveDp(input, false);
  if (input.dp?.interactionShare !== undefined || input.dp?.screenShare !== undefined) {
    throw badParams(`dp.interactionShare and dp.screenShare apply to splitMode "cyclic" only (splitMode is "${splitMode}")`);
  }
  return {
    trees: input.trees ?? base.trees,
    depth,
    learningRate: input.learningRate ?? base.learningRate,
    bins: input.bins ?? base.bins,
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
    cyclic: null,
    dp,
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
  return p.cyclic === null && (p.histogramLevels < p.depth || p.dp !== null);
}

/**
 * Whether a histogram level queries left children only (the right = parent − left). Without DP this
 * halves the bytes. With DP it does not pay: a row touches one node per level either way, so querying
 * both children costs the same ε, and subtraction would add the parent's noise to every right child.
 */
export function usesSubtraction(p: GbdtParams): boolean {
  return p.dp === null;
}
