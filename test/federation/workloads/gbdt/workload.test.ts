import { beforeAll, describe, expect, it } from 'vitest';
import type { DatasetSchema } from '../../../../src/data/schema.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest, type JobManifest } from '../../../../src/federation/manifest.ts';
import { simulate } from '../../../../src/federation/simulate.ts';
import { planOf, releasePlan } from '../../../../src/federation/workload.ts';
import { gbdtJobPreset, gbdtSettings, gbdtWorkload, type GbdtJobPresetOptions } from '../../../../src/federation/workloads/gbdt/index.ts';
import { builtinWorkloads } from '../../../../src/federation/workloads/index.ts';
import type { FederatedEvalMetrics } from '../../../../src/metrics/histogram.ts';
import { composedEpsilon } from '../../../../src/privacy/accountant.ts';
import { publicIdentity } from '../../../../src/crypto/identity.ts';
import { stepParts, stepAt, type GbdtState } from '../../../../src/trees/index.ts';
import { makeIdentities, telcoPartners, type PartnerData } from '../../../helpers/partners.ts';
import { thrown } from '../../../helpers/errors.ts';
import { expectSameModel, pooledState } from './helpers.ts';

let schema: DatasetSchema;
let parts: PartnerData[];

beforeAll(async () => {
  ({ schema, parts } = await telcoPartners({ partners: 3, rowsPerPartner: 500 }));
});

const owner = makeIdentities(['owner'])[0];
const ids = makeIdentities(['a', 'b', 'c']);

function manifestOf(o: Partial<GbdtJobPresetOptions> & { jobId: string }, patch: (m: Record<string, unknown>) => void = () => {}): JobManifest {
  const raw = { ...gbdtJobPreset({ schema, partners: 3, seed: 9, ...o }), schemaVersion: MANIFEST_SCHEMA_VERSION, createdAt: '2025-01-01T00:00:00Z', owner: publicIdentity(owner), partners: ids.map(publicIdentity) };
  patch(raw as unknown as Record<string, unknown>);
  return parseManifest(raw);
}

describe('the gbdt workload seam', () => {
  it('plans every round from the manifest alone: step parts, the partners count, releases with distinct labels, then the evaluation', () => {
    for (const o of [{ epsilon: null }, { epsilon: 3 }, { epsilon: 3, gbdt: { splitMode: 'hybrid' as const, trees: 5 } }]) {
      const m = manifestOf({ jobId: 'plan-check', ...o });
      const s = gbdtSettings(m);
      expect(gbdtWorkload.totalRounds(m)).toBe(m.rounds + 1);
      for (let r = 1; r <= m.rounds; r++) {
        const p = planOf(gbdtWorkload, m, r);
        const want = stepParts(s.params, s.layout, stepAt(s.params, s.layout, r - 1));
        expect(p.parts.map((x) => [x.name, x.length])).toEqual([...want.map((x) => [x.name, x.length]), ['partners', 1]]);
        expect(p).toMatchObject({ kind: stepAt(s.params, s.layout, r - 1).kind, selection: 'all', updatesState: true });
        if (!m.dp) expect(p.releases).toEqual([]);
      }
      const last = planOf(gbdtWorkload, m, m.rounds + 1);
      expect(last).toMatchObject({ kind: 'evaluate', updatesState: false, releases: [] });
      expect(last.parts.map((x) => x.use)).toEqual(['report']);
      if (m.dp) {
        // The plan's releases compose to the target (the calibration's own check, through the seam).
        const events = releasePlan(gbdtWorkload, m).flatMap((x) => x.releases);
        expect(new Set(events.map((e) => e.label)).size).toBeGreaterThan(1);
        const eps = composedEpsilon(events, m.dp.delta);
        expect(eps).toBeLessThanOrEqual(3);
        expect(eps).toBeGreaterThan(2.9);
      }
    }
  });

  it('refuses manifests that do not hold together, naming the field', () => {
    const resolve = (m: JobManifest) => builtinWorkloads.resolve(m);
    expect(thrown(() => resolve(manifestOf({ jobId: 'bad-rounds' }, (m) => (m.rounds = 7))))).toMatch(/MANIFEST_INVALID: .*rounds must be \d+/);
    expect(thrown(() => resolve(manifestOf({ jobId: 'bad-clip', epsilon: 3 }, (m) => ((m.dp as { clipNorm: number }).clipNorm = 2))))).toMatch(/clipNorm must be 1/);
    expect(thrown(() => manifestOf({ jobId: 'bad-model' }, (m) => (m.model = { kind: 'logistic' })))).toMatch(/model kind "logistic" needs workload "sgd"/);
    expect(thrown(() => gbdtJobPreset({ jobId: 'bad-depth', schema, partners: 3, gbdt: { depth: 0 } }))).toMatch(/GBDT_BAD_PARAMS: .*depth/);
    const knobs = manifestOf({ jobId: 'dp-knobs', epsilon: null }, (m) => ((m.workload as { params: Record<string, unknown> }).params.dp = { hessianShare: 0.3 }));
    expect(thrown(() => resolve(knobs))).toMatch(/no dp section/);
    const names = manifestOf({ jobId: 'bad-layout' }, (m) => ((m.workload as { params: { layout: { featureNames: string[] } } }).params.layout.featureNames[0] = 'x'));
    expect(thrown(() => resolve(names))).toMatch(/layout names other features/);
    const unit = manifestOf({ jobId: 'bad-unit' }, (m) => ((m.workload as { params: Record<string, unknown> }).params.heUnit = 100));
    expect(thrown(() => resolve(unit))).toMatch(/workload\.params\.heUnit: heUnit must be a power of two/);
  });

  it('refuses distributed noise under CKKS and plaintext aggregation, saying why', () => {
    for (const encryption of [undefined, { scheme: 'plain-insecure' as const }]) {
      const m = manifestOf({ jobId: 'distributed', epsilon: 3, encryption, gbdt: { dp: { noise: 'distributed', colluders: 1 } } });
      expect(thrown(() => builtinWorkloads.resolve(m))).toMatch(/MANIFEST_INVALID: .*dp\.noise "distributed" is refused under (ckks|plain-insecure) aggregation.*no single upload is ever decrypted/);
    }
  });
});

