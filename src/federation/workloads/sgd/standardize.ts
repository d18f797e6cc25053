import { z } from 'zod';
import { FedmarkError } from '../../../errors.ts';
import { parameterLayout } from '../../../model/params.ts';
import type { Dataset } from '../../../data/encode.ts';
import type { PartnerRows } from '../../workload.ts';
import type { JobManifest } from '../../manifest.ts';

/**
 * Feature standardisation for the SGD workload: x'ⱼ = (xⱼ − μⱼ)/sⱼ on the named encoded columns, with
 * μ and s public constants in the manifest — the released output of a `feature-stats` job (already
 * charged: post-processing). Every partner applies the same transform to its training and hold-out
 * rows, so a column declared 0–300,000 whose values sit near 0 moves under SGD like any other.
 * The trained model is on standardised inputs; `foldStandardization` turns it into the same model on
 * the encoded features, so scoring needs no transform.
 */
export const standardizeSchema = z
  .object({
    columns: z.array(z.string().min(1)).min(1),
    mean: z.array(z.number().finite()),
    std: z.array(z.number().finite().positive()),
  })
  .strict();
export type Standardize = z.infer<typeof standardizeSchema>;

export const sgdParamsSchema = z.object({ standardize: standardizeSchema.optional() }).strict();

interface Transform {
  index: number[];
  mean: number[];
  std: number[];
}

const transforms = new WeakMap<JobManifest, Transform | null>();

/** Checks the SGD workload's params (MANIFEST_INVALID naming the field). */
export function validateSgdParams(m: JobManifest): void {
  transformOf(m);
}

function transformOf(m: JobManifest): Transform | null {
  if (transforms.has(m)) return transforms.get(m)!;
  const p = sgdParamsSchema.safeParse(m.workload.params);
  if (!p.success) throw new FedmarkError('MANIFEST_INVALID', `sgd: workload.params.${p.error.issues[0].path.join('.')}: ${p.error.issues[0].message}`);
  const s = p.data.standardize;
  let t: Transform | null = null;
  if (s) {
    const k = s.columns.length;
    if (s.mean.length !== k || s.std.length !== k)
      throw new FedmarkError(
        'MANIFEST_INVALID',
        `sgd: workload.params.standardize: ${k} columns but ${s.mean.length} means and ${s.std.length} standard deviations`,
      );
    const index = s.columns.map((c) => m.dataset.featureNames.indexOf(c));
    const missing = s.columns.filter((_, j) => index[j] < 0);
    if (missing.length)
      throw new FedmarkError(
        'MANIFEST_INVALID',
        `sgd: workload.params.standardize: ${missing.map((c) => `"${c}"`).join(', ')} not a feature of the job's dataset`,
      );
    if (new Set(index).size !== k) throw new FedmarkError('MANIFEST_INVALID', 'sgd: workload.params.standardize.columns has duplicates');
    t = { index, mean: s.mean, std: s.std };
  }
  transforms.set(m, t);
  return t;
}

// A partner's rows are transformed once per job, not once per round.
const transformed = new WeakMap<Transform, WeakMap<Dataset, Dataset>>();

function apply(t: Transform, ds: Dataset): Dataset {
  let cache = transformed.get(t);
  if (!cache) transformed.set(t, (cache = new WeakMap()));
  const hit = cache.get(ds);
  if (hit) return hit;
  const X = Float32Array.from(ds.X);
  for (let i = 0; i < ds.n; i++) {
    for (let j = 0; j < t.index.length; j++) {
      const at = i * ds.d + t.index[j];
      X[at] = (X[at] - t.mean[j]) / t.std[j];
    }
  }
  const out = { ...ds, X };
  cache.set(ds, out);
  return out;
}

/** The partner's rows as the job trains and evaluates on them (unchanged without `standardize`). */
export function standardizedRows(m: JobManifest, rows: PartnerRows): PartnerRows {
  const t = transformOf(m);
  return t ? { train: apply(t, rows.train), test: apply(t, rows.test) } : rows;
}

/**
 * The trained model on the encoded (unstandardised) features: the first layer's kernel rows of
 * standardised inputs divided by sⱼ, its bias minus Σⱼ Kⱼ·μⱼ/sⱼ — the same scores, exact up to rounding.
 */
export function foldStandardization(m: JobManifest, params: Float64Array): Float64Array {
  const t = transformOf(m);
  if (!t) return params;
  const model = m.model;
  if (model.kind === 'gbdt')
    throw new FedmarkError('MANIFEST_INVALID', `job ${m.jobId}: standardisation folds into logistic or MLP weights, not ${model.kind}`);
  const layer = parameterLayout(model, m.dataset.featureNames.length).layers[0];
  const out = Float64Array.from(params);
  for (let j = 0; j < t.index.length; j++) {
    const i = t.index[j];
    for (let o = 0; o < layer.outDim; o++) {
      const k = params[layer.kernelOffset + i * layer.outDim + o];
      out[layer.kernelOffset + i * layer.outDim + o] = k / t.std[j];
      out[layer.biasOffset + o] -= (k * t.mean[j]) / t.std[j];
    }
  }
  return out;
}
