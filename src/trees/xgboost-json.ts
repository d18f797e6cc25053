/**
 * XGBoost's JSON model format (the `Booster.save_model("m.json")` schema, version 1.7), both ways, so a
 * data scientist loads a fedmark ensemble with `xgboost.Booster(model_file=...)` and gets the same
 * predictions, and fedmark scores XGBoost-trained binary models natively.
 *
 * What the file carries, checked against xgboost 1.7.4: prediction reads only the tree structure
 * (left/right children, split_indices, split_conditions, default_left) and base_score. base_weights,
 * loss_changes and sum_hessian must be present as arrays of the right length but are not used to
 * predict, so fedmark writes zeros: covers and per-node gains are exactly what TimberStrike (2025) used
 * to rebuild training rows. The price is that xgboost's own `pred_contribs` (TreeSHAP and the Saabas
 * approximation both weight by cover) returns NaN on such a file; fedmark's `pathContributions`
 * (./explain.ts) explains it without covers. Feature names go into a learner attribute, not
 * `feature_names`: xgboost refuses names containing "<" (one-hot "<other>" slots) and would then demand
 * named columns at predict time.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';
import { MODEL_FORMAT, type CompactTree, type GbdtModel } from './model.ts';

const XGB_ROOT_PARENT = 2147483647;
const WRITTEN_VERSION = [1, 7, 4];
const META_ATTRIBUTE = 'fedmark';

const treeSchema = z.looseObject({
  left_children: z.array(z.number().int()),
  right_children: z.array(z.number().int()),
  split_indices: z.array(z.number().int().min(0)),
  split_conditions: z.array(z.number()),
  default_left: z.array(z.union([z.number(), z.boolean()])),
  split_type: z.array(z.number().int()).optional(),
  sum_hessian: z.array(z.number()).optional(),
  tree_param: z.looseObject({ num_nodes: z.string() }).optional(),
});

const xgbSchema = z.looseObject({
  learner: z.looseObject({
    attributes: z.record(z.string(), z.string()).optional(),
    feature_names: z.array(z.string()).optional(),
    gradient_booster: z.looseObject({
      name: z.string(),
      model: z
        .looseObject({
          trees: z.array(treeSchema),
          tree_info: z.array(z.number().int()).optional(),
        })
        .optional(),
    }),
    learner_model_param: z.looseObject({
      base_score: z.string(),
      num_class: z.string().optional(),
      num_feature: z.string(),
    }),
    objective: z.looseObject({ name: z.string() }),
  }),
  version: z.array(z.number()).optional(),
});

/** An array XGBoost reads as floating-point numbers (its parser refuses an integer literal there). */
class FloatArray {
  constructor(readonly values: readonly number[]) {}
}

/**
 * The shortest decimal that reads back as the same float32 — what XGBoost itself writes. It matters for
 * base_score: xgboost 1.7 parses that string parameter as a float and silently falls back to 0.5 when
 * given a 17-digit double rendering.
 */
export function float32Text(v: number): string {
  const f = Math.fround(v);
  if (!Number.isFinite(f)) throw new FedmarkError('GBDT_BAD_MODEL', `cannot write a non-finite value (${v}) to an XGBoost model`);
  for (let p = 1; p <= 9; p++) {
    const s = f.toPrecision(p);
    if (Math.fround(Number(s)) === f) return String(Number(s));
  }
  return String(f);
}