describe('gbdt through simulate() (the partner runtime, round machine, aggregation and key holders of the nodes)', () => {
  const cases: [string, GbdtJobPresetOptions['gbdt']][] = [
    ['histogram trees with subtraction', { trees: 6, depth: 3, learningRate: 0.3 }],
    ['cyclic terms with an interaction', { splitMode: 'cyclic', interactions: 1 }],
  ];
  for (const [name, gbdt] of cases) {
    it(`without DP, plaintext sums: ${name} equal the pooled histogram GBDT on the same bins`, async () => {
      const r = await simulate<GbdtState, FederatedEvalMetrics>({ job: gbdtJobPreset({ jobId: 'gbdt-plain', schema, partners: 3, epsilon: null, encryption: { scheme: 'plain-insecure' }, seed: 3, gbdt }), partners: parts });
      expectSameModel(r.state, pooledState(r.manifest, parts.map((p) => p.train)));
      expect(r.rounds.at(-1)!.kind).toBe('evaluate');
      expect(r.finalMetrics.auc).toBeGreaterThan(0.75);
      expect(r.epsilon).toEqual({});
    }, 60_000);
  }

  it('without DP, CKKS sums: the same trees as the pooled GBDT (leaves within 1e-6)', async () => {
    const r = await simulate<GbdtState, FederatedEvalMetrics>({ job: gbdtJobPreset({ jobId: 'gbdt-ckks', schema, partners: 3, epsilon: null, seed: 3, gbdt: { trees: 15, depth: 4, learningRate: 0.3 } }), partners: parts });
    expectSameModel(r.state, pooledState(r.manifest, parts.map((p) => p.train)));
  }, 120_000);

  it('with DP under CKKS: every partner spends exactly the composed ε of the release plan, at most the target', async () => {
    const r = await simulate<GbdtState, FederatedEvalMetrics>({ job: gbdtJobPreset({ jobId: 'gbdt-dp', schema, partners: 3, epsilon: 2, seed: 3, gbdt: { interactions: 1, cyclicEpochs: 1 } }), partners: parts });
    const events = releasePlan(gbdtWorkload, r.manifest).flatMap((x) => x.releases);
    const want = composedEpsilon(events, 1e-5);
    for (const p of parts) {
      expect(r.epsilon[p.name]).toBeCloseTo(want, 9);
      expect(r.epsilon[p.name]).toBeLessThanOrEqual(2);
    }
    expect(r.finalMetrics.auc).toBeGreaterThan(0.6);
  }, 120_000);
});
