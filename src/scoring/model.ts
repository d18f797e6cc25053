/**
 * Loading a model for scoring, and the checks that it belongs to the data it is about to score:
 * the schema it was trained for (hash, or at least the feature layout) and the purpose it was
 * trained for.
 *
 * Provenance comes from the metadata saved with the model (`fedmark job run` and the demo record
 * job id, model hash, purpose, schema hash and feature names), else from a `manifest.json` of the
 * same job next to or one level above the model directory (where `fedmark job run --out` puts it).
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { FedmarkError } from '../errors.ts';
import { featureCount, featureNames, isFeature, type DatasetSchema } from '../data/schema.ts';
import { schemaHash } from '../federation/job-presets.ts';
import { buildBaseline, type Baseline, type BaselineSpec } from './baseline.ts';
import { loadWithProviders, type ScoringModel } from './scorer.ts';
import './dense-scorers.ts';
import './tree-scorer.ts';

export interface ModelProvenance {
  jobId: string | null;
  /** The purpose the model was trained for, if recorded. */
  purpose: string | null;
  /** sha256 of the canonical dataset schema the model was trained on, if recorded. */
  schemaHash: string | null;
  featureNames: string[] | null;
  /** Where the provenance came from. */
  source: 'model-metadata' | 'manifest' | 'none';
}

export interface LoadedScoringModel extends ScoringModel {
  dir: string;
  baseline: Baseline;
  provenance: ModelProvenance;
}

const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);

interface ManifestLike {
  jobId?: unknown;
  purpose?: unknown;
  dataset?: { schemaHash?: unknown; featureNames?: unknown };
}

async function readManifestNear(dir: string, jobId: string | null): Promise<ManifestLike | null> {
  for (const candidate of [join(dir, 'manifest.json'), join(dirname(resolve(dir)), 'manifest.json')]) {
    let m: ManifestLike;
    try {
      m = JSON.parse(await readFile(candidate, 'utf8')) as ManifestLike;
    } catch {
      continue;
    }
    // A manifest of another job in the same folder says nothing about this model.
    if (jobId !== null && m.jobId !== jobId) continue;
    return m;
  }
  return null;
}

export async function modelProvenance(dir: string, metadata: Record<string, unknown>): Promise<ModelProvenance> {
  const jobId = str(metadata.jobId);
  const names = Array.isArray(metadata.featureNames) && metadata.featureNames.every((x) => typeof x === 'string') ? (metadata.featureNames as string[]) : null;
  const fromMeta: ModelProvenance = {
    jobId,
    purpose: str(metadata.purpose),
    schemaHash: str(metadata.schemaHash),
    featureNames: names,
    source: 'model-metadata',
  };
  if (fromMeta.purpose && fromMeta.schemaHash) return fromMeta;
  const m = await readManifestNear(dir, jobId);
  if (m) {
    const mNames = Array.isArray(m.dataset?.featureNames) ? (m.dataset!.featureNames as unknown[]).filter((x): x is string => typeof x === 'string') : null;
    return {
      jobId: jobId ?? str(m.jobId),
      purpose: fromMeta.purpose ?? str(m.purpose),
      schemaHash: fromMeta.schemaHash ?? str(m.dataset?.schemaHash),
      featureNames: names ?? mNames,
      source: 'manifest',
    };
  }
  return { ...fromMeta, source: jobId || names ? 'model-metadata' : 'none' };
}

/**
 * Refuses a model trained for another schema: a different schema hash, else a different feature
 * layout, else (nothing recorded) a different input dimension.
 */
