import { beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { loadBundledSchema } from '../../src/data/bundled.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import { FedmarkError } from '../../src/errors.ts';
import { jobPreset, presetRecipe, type JobPresetOptions } from '../../src/federation/job-presets.ts';
import { MANIFEST_SCHEMA_VERSION, manifestHash, parseManifest } from '../../src/federation/manifest.ts';
import { DP_TRAINING, LOW_EPSILON, NON_PRIVATE_TRAINING, privacyTarget } from '../../src/federation/presets/recipes.ts';
import { gbdtJobPreset } from '../../src/federation/workloads/gbdt/preset.ts';
import type { ModelSpec } from '../../src/model/spec.ts';
import { sha256Canonical } from '../../src/privacy/ledger/canonical.ts';

const owner = publicIdentity(generateIdentity('owner'));
const partners = ['bank-a', 'telco-b', 'retail-c'].map((n) => publicIdentity(generateIdentity(n)));
let schema: DatasetSchema;
beforeAll(async () => {
  schema = await loadBundledSchema('telco-churn');
});

const mlp: ModelSpec = { kind: 'mlp', hidden: [16], activation: 'relu' };
const preset = (o: Partial<JobPresetOptions>) => jobPreset({ jobId: 'pin', schema, partners: 3, ...o });
const validated = (o: Partial<JobPresetOptions>) =>
  parseManifest({ ...preset(o), schemaVersion: MANIFEST_SCHEMA_VERSION, createdAt: '2026-01-01T00:00:00.000Z', owner, partners });

describe('jobPreset by model kind and privacy target', () => {
  it('keeps the manifests of jobs that pass their rounds and ε explicitly (hashes from before the recipes)', () => {
    // sha256 of jobPreset's output on main before presets/recipes.ts: a change here changes stored job hashes.
    const pins: [Partial<JobPresetOptions>, string][] = [
      [{ epsilon: 3 }, '5f773d0cc4f013eaa54e2a98d221cc47839f5686c991c865bc5356925e1a5d69'],
      [{ epsilon: null }, '013a5a0387390ee580dfe70cc1d5760558df7a4d46279b89e036b4c1ac469f36'],
      [{ epsilon: 1, rounds: 2 }, 'bb9f62b72d3fb256745613216105ccc2b4dd35981b866050554f8369498cc94b'],
      [{ epsilon: 3, model: mlp }, '54a81375153ce208dc5af08ba68745824a3490733131664364e01ee6477e115d'],
      [{ epsilon: null, rounds: 4 }, '1c7f8b30547a1923dd87b4c30a3ce243150356e6faaf8cdea08e18c77b79521d'],
    ];
    for (const [o, hash] of pins) expect(sha256Canonical(preset(o)), JSON.stringify(o)).toBe(hash);
  });

  it('picks the privacy target from ε: none, low up to LOW_EPSILON, moderate above', () => {
    expect(privacyTarget(null)).toBe('none');
    expect(privacyTarget(0.5)).toBe('low');
    expect(privacyTarget(LOW_EPSILON)).toBe('low');
    expect(privacyTarget(1.01)).toBe('moderate');
    expect(privacyTarget(8)).toBe('moderate');
  });

  it('selects rounds, local training and standardisation per kind × ε', () => {
    const cases: { model?: ModelSpec; epsilon: number | null; rounds: number; local: object; standardize: boolean }[] = [
      { model: undefined, epsilon: null, rounds: 20, local: NON_PRIVATE_TRAINING, standardize: false },
      { model: mlp, epsilon: null, rounds: 20, local: NON_PRIVATE_TRAINING, standardize: true },
      { model: undefined, epsilon: 0.5, rounds: 30, local: DP_TRAINING, standardize: false },
      { model: mlp, epsilon: 1, rounds: 30, local: DP_TRAINING, standardize: false },
      { model: undefined, epsilon: 3, rounds: 20, local: DP_TRAINING, standardize: true },
      { model: mlp, epsilon: 3, rounds: 20, local: DP_TRAINING, standardize: false },
    ];
    for (const c of cases) {
      const label = `${c.model?.kind ?? 'logistic'} ε=${c.epsilon}`;
      const recipe = presetRecipe({ model: c.model, epsilon: c.epsilon });
      expect(recipe.standardize, label).toBe(c.standardize);
      expect(recipe.earlyStopping, label).toBeNull();
      const m = validated({ model: c.model, epsilon: c.epsilon });
      expect(m.rounds, label).toBe(c.rounds);
      expect(m.localTraining, label).toEqual(c.local);
      expect(m.model.kind, label).toBe(c.model?.kind ?? 'logistic');
      expect(m.dp?.targetEpsilon ?? null, label).toBe(c.epsilon);
      expect(m.evaluation.earlyStopping, label).toBeUndefined();
    }
  });

  it('lets explicit options win over the recipe', () => {
    const m = validated({ epsilon: 0.5, rounds: 7, earlyStopping: { every: 2, minDelta: 0, metric: 'auc' } });
    expect(m.rounds).toBe(7);
    expect(m.evaluation.earlyStopping).toEqual({ every: 2, minDelta: 0, metric: 'auc' });
  });

  it('delegates trees to the gbdt preset, and its manifest validates', () => {
    for (const epsilon of [null, 1, 3]) {
      const viaPreset = preset({ model: { kind: 'gbdt' }, epsilon, rounds: 99 });
      expect(manifestHash(viaPreset as never)).toBe(manifestHash(gbdtJobPreset({ jobId: 'pin', schema, partners: 3, epsilon }) as never));
      const m = validated({ model: { kind: 'gbdt' }, epsilon });
      expect(m.workload.kind).toBe('gbdt');
    }
    expect(() => presetRecipe({ model: { kind: 'gbdt' }, epsilon: 3 })).toThrow(FedmarkError);
  });
});
