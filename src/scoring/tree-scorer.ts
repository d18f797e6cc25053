/**
 * Gradient-boosted trees (src/trees/) as a scorer: the "gbdt" provider of the scoring registry.
 *
 * A tree model directory holds `model.json` in XGBoost's JSON format — written by fedmark
 * (`saveGbdtModelDir`, or `saveXgboostModel` from src/trees/) or trained by XGBoost itself
 * (`Booster.save_model("model.json")`, binary:logistic) — and optionally `metadata.json` with the
 * provenance the scoring checks read (job id, purpose, schema hash), like the metadata a dense model
 * carries inside its tfjs `model.json`. Without it, provenance comes from a `manifest.json` of the
 * job next to the model, or the operator declares the purpose (`--model-purpose`).
 *
 * - Scores: `predictMargin` — the ensemble's margin (logit), exactly what `predictProba` and
 *   XGBoost's `predict` turn into a probability.
 * - Reasons: Saabas path contributions (`PathExplainer`): each split on the row's path adds the
 *   change in expected node value to its feature; with the bias they sum to the margin exactly
 *   (they telescope to the leaf values). Node values are the children's unweighted mean for a
 *   fedmark model (it carries no covers, see src/trees/model.ts), cover-weighted for an XGBoost
 *   model that carries its covers (then they are xgboost's own `approx_contribs`).
 * - Model hash: SHA-256 of `model.json` as stored, so anyone can recompute it from the file.
 */
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import { PathExplainer, fromXgboostJson, predictMargin, toXgboostJson, type GbdtModel } from '../trees/index.ts';
import { sha256Hex } from '../util/hash.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';
import { PathScorer } from './path-scorer.ts';
import { registerScorerProvider, type ScorerProvider } from './scorer.ts';

export const GBDT_MODEL_FILE = 'model.json';
export const GBDT_METADATA_FILE = 'metadata.json';

const metadataSchema = z.strictObject({
  jobId: z.string().min(1).max(128).optional(),
  purpose: z.string().min(1).max(200).optional(),
  schemaHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  dataset: z.string().max(200).optional(),
});
export type GbdtModelMetadata = z.infer<typeof metadataSchema>;

/** XGBoost's default names (f0, f1, …): the file says nothing about which encoded feature is which. */
const anonymous = (names: readonly string[]): boolean => names.every((n, j) => n === `f${j}`);

async function readMetadata(dir: string): Promise<GbdtModelMetadata> {
  const file = join(dir, GBDT_METADATA_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new FedmarkError('MODEL_UNREADABLE', `${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FedmarkError('MODEL_METADATA_INVALID', `${file}: not JSON (${(err as Error).message})`);
  }
  const r = metadataSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new FedmarkError('MODEL_METADATA_INVALID', `${file}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  return r.data;
}

/** The scorer of a tree ensemble (exported for tests and for callers holding a model in memory). */
export function gbdtScorer(model: GbdtModel): PathScorer {
  const covers = model.trees.length > 0 && model.trees.every((t) => t.cover) ? 'model' : 'uniform';
  const explainer = new PathExplainer(model, covers);
  return new PathScorer('gbdt', model.numFeature, (X, n) => predictMargin(model, X, n), explainer, covers);
}

export const gbdtModelProvider: ScorerProvider = {
  name: 'gbdt',
  async detect(dir) {
    try {
      const json = JSON.parse(await readFile(join(dir, GBDT_MODEL_FILE), 'utf8')) as { learner?: { gradient_booster?: unknown } };
      return typeof json?.learner?.gradient_booster === 'object' && json.learner.gradient_booster !== null;
    } catch {
      return false;
    }
  },
  async load(dir) {
    const file = join(dir, GBDT_MODEL_FILE);
    const bytes = await readFile(file);
    let model: GbdtModel;
    try {
      model = fromXgboostJson(bytes.toString('utf8'));
    } catch (err) {
      if (err instanceof FedmarkError) throw new FedmarkError(err.code, `${file}: ${err.message}`, err.details);
      throw err;
    }
    const meta = await readMetadata(dir);
    return {
      scorer: gbdtScorer(model),
      modelHash: sha256Hex(bytes),
      spec: { kind: 'gbdt', trees: model.trees.length, baseScore: model.baseScore },
      metadata: { ...meta, ...(anonymous(model.featureNames) ? {} : { featureNames: model.featureNames }) },
    };
  },
};

/** Writes a tree model directory (`model.json` in XGBoost JSON, `metadata.json`); returns the model hash. */
export function saveGbdtModelDir(dir: string, model: GbdtModel, metadata: GbdtModelMetadata = {}): string {
  const meta = metadataSchema.parse(metadata);
  const text = toXgboostJson(model);
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, GBDT_METADATA_FILE), `${JSON.stringify(meta, null, 2)}\n`);
  writeFileAtomic(join(dir, GBDT_MODEL_FILE), text);
  return sha256Hex(Buffer.from(text, 'utf8'));
}

registerScorerProvider(gbdtModelProvider);
