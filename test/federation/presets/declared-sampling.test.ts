import { describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../../src/crypto/identity.ts';
import { loadBundledSchema } from '../../../src/data/bundled.ts';
import { jobPreset } from '../../../src/federation/job-presets.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest } from '../../../src/federation/manifest.ts';
import { declaredMeanRows, samplingRateForDeclaredRows } from '../../../src/federation/presets/declared-sampling.ts';
import { planDp } from '../../../src/federation/workloads/sgd/dp-plan.ts';

const ids = ['a', 'b', 'c'].map((n) => generateIdentity(n));
const full = (m: ReturnType<typeof jobPreset>) =>
  parseManifest({
    ...m,
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: '2026-01-01T00:00:00.000Z',
    owner: publicIdentity(ids[0]),
    partners: ids.map(publicIdentity),
  });

describe('DP-SGD sampling rate from declared partner sizes', () => {
  it('holds the expected batch at the mean declared partner, capped at q = 1', () => {
    expect(declaredMeanRows([1000, 2000, 6000])).toBe(3000);
    expect(samplingRateForDeclaredRows(3000, 128)).toBe(128 / 3000);
    expect(samplingRateForDeclaredRows(50, 128)).toBe(1);
    expect(() => declaredMeanRows([])).toThrow(/at least one/);
    expect(() => declaredMeanRows([10, Number.NaN])).toThrow(/finite/);
  });

  it('jobPreset records the declared mean, and the DP plan (what privacy plan shows) runs its steps', async () => {
    const schema = await loadBundledSchema('telco-churn');
    const o = { jobId: 'declared', schema, partners: 3, rounds: 5, epsilon: 3 };
    const m = full(jobPreset({ ...o, declaredRows: [725, 1076, 1580] }));
    expect(m.localTraining.declaredRows).toBeCloseTo(1127, 9);
    expect(m.localTraining.samplingRate).toBe(128 / m.localTraining.declaredRows!);
    const plan = planDp(m)!;
    expect(plan.samplingRate).toBe(m.localTraining.samplingRate);
    expect(plan.stepsPerRound).toBe(Math.round(1127 / 128)); // 9 steps a round, not the fixed rate's 50
    expect(plan.maxSteps).toBe(5 * 9);
    // Without it the manifest (and its hash) is the recipe's; without DP declared rows change nothing.
    expect(full(jobPreset(o)).localTraining.samplingRate).toBe(0.02);
    expect(full(jobPreset({ ...o, epsilon: null, declaredRows: 900 })).localTraining.declaredRows).toBeUndefined();
    // A sampling rate that does not follow the declared rows is refused.
    const edited = jobPreset({ ...o, declaredRows: 1127 });
    expect(() => full({ ...edited, localTraining: { ...edited.localTraining, samplingRate: 0.02 } })).toThrow(/is not batchSize \/ declaredRows/);
  });
});
