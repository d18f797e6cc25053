import { beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { loadBundledSchema } from '../../src/data/bundled.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest } from '../../src/federation/manifest.ts';
import { formatReleaseCosts, releaseCosts } from '../../src/federation/release-cost.ts';
import { planDp, sgdWorkload } from '../../src/federation/workloads/sgd/index.ts';

let schema: DatasetSchema;
beforeAll(async () => {
  schema = await loadBundledSchema('telco-churn');
});
const manifest = (epsilon: number | null, everyRound?: boolean) =>
  parseManifest({
    ...jobPreset({ jobId: 'cost-1', schema, partners: 3, rounds: 10, epsilon, evaluateEveryRound: everyRound }),
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: '2026-01-01T00:00:00.000Z',
    owner: publicIdentity(generateIdentity('o')),
    partners: ['a', 'b', 'c'].map((n) => publicIdentity(generateIdentity(n))),
  });

describe('the cost of every planned release, before the job starts', () => {
  it('lists the row count once, DP-SGD per round and the evaluations, composed to at most the target', () => {
    const m = manifest(3);
    const c = releaseCosts(sgdWorkload, m)!;
    expect(c.releases.map((r) => [r.label, r.releases])).toEqual([
      ['weight', 1],
      ['update', 10],
      ['evaluation', 1],
    ]);
    expect(c.epsilon).toBeLessThanOrEqual(3);
    expect(c.epsilon).toBeCloseTo(planDp(m)!.split.total, 12);
    // Each class alone costs less than all of them together.
    for (const r of c.releases) expect(r.epsilonAlone).toBeLessThan(c.epsilon);
    const text = formatReleaseCosts(c);
    expect(text).toMatch(/weight +1 +1 /);
    expect(text).toMatch(/all of them composed \(RDP\): ε ≤ 2\.9\d{3} of the target 3/);
  });

  it('counts an evaluation per round when the manifest asks for it, and nothing for a job without DP', () => {
    expect(releaseCosts(sgdWorkload, manifest(3, true))!.releases.find((r) => r.label === 'evaluation')!.releases).toBe(11);
    expect(releaseCosts(sgdWorkload, manifest(null))).toBeNull();
  });
});
