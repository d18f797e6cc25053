/**
 * Public API of the trees module: federated gradient-boosted trees (binary log loss) under HE and DP.
 * The GBDT workload adapter calls the step functions; docs/MODELS.md ("Gradient-boosted trees") has the
 * whole picture.
 */
export {
  GBDT_DEFAULTS,
  NOISE_MODES,
  SPLIT_MODES,
  gbdtDpSchema,
  gbdtParamsInputSchema,
  hasLeafRound,
  parseGbdtParams,
  usesSubtraction,
  type GbdtDpParams,
  type GbdtParams,
  type GbdtParamsInput,
  type SplitMode,
  type NoiseMode,
  type CyclicParams,
} from './params.ts';
export { binLayout, checkLayout, featureLayout, numericLayout, type BinLayout, type FeatureGroup, type FeatureLayout } from './layout.ts';
export {
  binMatrix,
  checkEdges,
  dyadicCounts,
  edgesFromCounts,
  edgesHash,
  quantileCellsPerRow,
  quantilePartLength,
  schemaEdges,
  type BinEdges,
  type BinnedMatrix,
} from './edges.ts';
export {
  GRAD_BOUND,
  HESS_BOUND,
  cyclicSteps,
  mainPartLength,
  pairPartLength,
  screenPartLength,
  valuesPerJob,
  histogramColumns,
  leafPartLength,
  levelPartLength,
  levelQuerySlots,
  stepAt,
  stepParts,
  stepsPerTree,
  totalSteps,
  treeBinLayout,
  valuesPerTree,
  type GbdtPartSpec,
  type GbdtStep,
} from './schedule.ts';
export {
  applyLeaves,
  applyLevel,
  applyQuantiles,
  applyScreen,
  applyStep,
  applyTerm,
  currentStep,
  initialState,
  isComplete,
  rankedColumns,
  screenCandidates,
  stateHash,
  STATE_FORMAT,
  termAxes,
  type GbdtState,
  type GbdtSums,
  type TermState,
} from './state.ts';
export { candidatePairs, cellOfRow, pairCounts, termAxis, termCells, termTree, type TermAxis } from './terms.ts';
export {
  GbdtLocalData,
  leafSums,
  levelHistograms,
  localStep,
  localStepOnThreads,
  quantileCounts,
  screenHistograms,
  termHistograms,
  type LocalRows,
  type LocalThreads,
} from './local.ts';
export { HISTOGRAM_CHUNK_ROWS } from './histograms.ts';
export {
  addReleaseNoise,
  calibrateGbdtNoise,
  releasePlan,
  stepRelease,
  sumNoiseVariance,
  type GbdtNoisePlan,
  type GbdtReleaseLabel,
  type LabelledDpEvent,
  type PartRelease,
  type StepRelease,
} from './dp.ts';
export { MODEL_FORMAT, baseMargin, featureImportance, leafOf, modelFromState, predictMargin, predictProba, type CompactTree, type GbdtModel } from './model.ts';
export { fromXgboostJson, loadXgboostModel, saveXgboostModel, toXgboostJson } from './xgboost-json.ts';
export { PathExplainer, localCovers, nodeValues, pathContributions, type CoverSource } from './explain.ts';
export { sumParts, trainFederated, trainPooled, type GbdtRunOptions, type GbdtRunResult } from './simulate.ts';
