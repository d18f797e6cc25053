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
import { predictProba, stepParts, stepAt, type GbdtState } from '../../../../src/trees/index.ts';
import { gbdtModel } from '../../../../src/federation/workloads/gbdt/index.ts';
import { evaluationHistograms, evaluationLayout } from '../../../../src/federation/workloads/evaluation.ts';
import { concatDatasets } from '../../../../src/data/encode.ts';
import { auc } from '../../../../src/metrics/classification.ts';
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
  const raw = {
    ...gbdtJobPreset({ schema, partners: 3, seed: 9, ...o }),
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    createdAt: '2025-01-01T00:00:00Z',
    owner: publicIdentity(owner),
    partners: ids.map(publicIdentity),
  };
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
      expect(last).toMatchObject({ kind: 'evaluate', updatesState: false });
      expect(last.parts.map((x) => x.use)).toEqual(['report']);
      // Every part declares its bound (the part encoding scales by it).
      for (let r = 1; r <= m.rounds + 1; r++) for (const x of planOf(gbdtWorkload, m, r).parts) expect(x.bound, `round ${r} part ${x.name}`).toBeGreaterThan(0);
      if (!m.dp) expect(last.releases).toEqual([]);
      if (m.dp) {
        // The final evaluation is a labelled Gaussian release, like SGD's.
        expect(last.releases).toEqual([
          { label: 'evaluation', samplingRate: 1, noiseMultiplier: s.evaluation!.noiseMultiplier, steps: 1, sensitivity: s.evaluation!.sensitivity },
        ]);
        // The plan's releases (the trees' and the evaluation) compose to the target.
        const events = releasePlan(gbdtWorkload, m).rounds.flatMap((x) => x.releases);
        expect(new Set(events.map((e) => e.label)).size).toBeGreaterThan(2);
        const eps = composedEpsilon(events, m.dp.delta);
        expect(eps).toBeCloseTo(s.epsilon, 12);
        expect(eps).toBeLessThanOrEqual(3);
        expect(eps).toBeGreaterThan(2.99);
        // The trees alone leave room for it: they spend the target less the evaluation's share.
        expect(
          composedEpsilon(
            events.filter((e) => e.label !== 'evaluation'),
            m.dp.delta,
          ),
        ).toBeLessThanOrEqual(3 * (1 - m.dp.split.evaluation) + 1e-9);
      }
    }
  });

  it('under DP the evaluation round uploads noised histograms (std σ_eval · sensitivity per cell), never the plain ones', async () => {
    const m = manifestOf({ jobId: 'eval-noise', epsilon: 3 });
    const s = gbdtSettings(m);
    const round = m.rounds + 1;
    const plan = planOf(gbdtWorkload, m, round);
    // A trained model (the pooled trainer's, on a job of the same schema): the evaluation round scores with it.
    const state = pooledState(
      manifestOf({ jobId: 'eval-model', epsilon: null, gbdt: { trees: 3, depth: 2 } }),
      parts.map((p) => p.train),
    );
    const ctx = { manifest: m, round, attempt: 1, keyId: publicIdentity(ids[0]).keyId, plan, state, data: parts[0], released: {} };
    const plain = evaluationHistograms(m, predictProba(gbdtModel(state), parts[0].test.X, parts[0].test.n), parts[0].test, null);
    const layout = evaluationLayout(m);
    plain[layout.sums] /= s.evaluation!.logLossCap;
    const diffs: number[] = [];
    for (let k = 0; k < 4; k++) {
      const sent = (await gbdtWorkload.local(ctx)).parts.evaluation;
      expect(sent.length).toBe(plain.length);
      for (let i = 0; i < sent.length; i++) diffs.push(sent[i] - plain[i]);
    }
    const std = Math.sqrt(diffs.reduce((a, d) => a + d * d, 0) / diffs.length);
    const want = s.evaluation!.noiseMultiplier * s.evaluation!.sensitivity;
    expect(want).toBeGreaterThan(1);
    expect(std / want).toBeGreaterThan(0.9);
    expect(std / want).toBeLessThan(1.1);
    // Without DP the same round uploads the plain histograms, uncharged.
    const free = manifestOf({ jobId: 'eval-free', epsilon: null });
    expect(planOf(gbdtWorkload, free, free.rounds + 1).releases).toEqual([]);
  });

  it('refuses manifests that do not hold together, naming the field', () => {
    const resolve = (m: JobManifest) => builtinWorkloads.resolve(m);
    expect(thrown(() => resolve(manifestOf({ jobId: 'bad-rounds' }, (m) => (m.rounds = 7))))).toMatch(/MANIFEST_INVALID: .*rounds must be \d+/);
    expect(thrown(() => resolve(manifestOf({ jobId: 'bad-clip', epsilon: 3 }, (m) => ((m.dp as { clipNorm: number }).clipNorm = 2))))).toMatch(
      /clipNorm must be 1/,
    );
    expect(thrown(() => manifestOf({ jobId: 'bad-model' }, (m) => (m.model = { kind: 'logistic' })))).toMatch(/model kind "logistic" needs workload "sgd"/);
    expect(thrown(() => gbdtJobPreset({ jobId: 'bad-depth', schema, partners: 3, gbdt: { depth: 0 } }))).toMatch(/GBDT_BAD_PARAMS: .*depth/);
    const knobs = manifestOf(
      { jobId: 'dp-knobs', epsilon: null },
      (m) => ((m.workload as { params: Record<string, unknown> }).params.dp = { hessianShare: 0.3 }),
    );
    expect(thrown(() => resolve(knobs))).toMatch(/no dp section/);
    const names = manifestOf(
      { jobId: 'bad-layout' },
      (m) => ((m.workload as { params: { layout: { featureNames: string[] } } }).params.layout.featureNames[0] = 'x'),
    );
    expect(thrown(() => resolve(names))).toMatch(/layout names other features/);
    const unit = manifestOf({ jobId: 'bad-unit' }, (m) => ((m.workload as { params: Record<string, unknown> }).params.heUnit = 100));
    expect(thrown(() => resolve(unit))).toMatch(/workload\.params\.heUnit: heUnit must be a power of two/);
  });

  it('refuses distributed noise under CKKS and plaintext aggregation, saying why', () => {
    for (const encryption of [undefined, { scheme: 'plain-insecure' as const }]) {
      const m = manifestOf({ jobId: 'distributed', epsilon: 3, encryption, gbdt: { dp: { noise: 'distributed', colluders: 1 } } });
      expect(thrown(() => builtinWorkloads.resolve(m))).toMatch(
        /MANIFEST_INVALID: .*dp\.noise "distributed" is refused under (ckks|plain-insecure) aggregation.*no single upload is ever decrypted/,
      );
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
      const r = await simulate<GbdtState, FederatedEvalMetrics>({
        job: gbdtJobPreset({ jobId: 'gbdt-plain', schema, partners: 3, epsilon: null, encryption: { scheme: 'plain-insecure' }, seed: 3, gbdt }),
        partners: parts,
      });
      expectSameModel(
        r.state,
        pooledState(
          r.manifest,
          parts.map((p) => p.train),
        ),
      );
      expect(r.rounds.at(-1)!.kind).toBe('evaluate');
      expect(r.finalMetrics.auc).toBeGreaterThan(0.75);
      expect(r.epsilon).toEqual({});
    }, 60_000);
  }

  it('without DP, CKKS sums: the same trees as the pooled GBDT (leaves within 1e-6)', async () => {
    const r = await simulate<GbdtState, FederatedEvalMetrics>({
      job: gbdtJobPreset({ jobId: 'gbdt-ckks', schema, partners: 3, epsilon: null, seed: 3, gbdt: { trees: 15, depth: 4, learningRate: 0.3 } }),
      partners: parts,
    });
    expectSameModel(
      r.state,
      pooledState(
        r.manifest,
        parts.map((p) => p.train),
      ),
    );
  }, 120_000);

  it('with DP under CKKS: every partner spends exactly the composed ε of the release plan, at most the target', async () => {
    const r = await simulate<GbdtState, FederatedEvalMetrics>({
      job: gbdtJobPreset({ jobId: 'gbdt-dp', schema, partners: 3, epsilon: 2, seed: 3, gbdt: { interactions: 1, cyclicEpochs: 1 } }),
      partners: parts,
    });
    const events = releasePlan(gbdtWorkload, r.manifest).rounds.flatMap((x) => x.releases);
    // The final evaluation's noised histograms are among the releases every partner is charged for.
    expect(events.filter((e) => e.label === 'evaluation')).toHaveLength(1);
    const want = composedEpsilon(events, 1e-5);
    for (const p of parts) {
      expect(r.epsilon[p.name]).toBeCloseTo(want, 9);
      expect(r.epsilon[p.name]).toBeLessThanOrEqual(2);
    }
    // The owner's AUC comes from the noised evaluation histograms of 3 small hold-outs: an estimate.
    // The released model itself is measured on the pooled hold-out.
    expect(r.finalMetrics.auc).toBeGreaterThanOrEqual(0);
    expect(r.finalMetrics.auc).toBeLessThanOrEqual(1);
    const test = concatDatasets(parts.map((p) => p.test));
    expect(auc(predictProba(gbdtModel(r.state), test.X, test.n), test.y)).toBeGreaterThan(0.6);
  }, 120_000);
});
