/**
 * Manifests of relay jobs. The manifest format is the federation's (src/federation/manifest.ts); a
 * relay job sums nothing at the coordinator (`encryption: none`), and the sections that configure SGD
 * training (model, localTraining, strategy, evaluation) are filled with fixed values its workload never
 * reads, so one signed document, one ledger genesis and one acceptance flow serve every job kind.
 */
import type { PublicIdentity } from '../../crypto/identity.ts';
import { MANIFEST_SCHEMA_VERSION, parseManifest, type JobManifest } from '../../federation/manifest.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { psiRounds } from './psi-workload.ts';
import { parsePsiSpec, type PsiSpecInput } from '../psi/spec.ts';
import { parseSecureBoostParams, type SecureBoostParamsInput } from '../secureboost/params.ts';
import { totalRounds } from '../secureboost/schedule.ts';
import { verticalScoreParamsSchema, type VerticalScoreParams } from './score-workload.ts';

interface RelayManifestInput {
  jobId: string;
  purpose: string;
  owner: PublicIdentity;
  partners: PublicIdentity[];
  workload: { kind: string; params: Record<string, unknown> };
  rounds: number;
  columns: string[];
  schemaHash: string;
  dp: { targetEpsilon: number; delta: number } | null;
  roundDeadlineSeconds?: number;
  seed?: number;
}

export function relayManifest(o: RelayManifestInput): JobManifest {
  const n = o.partners.length;
  return parseManifest({
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    jobId: o.jobId,
    purpose: o.purpose,
    createdAt: new Date().toISOString(),
    dataset: { name: o.workload.kind, columns: o.columns, featureNames: o.columns, schemaHash: o.schemaHash, sensitiveColumns: [] },
    workload: o.workload,
    model: { kind: 'logistic' },
    rounds: o.rounds,
    partnersPerRound: n,
    quorum: n,
    roundDeadlineSeconds: o.roundDeadlineSeconds ?? 600,
    strategy: { name: 'fedavg', serverLr: 1 },
    localTraining: { epochs: 1, batchSize: 1, learningRate: 1, optimizer: 'sgd', l2: 0, ...(o.dp ? { samplingRate: 1 } : {}) },
    dp: o.dp ? { targetEpsilon: o.dp.targetEpsilon, delta: o.dp.delta, clipNorm: 1, noiseMultiplier: 'calibrate', accountant: 'rdp' } : null,
    encryption: { scheme: 'none' },
    evaluation: { bins: 1000, segments: {} },
    seed: o.seed ?? 0,
    owner: o.owner,
    partners: o.partners,
  });
}

/** The manifest of a PSI job: the spec's ring are the partners, its hash domain is the job id. */
export function psiManifest(o: {
  jobId: string;
  owner: PublicIdentity;
  coordinator: PublicIdentity;
  parties: PublicIdentity[];
  id: PsiSpecInput['id'];
  maxSetSize: number;
  padToMax?: boolean;
  suite?: PsiSpecInput['suite'];
  purpose?: string;
  roundDeadlineSeconds?: number;
}): JobManifest {
  const spec = parsePsiSpec({
    format: 'fedmark-psi-1',
    jobId: o.jobId,
    suite: o.suite,
    parties: o.parties,
    coordinator: o.coordinator,
    id: o.id,
    maxSetSize: o.maxSetSize,
    padToMax: o.padToMax ?? true,
  });
  return relayManifest({
    jobId: o.jobId,
    purpose: o.purpose ?? 'entity-alignment',
    owner: o.owner,
    partners: o.parties,
    workload: { kind: 'psi', params: { spec } },
    rounds: psiRounds(spec),
    columns: [spec.id.column],
    schemaHash: sha256Canonical(spec),
    dp: null,
    roundDeadlineSeconds: o.roundDeadlineSeconds,
  });
}

/** The manifest of a vertical SecureBoost job: the label holder and feature holders are the partners. */
export function secureBoostManifest(o: {
  jobId: string;
  owner: PublicIdentity;
  parties: PublicIdentity[];
  params: SecureBoostParamsInput;
  purpose?: string;
  roundDeadlineSeconds?: number;
}): JobManifest {
  const params = parseSecureBoostParams(o.params);
  return relayManifest({
    jobId: o.jobId,
    purpose: o.purpose ?? 'propensity-model',
    owner: o.owner,
    partners: o.parties,
    workload: { kind: 'secureboost', params: params as unknown as Record<string, unknown> },
    rounds: totalRounds(params),
    columns: params.parties.map((p, i) => `party-${i}:${p.role}`),
    schemaHash: sha256Canonical(params.parties.map((p) => p.schemaHash)),
    dp: params.labelDp ? { targetEpsilon: params.labelDp.epsilon, delta: params.labelDp.delta } : null,
    roundDeadlineSeconds: o.roundDeadlineSeconds,
    seed: params.seed,
  });
}

/** The manifest of a scoring job with a trained vertical model (each party names its committed model part). */
export function verticalScoreManifest(o: {
  jobId: string;
  owner: PublicIdentity;
  parties: PublicIdentity[];
  params: VerticalScoreParams;
  purpose?: string;
  roundDeadlineSeconds?: number;
}): JobManifest {
  const params = verticalScoreParamsSchema.parse(o.params);
  return relayManifest({
    jobId: o.jobId,
    purpose: o.purpose ?? 'campaign-scoring',
    owner: o.owner,
    partners: o.parties,
    workload: { kind: 'vertical-score', params: params as unknown as Record<string, unknown> },
    rounds: 2,
    columns: params.parties.map((p, i) => `party-${i}:${p.role}`),
    schemaHash: sha256Canonical(params.parties.map((p) => p.modelHash)),
    dp: null,
    roundDeadlineSeconds: o.roundDeadlineSeconds,
  });
}
