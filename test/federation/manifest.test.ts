import { thrown } from '../helpers/errors.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../src/crypto/identity.ts';
import { loadBundledSchema } from '../../src/data/bundled.ts';
import type { DatasetSchema } from '../../src/data/schema.ts';
import { jobPreset } from '../../src/federation/job-presets.ts';
import { approvalPayload, manifestHash, MANIFEST_SCHEMA_VERSION, parseManifest, signManifest, verifySignedManifest } from '../../src/federation/manifest.ts';

const owner = generateIdentity('owner');
const ids = ['bank-a', 'telco-b', 'retail-c'].map((n) => generateIdentity(n));
let schema: DatasetSchema;
beforeAll(async () => {
  schema = await loadBundledSchema('telco-churn');
});

const input = (o: Record<string, unknown> = {}) => ({
  ...jobPreset({ jobId: 'manifest-test', schema, partners: 3, rounds: 4, epsilon: 3 }),
  schemaVersion: MANIFEST_SCHEMA_VERSION,
  createdAt: '2026-01-01T00:00:00.000Z',
  owner: publicIdentity(owner),
  partners: ids.map(publicIdentity),
  ...o,
});

describe('job manifest', () => {
  it('defaults the workload to SGD training and the evaluation section', () => {
    const { workload, evaluation, ...rest } = input();
    void workload;
    void evaluation;
    const m = parseManifest(rest);
    expect(m.workload).toEqual({ kind: 'sgd', params: {} });
    expect(m.evaluation.bins).toBe(1000);
  });

  it('refuses inconsistent manifests, naming each problem', () => {
    expect(thrown(() => parseManifest(input({ partnersPerRound: 4 })))).toMatch(/MANIFEST_INVALID: .*partnersPerRound \(4\) exceeds the 3 partners/);
    expect(thrown(() => parseManifest(input({ quorum: 4 })))).toMatch(/quorum \(4\) exceeds partnersPerRound \(3\)/);
    expect(thrown(() => parseManifest(input({ partners: [publicIdentity(ids[0]), publicIdentity(ids[0])] })))).toMatch(/duplicate key ids/);
    const noRate = input();
    delete (noRate.localTraining as { samplingRate?: number }).samplingRate;
    expect(thrown(() => parseManifest(noRate))).toMatch(/dp is set but localTraining.samplingRate is missing/);
    expect(thrown(() => parseManifest(input({ workload: { kind: 'Trees!' } })))).toMatch(/workload.kind/);
  });

  it('refuses the schema-1 vocabulary (participants, clientsPerRound): the version names the fields', () => {
    const { partners, partnersPerRound, ...rest } = input();
    expect(thrown(() => parseManifest({ ...rest, schemaVersion: 1, participants: partners, clientsPerRound: partnersPerRound }))).toMatch(
      /MANIFEST_INVALID: job manifest: schemaVersion/,
    );
  });

  it('is signed by its owner; any change breaks the signature', () => {
    const m = parseManifest(input());
    const signed = signManifest(m, owner);
    expect(verifySignedManifest(signed)).toEqual(m);
    expect(thrown(() => verifySignedManifest({ ...signed, manifest: { ...m, quorum: 1 } }))).toMatch(/MANIFEST_SIGNATURE/);
    expect(thrown(() => verifySignedManifest(signManifest(m, ids[0])))).toMatch(/MANIFEST_SIGNATURE/);
  });

  it('binds an officer approval to the job id and the exact manifest', () => {
    const m = parseManifest(input());
    const other = parseManifest(input({ rounds: 5 }));
    expect(manifestHash(m)).not.toBe(manifestHash(other));
    expect(Buffer.from(approvalPayload(m)).toString()).toContain(manifestHash(m));
    expect(Buffer.from(approvalPayload(m))).not.toEqual(Buffer.from(approvalPayload(other)));
  });
});
