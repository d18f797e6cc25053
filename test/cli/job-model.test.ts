import { describe, expect, it } from 'vitest';
import { jobManifestFor, parseModelOption } from '../../cli/job-model.ts';
import { BUNDLED_DATASETS } from '../../src/data/bundled.ts';
import { loadSchema } from '../../src/data/schema.ts';
import { gbdtSettings } from '../../src/federation/workloads/gbdt/index.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest } from '../../src/federation/manifest.ts';
import { publicIdentity } from '../../src/crypto/identity.ts';
import { makeIdentities } from '../helpers/partners.ts';
import { thrown } from '../helpers/errors.ts';

describe('--model of fedmark job run', () => {
  it('takes logistic, mlp, gbdt and JSON specs; gbdt settings go to the workload params', async () => {
    expect(parseModelOption('logistic')).toEqual({ kind: 'sgd', spec: { kind: 'logistic' } });
    expect(parseModelOption('{"kind":"mlp","hidden":[8]}')).toMatchObject({ kind: 'sgd', spec: { kind: 'mlp', hidden: [8] } });
    const trees = parseModelOption('{"kind":"gbdt","trees":3,"depth":2,"splitMode":"histogram"}');
    expect(trees).toEqual({ kind: 'gbdt', params: { trees: 3, depth: 2, splitMode: 'histogram' } });
    const schema = await loadSchema(BUNDLED_DATASETS['telco-churn'].schema);
    const [owner, a, b] = makeIdentities(['owner', 'a', 'b']);
    const m = parseManifest({
      ...jobManifestFor(trees, { jobId: 'cli-trees', schema, partners: 2, rounds: 20, epsilon: null }),
      schemaVersion: MANIFEST_SCHEMA_VERSION,
      createdAt: '2025-01-01T00:00:00Z',
      owner: publicIdentity(owner),
      partners: [a, b].map(publicIdentity),
    });
    // Without DP and sibling subtraction, histogram trees take one round per level: 1 quantile round + 3 trees × 2 levels.
    expect(m.rounds).toBe(7);
    expect(gbdtSettings(m).params).toMatchObject({ trees: 3, depth: 2, splitMode: 'histogram' });
  });

  it('names the problem with a bad value', () => {
    expect(thrown(() => parseModelOption('{kind'))).toMatch(/JOB_MODEL: --model: not JSON and not logistic, mlp or gbdt/);
    expect(thrown(() => parseModelOption('{"kind":"forest"}'))).toMatch(/JOB_MODEL: --model: kind/);
  });
});
