import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../src/data/encode.ts';
import type { DatasetSchema } from '../src/data/schema.ts';
import { FedmarkError } from '../src/errors.ts';
import { jobPreset, type JobPresetOptions } from '../src/federation/job-presets.ts';
import type { JobManifest } from '../src/federation/manifest.ts';
import { gbdtJobPreset, gbdtModel, type GbdtWorkloadParams } from '../src/federation/workloads/gbdt/index.ts';
import { foldStandardization, sgdModel, type SgdState } from '../src/federation/workloads/sgd/index.ts';
import { predictProba } from '../src/model/params.ts';
import { modelSpecSchema } from '../src/model/spec.ts';
import { saveModel } from '../src/model/tfjs-io.ts';
import { predictProba as predictTrees, saveXgboostModel, type GbdtState } from '../src/trees/index.ts';

/**
 * What a job trains, as the CLI takes it (`--model`): a logistic/MLP spec, or `{"kind":"gbdt", …}`
 * whose other fields are the GBDT workload's settings (trees, depth, splitMode, dp knobs…; the
 * layout comes from the schema). The owner's final model is saved in the model family's own format:
 * a tfjs model for logistic/MLP, XGBoost JSON for trees.
 */
export type JobModelOption = { kind: 'sgd'; spec: ReturnType<typeof modelSpecSchema.parse> } | { kind: 'gbdt'; params: Omit<GbdtWorkloadParams, 'layout'> };

/** Parses `--model` (JSON, or the bare words logistic / mlp / gbdt). */
export function parseModelOption(text: string): JobModelOption {
  let raw: unknown;
  if (text === 'logistic' || text === 'gbdt') raw = { kind: text };
  else if (text === 'mlp') raw = { kind: 'mlp', hidden: [16], activation: 'relu' };
  else {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new FedmarkError('JOB_MODEL', `--model: not JSON and not logistic, mlp or gbdt: ${(err as Error).message}`);
    }
  }
  if (raw && typeof raw === 'object' && (raw as { kind?: unknown }).kind === 'gbdt') {
    const { kind: _kind, ...params } = raw as Record<string, unknown>;
    return { kind: 'gbdt', params: params as Omit<GbdtWorkloadParams, 'layout'> };
  }
  const spec = modelSpecSchema.safeParse(raw);
  if (!spec.success) throw new FedmarkError('JOB_MODEL', `--model: ${spec.error.issues[0].path.join('.')}: ${spec.error.issues[0].message}`);
  return { kind: 'sgd', spec: spec.data };
}

/** The unsigned manifest of a job training `model` (for trees, `o.rounds` is ignored: the trees decide the rounds). */
export function jobManifestFor(model: JobModelOption, o: Omit<JobPresetOptions, 'model'> & { schema: DatasetSchema }): ReturnType<typeof jobPreset> {
  if (model.kind === 'gbdt') {
    const { rounds: _rounds, ...rest } = o;
    return gbdtJobPreset({ ...rest, gbdt: model.params });
  }
  return jobPreset({ ...o, model: model.spec });
}

/**
 * The released logistic/MLP parameters on the encoded features: a job that trained on standardised
 * features (workload.params.standardize) has the standardisation folded into its first layer, so
 * the saved model and every scorer read the encoded rows as they are.
 */
function encodedParams(manifest: JobManifest, state: unknown): Float64Array {
  return foldStandardization(manifest, (state as SgdState).params);
}

/** Scores (encoded, unstandardised) rows with the job's final public state. */
export function scoreWithState(manifest: JobManifest, state: unknown, data: Pick<Dataset, 'X' | 'n'>): Float64Array | Float32Array {
  if (manifest.model.kind === 'gbdt') return predictTrees(gbdtModel(state as GbdtState), data.X, data.n);
  return predictProba(sgdModel(manifest), manifest.dataset.featureNames.length, encodedParams(manifest, state), data.X, data.n);
}

/** Saves the owner's final model under `out` and returns the path: `model/` (tfjs) or `model.xgb.json` (XGBoost JSON, loadable with `xgboost.Booster(model_file=…)`). */
export async function saveJobModel(out: string, manifest: JobManifest, state: unknown, metadata: Record<string, unknown>): Promise<string> {
  mkdirSync(out, { recursive: true });
  if (manifest.model.kind === 'gbdt') {
    const path = join(out, 'model.xgb.json');
    await saveXgboostModel(path, gbdtModel(state as GbdtState));
    return path;
  }
  const dir = join(out, 'model');
  await saveModel(dir, sgdModel(manifest), manifest.dataset.featureNames.length, encodedParams(manifest, state), {
    ...metadata,
    featureNames: manifest.dataset.featureNames,
    purpose: manifest.purpose,
    schemaHash: manifest.dataset.schemaHash,
  });
  return dir;
}
