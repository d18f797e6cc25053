import { thrown } from '../helpers/errors.ts';
import { describe, expect, it } from 'vitest';
import type { JobManifest } from '../../src/federation/manifest.ts';
import { planOf, releasePlan, stateRounds, WorkloadRegistry, type AnyWorkload, type RoundPlan } from '../../src/federation/workload.ts';
import { builtinWorkloads, sgdWorkload } from '../../src/federation/workloads/index.ts';

const base: RoundPlan = {
  kind: 'k',
  stages: ['upload'],
  parts: [{ name: 'p', length: 2, domain: 'real', bound: null, use: 'state' }],
  selection: 'all',
  releases: [],
  updatesState: true,
};
const fake = (plan: Partial<RoundPlan>, kind = 'fake'): AnyWorkload =>
  ({ ...sgdWorkload, kind, totalRounds: () => 2, plan: () => ({ ...base, ...plan }), validate: () => {} }) as unknown as AnyWorkload;
const m = { jobId: 'j', workload: { kind: 'fake', params: {} }, rounds: 3 } as unknown as JobManifest;

describe('the workload seam', () => {
  it('checks every plan a workload returns before anyone acts on it', () => {
    expect(planOf(fake({}), m, 1).kind).toBe('k');
    expect(thrown(() => planOf(fake({}), m, 3))).toMatch(/ROUND_OUT_OF_RANGE: round 3 is outside 1..2/);
    expect(thrown(() => planOf(fake({ parts: [] }), m, 1))).toMatch(/WORKLOAD_PLAN_INVALID: .*at least one part/);
    expect(thrown(() => planOf(fake({ parts: [{ ...base.parts[0], name: 'Bad Name' }] }), m, 1))).toMatch(/part name "Bad Name"/);
    expect(thrown(() => planOf(fake({ parts: [base.parts[0], base.parts[0]] }), m, 1))).toMatch(/part "p" appears twice/);
    expect(thrown(() => planOf(fake({ stages: ['keys' as 'upload'] }), m, 1))).toMatch(/stages keys: this build runs upload/);
    const r = { label: 'x', samplingRate: 1, noiseMultiplier: 1, steps: 1, sensitivity: 1 };
    // Several releases per round (a histogram and a count, say) are fine; each is charged and recorded by its label.
    expect(planOf(fake({ releases: [r, { ...r, label: 'y' }] }), m, 1).releases.map((x) => x.label)).toEqual(['x', 'y']);
    expect(thrown(() => planOf(fake({ releases: [r, r] }), m, 1))).toMatch(/release "x" appears twice/);
    expect(thrown(() => planOf(fake({ releases: [{ ...r, label: 'X y' }] }), m, 1))).toMatch(/release label "X y"/);
  });

  it('lists the release plan and the state-changing rounds from the manifest alone', () => {
    const r = { label: 'update', samplingRate: 0.1, noiseMultiplier: 1, steps: 10, sensitivity: 1 };
    expect(releasePlan(fake({ releases: [r] }), m)).toEqual({
      job: [],
      rounds: [
        { round: 1, releases: [r] },
        { round: 2, releases: [r] },
      ],
    });
    // Job releases are planned once, whatever the number of rounds that carry them.
    const weight = { label: 'weight', samplingRate: 1, noiseMultiplier: 50, steps: 1, sensitivity: 1 };
    const withWeight = { ...fake({ releases: [r], uses: ['weight'] }), jobReleases: () => [weight] };
    expect(releasePlan(withWeight, m).job).toEqual([weight]);
    expect(thrown(() => planOf(fake({ uses: ['weight'] }), m, 1))).toMatch(/uses job release "weight", which the workload does not declare/);
    expect(thrown(() => planOf({ ...withWeight, plan: () => ({ ...base, releases: [{ ...r, label: 'weight' }] }) }, m, 1))).toMatch(
      /release "weight" appears twice/,
    );
    expect(stateRounds(fake({ updatesState: false }), m)).toEqual([]);
  });

  it('resolves a manifest to the workload it names, and refuses one this build does not run', () => {
    const reg = new WorkloadRegistry([fake({})]);
    expect(reg.resolve(m).kind).toBe('fake');
    expect(thrown(() => builtinWorkloads.resolve(m))).toMatch(
      /UNKNOWN_WORKLOAD: job j runs workload "fake", which this build does not know \(it runs sgd, gbdt, feature-stats, psi, secureboost, vertical-score\)/,
    );
    expect(thrown(() => reg.register(fake({})))).toMatch(/WORKLOAD_EXISTS/);
    expect(builtinWorkloads.with(fake({})).kinds()).toEqual(['sgd', 'gbdt', 'feature-stats', 'psi', 'secureboost', 'vertical-score', 'fake']);
    expect(builtinWorkloads.kinds()).toEqual(['sgd', 'gbdt', 'feature-stats', 'psi', 'secureboost', 'vertical-score']);
  });
});