export function checkModelSchema(model: { scorer: { d: number }; provenance: ModelProvenance; dir: string }, schema: DatasetSchema): void {
  const p = model.provenance;
  const hash = schemaHash(schema);
  if (p.schemaHash && p.schemaHash !== hash) {
    throw new FedmarkError(
      'MODEL_SCHEMA_MISMATCH',
      `model ${model.dir} was trained for another dataset schema (schema hash ${p.schemaHash.slice(0, 12)}…, the given schema "${schema.name}" hashes to ${hash.slice(0, 12)}…)`,
      { modelSchemaHash: p.schemaHash, schemaHash: hash },
    );
  }
  const names = featureNames(schema);
  if (p.featureNames) {
    const diff = p.featureNames.length !== names.length ? -1 : p.featureNames.findIndex((f, i) => f !== names[i]);
    if (diff !== -1 || p.featureNames.length !== names.length) {
      throw new FedmarkError(
        'MODEL_SCHEMA_MISMATCH',
        `model ${model.dir} expects features [${p.featureNames.slice(0, 5).join(', ')}${p.featureNames.length > 5 ? ', …' : ''}] (${p.featureNames.length}); schema "${schema.name}" gives ${names.length}${diff >= 0 ? `, first difference at feature ${diff} ("${p.featureNames[diff]}" vs "${names[diff]}")` : ''}`,
      );
    }
  }
  const d = featureCount(schema);
  if (model.scorer.d !== d) {
    throw new FedmarkError('MODEL_SCHEMA_MISMATCH', `model ${model.dir} takes ${model.scorer.d} inputs, schema "${schema.name}" encodes ${d}`);
  }
}

/** Loads, attaches provenance and checks the model against the schema. */
export async function loadScoringModel(dir: string, schema: DatasetSchema, opts: { baseline?: BaselineSpec } = {}): Promise<LoadedScoringModel> {
  const baseline = buildBaseline(schema, opts.baseline);
  const loaded = await loadWithProviders(dir, { schema, baseline });
  const provenance = await modelProvenance(dir, loaded.metadata);
  const model: LoadedScoringModel = { ...loaded, dir, baseline, provenance };
  checkModelSchema(model, schema);
  return model;
}

/**
 * The purpose check: the run's declared purpose must be the one the model was trained for (when
 * recorded) and one the partner's policy allows. Returns the model's purpose (or null when unknown).
 */
export function checkPurpose(purpose: string, provenance: ModelProvenance, allowedPurposes: readonly string[]): void {
  if (!purpose.trim()) throw new FedmarkError('SCORING_PURPOSE', '--purpose must not be empty');
  if (purpose.length > 200) throw new FedmarkError('SCORING_PURPOSE', '--purpose must be at most 200 characters (it is recorded in the ledger)');
  if (provenance.purpose !== null && provenance.purpose !== purpose) {
    throw new FedmarkError(
      'SCORING_PURPOSE_MISMATCH',
      `the model was trained for purpose "${provenance.purpose}"; scoring it for "${purpose}" is a different use of the customers' data`,
    );
  }
  if (!allowedPurposes.includes(purpose)) {
    throw new FedmarkError(
      'SCORING_PURPOSE_NOT_ALLOWED',
      `the partner's policy does not allow purpose "${purpose}" (allowed: ${allowedPurposes.map((p) => `"${p}"`).join(', ') || 'none'})`,
    );
  }
}

/**
 * Columns a scoring run reads as model inputs or for ranking must be allowed by the partner's
 * policy; the id, consent and sensitive (fairness) columns are governance columns and always read.
 */
export function checkPolicyColumns(schema: DatasetSchema, extra: readonly (string | undefined)[], allowedColumns: readonly string[]): void {
  const allowed = new Set(allowedColumns);
  const used = [...schema.columns.filter(isFeature).map((c) => c.name), ...extra.filter((c): c is string => c !== undefined)];
  const denied = [...new Set(used)].filter((c) => !allowed.has(c));
  if (denied.length) {
    throw new FedmarkError('SCORING_COLUMNS_NOT_ALLOWED', `the partner's policy does not allow column(s) ${denied.map((c) => `"${c}"`).join(', ')} to be used`);
  }
}

/**
 * The model's purpose: as recorded with the model, else as declared by the operator
 * (`--model-purpose`); a model without either cannot be scored, because the purpose check would
 * have nothing to check against.
 */
export function resolveModelPurpose(provenance: ModelProvenance, declared: string | undefined): ModelProvenance {
  if (provenance.purpose !== null) {
    if (declared !== undefined && declared !== provenance.purpose) {
      throw new FedmarkError(
        'SCORING_PURPOSE_MISMATCH',
        `--model-purpose "${declared}" contradicts the purpose recorded with the model ("${provenance.purpose}")`,
      );
    }
    return provenance;
  }
  if (declared === undefined) {
    throw new FedmarkError(
      'MODEL_PURPOSE_UNKNOWN',
      'the model directory records no purpose (no metadata.purpose, no manifest.json of its job); declare the purpose it was trained for with --model-purpose',
    );
  }
  return { ...provenance, purpose: declared };
}