function floatLiteral(v: number): string {
  const s = float32Text(v);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/** JSON text in which FloatArray values are written with a decimal point or exponent. */
function stringify(value: unknown): string {
  if (value instanceof FloatArray) return `[${value.values.map(floatLiteral).join(',')}]`;
  if (Array.isArray(value)) return `[${value.map(stringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${stringify(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Probabilities from a sigmoid of the margin: the objectives fedmark can score. */
const LOGISTIC_OBJECTIVES = new Set(['binary:logistic', 'reg:logistic']);

function xgbTree(t: CompactTree, id: number, numFeature: number): Record<string, unknown> {
  const n = t.left.length;
  const parents = new Array<number>(n).fill(XGB_ROOT_PARENT);
  for (let i = 0; i < n; i++) {
    if (t.left[i] >= 0) {
      parents[t.left[i]] = i;
      parents[t.right[i]] = i;
    }
  }
  const zeros = () => new Array<number>(n).fill(0);
  return {
    base_weights: new FloatArray(zeros()),
    categories: [],
    categories_nodes: [],
    categories_segments: [],
    categories_sizes: [],
    default_left: t.defaultLeft.map((b) => (b ? 1 : 0)),
    id,
    left_children: [...t.left],
    loss_changes: new FloatArray(zeros()),
    parents,
    right_children: [...t.right],
    // XGBoost keeps a leaf's value in split_conditions.
    split_conditions: new FloatArray(t.left.map((l, i) => (l >= 0 ? t.threshold[i] : t.value[i]))),
    split_indices: t.left.map((l, i) => (l >= 0 ? t.feature[i] : 0)),
    split_type: zeros(),
    sum_hessian: new FloatArray(zeros()),
    tree_param: { num_deleted: '0', num_feature: String(numFeature), num_nodes: String(n), size_leaf_vector: '0' },
  };
}

/** The model in XGBoost's JSON format, as text (covers, gains and node weights stripped; see the module comment). */
export function toXgboostJson(model: GbdtModel): string {
  return stringify(xgboostObject(model));
}

function xgboostObject(model: GbdtModel): Record<string, unknown> {
  const meta = { format: model.format, featureNames: model.featureNames, importance: model.importance };
  return {
    learner: {
      attributes: { [META_ATTRIBUTE]: JSON.stringify(meta) },
      feature_names: [],
      feature_types: [],
      gradient_booster: {
        model: {
          gbtree_model_param: { num_parallel_tree: '1', num_trees: String(model.trees.length), size_leaf_vector: '0' },
          tree_info: model.trees.map(() => 0),
          trees: model.trees.map((t, i) => xgbTree(t, i, model.numFeature)),
        },
        name: 'gbtree',
      },
      learner_model_param: {
        base_score: float32Text(model.baseScore),
        boost_from_average: '1',
        num_class: '0',
        num_feature: String(model.numFeature),
        num_target: '1',
      },
      objective: { name: 'binary:logistic', reg_loss_param: { scale_pos_weight: '1' } },
    },
    version: WRITTEN_VERSION,
  };
}

function bad(m: string): FedmarkError {
  return new FedmarkError('GBDT_XGB_INVALID', `XGBoost model: ${m}`);
}

function parseBaseScore(s: string): number {
  // xgboost ≥ 2.1 writes a vector "[5E-1]"; earlier versions a scalar "5E-1".
  const v = Number(s.replace(/^\[|\]$/g, ''));
  if (!(v > 0 && v < 1)) throw bad(`base_score "${s}" is not a probability in (0, 1)`);
  return v;
}

function compactFromXgb(t: z.infer<typeof treeSchema>, index: number, numFeature: number): CompactTree {
  const n = t.left_children.length;
  for (const [name, arr] of [
    ['right_children', t.right_children],
    ['split_indices', t.split_indices],
    ['split_conditions', t.split_conditions],
    ['default_left', t.default_left],
  ] as const) {
    if (arr.length !== n) throw bad(`tree ${index}: ${name} has ${arr.length} entries, left_children ${n}`);
  }
  if (n === 0) throw bad(`tree ${index} has no nodes`);
  if (t.split_type?.some((s) => s !== 0)) {
    throw new FedmarkError('GBDT_XGB_UNSUPPORTED', `XGBoost model: tree ${index} has categorical splits, which fedmark does not score (use one-hot features)`);
  }
  const out: CompactTree = { left: [], right: [], feature: [], threshold: [], value: [], defaultLeft: [] };
  // Children after parents (XGBoost's order): checking it also rules out cycles in a hostile file.
  for (let i = 0; i < n; i++) {
    const l = t.left_children[i];
    const r = t.right_children[i];
    const leaf = l === -1;
    if (leaf ? r !== -1 : !(l > i && r > i && l < n && r < n)) throw bad(`tree ${index}, node ${i}: bad children (${l}, ${r})`);
    if (!leaf && t.split_indices[i] >= numFeature)
      throw bad(`tree ${index}, node ${i}: split on feature ${t.split_indices[i]} but num_feature is ${numFeature}`);
    const c = t.split_conditions[i];
    if (!Number.isFinite(c)) throw bad(`tree ${index}, node ${i}: split_conditions is not finite`);
    out.left.push(l);
    out.right.push(r);
    out.feature.push(leaf ? 0 : t.split_indices[i]);
    out.threshold.push(leaf ? 0 : Math.fround(c));
    out.value.push(leaf ? Math.fround(c) : 0);
    out.defaultLeft.push(Boolean(t.default_left[i]));
  }
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    for (const c of out.left[i] >= 0 ? [out.left[i], out.right[i]] : []) {
      if (seen[c]) throw bad(`tree ${index}: node ${c} has two parents`);
      seen[c] = 1;
    }
  }
  if (t.sum_hessian && t.sum_hessian.length === n && t.sum_hessian.some((h) => h > 0)) out.cover = [...t.sum_hessian];
  return out;
}

/** A model from XGBoost JSON (text, or an object from JSON.parse): binary logistic gbtree models only. */
export function fromXgboostJson(input: unknown): GbdtModel {
  let json = input;
  if (typeof input === 'string') {
    try {
      json = JSON.parse(input);
    } catch (err) {
      throw bad(`not JSON (${(err as Error).message}); fedmark reads XGBoost's JSON format, not its binary UBJ/deprecated formats`);
    }
  }
  const r = xgbSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw bad(`${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const { learner } = r.data;
  if (!LOGISTIC_OBJECTIVES.has(learner.objective.name)) {
    throw new FedmarkError('GBDT_XGB_UNSUPPORTED', `XGBoost model: objective "${learner.objective.name}" is not supported (binary:logistic or reg:logistic)`);
  }
  if (learner.gradient_booster.name !== 'gbtree' || !learner.gradient_booster.model) {
    throw new FedmarkError('GBDT_XGB_UNSUPPORTED', `XGBoost model: booster "${learner.gradient_booster.name}" is not supported (gbtree)`);
  }
  const numClass = Number(learner.learner_model_param.num_class ?? '0');
  if (numClass > 1) throw new FedmarkError('GBDT_XGB_UNSUPPORTED', `XGBoost model: ${numClass} classes; fedmark scores binary models`);
  const numFeature = Number(learner.learner_model_param.num_feature);
  if (!(Number.isInteger(numFeature) && numFeature >= 1)) throw bad(`num_feature "${learner.learner_model_param.num_feature}" is not a positive integer`);
  const trees = learner.gradient_booster.model.trees.map((t, i) => compactFromXgb(t, i, numFeature));
  let featureNames = learner.feature_names?.length === numFeature ? [...learner.feature_names] : Array.from({ length: numFeature }, (_, j) => `f${j}`);
  let importance: number[] | null = null;
  const meta = learner.attributes?.[META_ATTRIBUTE];
  if (meta) {
    const m = z
      .object({ featureNames: z.array(z.string()).length(numFeature), importance: z.array(z.number()).length(numFeature).nullable() })
      .safeParse(safeJson(meta));
    if (m.success) {
      featureNames = m.data.featureNames;
      importance = m.data.importance;
    }
  }
  return { format: MODEL_FORMAT, baseScore: parseBaseScore(learner.learner_model_param.base_score), numFeature, featureNames, trees, importance };
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}

/** Writes the model as an XGBoost JSON file. */
export async function saveXgboostModel(path: string, model: GbdtModel): Promise<void> {
  await writeFile(path, toXgboostJson(model));
}

/** Reads an XGBoost JSON model file (e.g. one fedmark wrote, or `Booster.save_model("m.json")`). */
export async function loadXgboostModel(path: string): Promise<GbdtModel> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FedmarkError('GBDT_XGB_UNREADABLE', `${path}: cannot read model file (${(err as Error).message})`);
  }
  try {
    return fromXgboostJson(text);
  } catch (err) {
    if (err instanceof FedmarkError) throw new FedmarkError(err.code, `${path}: ${err.message}`, err.details);
    throw err;
  }
}
