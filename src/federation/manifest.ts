import { z } from 'zod';
import { logisticSpecSchema, mlpSpecSchema } from '../model/spec.ts';
import { lrScheduleSchema } from '../train/lr-schedules.ts';
import { heParamsSchema } from '../crypto/index.ts';
import { publicIdentitySchema, signBytes, verifyBytes, type Identity } from '../crypto/identity.ts';
import { FedmarkError } from '../errors.ts';
import { secaggSpecSchema } from './secagg/spec.ts';
import { canonicalBytes, sha256Canonical } from '../privacy/ledger/canonical.ts';
import { samplingRateForDeclaredRows } from './presets/declared-sampling.ts';

/**
 * The job manifest: everything every party must agree on before a round runs. It is signed by the
 * job owner; partners check it against their own policy before accepting. One zod schema gives the
 * validation, the TypeScript type and the OpenAPI document.
 */

export const jobIdSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]{2,63}$/, 'job id: 3–64 chars of a-z, 0-9, ".", "_" or "-", starting with a letter or digit');

/**
 * The server step (src/train/server-optimizers.ts): FedAvg, FedProx, FedAvgM, and the adaptive
 * optimizers of Reddi et al. 2021. `schedule` multiplies the server learning rate round by round
 * (src/train/lr-schedules.ts); absent, it is constant.
 */
const adaptiveStrategy = <K extends 'fedadam' | 'fedyogi' | 'fedadagrad'>(name: K) =>
  z.object({
    name: z.literal(name),
    serverLr: z.number().positive().default(0.01),
    beta1: z.number().min(0).max(1).default(0.9),
    beta2: z.number().min(0).max(1).default(0.99),
    tau: z.number().positive().default(1e-3),
    schedule: lrScheduleSchema.optional(),
  });
export const strategySpecSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('fedavg'), serverLr: z.number().positive().default(1), schedule: lrScheduleSchema.optional() }),
  z.object({
    name: z.literal('fedprox'),
    serverLr: z.number().positive().default(1),
    mu: z.number().nonnegative().default(0.01),
    schedule: lrScheduleSchema.optional(),
  }),
  z.object({
    name: z.literal('fedavgm'),
    serverLr: z.number().positive().default(1),
    momentum: z.number().min(0).lt(1).default(0.9),
    schedule: lrScheduleSchema.optional(),
  }),
  adaptiveStrategy('fedadam'),
  adaptiveStrategy('fedyogi'),
  adaptiveStrategy('fedadagrad'),
]);
export type StrategySpec = z.infer<typeof strategySpecSchema>;

export const localTrainingSchema = z.object({
  epochs: z.number().int().positive().max(1000),
  batchSize: z.number().int().positive().max(1_000_000),
  learningRate: z.number().positive(),
  optimizer: z.enum(['sgd', 'momentum', 'adam']).default('sgd'),
  /** Heavy-ball β of `optimizer: 'momentum'` (absent: 0.9). Post-processing of the DP-SGD gradients: no change to the accounting. */
  momentum: z.number().min(0).lt(1).optional(),
  /** Poisson sampling rate for DP-SGD (required when dp is set): fixed by the job, not by a partner's size. */
  samplingRate: z.number().gt(0).lte(1).optional(),
  /**
   * The mean training rows per partner the job was built for, as the partners declared them
   * (public; never measured by the job). With DP it fixes samplingRate = min(1, batchSize /
   * declaredRows): batchSize is then the expected Poisson batch at the mean partner
   * (presets/declared-sampling.ts), and a manifest whose samplingRate differs is refused.
   */
  declaredRows: z.number().finite().min(1).optional(),
  l2: z.number().nonnegative().default(0),
});
export type LocalTraining = z.infer<typeof localTrainingSchema>;

/**
 * Model selection on the federated validation metrics (src/federation/workloads/sgd/selection.ts):
 * the model after every `every`-th training round is scored on the partners' hold-outs (an
 * `evaluation` release each, planned and charged like the final one), training stops once
 * `patience` checkpoints in a row fail to beat the best by more than `minDelta`, and the released
 * model is the best checkpoint's — decided by every key holder from the same decrypted sums.
 */
export const earlyStoppingSchema = z
  .object({
    every: z.number().int().positive(),
    /** Checkpoints without improvement before training stops; absent: never stop early, only select. */
    patience: z.number().int().positive().optional(),
    minDelta: z.number().nonnegative().default(0),
    metric: z.enum(['auc', 'logLoss']).default('auc'),
  })
  .strict();
export type EarlyStopping = z.infer<typeof earlyStoppingSchema>;

/**
 * How a partner's ε is split between its releases besides DP-SGD (docs/PRIVACY.md): each share is
 * the ε that release class would cost on its own; their noise is calibrated to it, and DP-SGD's σ
 * to what the composition of every planned release leaves of the target.
 */
export const dpSplitSchema = z.object({
  /** The noisy row count each partner releases once (its aggregation weight and DP-SGD's normaliser). */
  weight: z.number().gt(0).lt(1).default(0.02),
  /** The noisy evaluation histograms (every round's when `evaluation.everyRound`, and the final evaluation round). */
  evaluation: z.number().gt(0).lt(1).default(0.1),
});
export type DpSplit = z.infer<typeof dpSplitSchema>;

export const dpSpecSchema = z.object({
  /** ε each partner may spend on this job at most; σ is calibrated to it when noiseMultiplier is "calibrate". */
  targetEpsilon: z.number().positive(),
  delta: z.number().positive().lt(1),
  clipNorm: z.number().positive(),
  noiseMultiplier: z.union([z.number().positive(), z.literal('calibrate')]),
  accountant: z.enum(['rdp']).default('rdp'),
  split: dpSplitSchema.default({ weight: 0.02, evaluation: 0.1 }),
});
export type DpSpec = z.infer<typeof dpSpecSchema>;

export const encryptionSpecSchema = z.union([
  heParamsSchema,
  /** Pairwise masking inside BFV with dropout recovery (docs/CRYPTO.md): no coalition of the coordinator with fewer than t partners reads one partner's upload. */
  secaggSpecSchema,
  z.object({ scheme: z.literal('plain-insecure') }),
  /** The workload sums nothing at the coordinator (vertical jobs relay sealed messages; each party keeps its own HE key). */
  z.object({ scheme: z.literal('none') }),
]);
export type EncryptionSpec = z.infer<typeof encryptionSpecSchema>;

/**
 * 2: `participants` → `partners`, `clientsPerRound` → `partnersPerRound` (one vocabulary).
 * 3: every value derived from rows is a charged release: `dp.split` (the ε shares of the noisy row
 * count and the evaluation histograms) and `evaluation.everyRound`; a version-2 manifest planned
 * fewer releases, so a build reading it would compute another plan than the one its partners accepted.
 */
export const MANIFEST_SCHEMA_VERSION = 3 as const;

/**
 * Which workload the job runs (src/federation/workload.ts) and that workload's own settings, which it
 * validates itself. `sgd` — logistic regression or an MLP trained with (DP-)SGD and a server optimizer —
 * reads the manifest's model, localTraining, strategy and evaluation sections.
 */
export const workloadSpecSchema = z.object({
  kind: z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'workload kind: 1–64 chars of a-z, 0-9 and "-"'),
  params: z.record(z.string(), z.unknown()).default({}),
});
export type WorkloadSpec = z.infer<typeof workloadSpecSchema>;

/**
 * The model family a job trains: logistic regression or an MLP (the `sgd` workload), or gradient-
 * boosted trees (`{ "kind": "gbdt" }`, the `gbdt` workload, whose settings are its workload params).
 */
export const manifestModelSchema = z.discriminatedUnion('kind', [logisticSpecSchema, mlpSpecSchema, z.strictObject({ kind: z.literal('gbdt') })]);
export type ManifestModel = z.infer<typeof manifestModelSchema>;

export const jobManifestSchema = z.object({
  schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION),
  jobId: jobIdSchema,
  purpose: z.string().min(1).max(200),
  createdAt: z.string(),
  dataset: z.object({
    name: z.string().min(1),
    /** Columns the job reads; a partner's policy must allow each of them. */
    columns: z.array(z.string()).min(1),
    featureNames: z.array(z.string()).min(1),
    /** sha256 of the canonical dataset schema all partners must use. */
    schemaHash: z.string().regex(/^[0-9a-f]{64}$/),
    sensitiveColumns: z.array(z.string()).default([]),
  }),
  workload: workloadSpecSchema.default({ kind: 'sgd', params: {} }),
  model: manifestModelSchema,
  rounds: z.number().int().positive().max(10_000),
  partnersPerRound: z.number().int().positive(),
  quorum: z.number().int().positive(),
  roundDeadlineSeconds: z
    .number()
    .positive()
    .max(7 * 24 * 3600),
  strategy: strategySpecSchema,
  localTraining: localTrainingSchema,
  dp: dpSpecSchema.nullable(),
  encryption: encryptionSpecSchema,
  evaluation: z
    .object({
      bins: z.number().int().min(10).max(100_000).default(1000),
      /** Fairness segments: sensitive column → its declared groups (from the schema, never from data). */
      segments: z.record(z.string(), z.array(z.string()).min(1)).default({}),
      /**
       * Score histograms of every training round's entering model, besides the final evaluation
       * round. Each is a release; absent: on for jobs without DP, off for DP jobs (it would spend
       * budget on progress metrics).
       */
      everyRound: z.boolean().optional(),
      /** Checkpoint evaluations, early stopping and selection of the released round (SGD jobs; docs/MODELS.md). */
      earlyStopping: earlyStoppingSchema.optional(),
    })
    .default({ bins: 1000, segments: {} }),
  /**
   * The largest partner and update the job is built for (src/federation/part-encoding.ts): every
   * summed part's encoding is derived from them, and a job they cannot fit is refused when a partner
   * accepts it. Absent: 10⁸ rows per partner, |Δ| ≤ 16 per parameter and round.
   */
  limits: z
    .object({
      /** Rows (training + hold-out) one partner may hold; a partner with more refuses the job. */
      maxRowsPerPartner: z
        .number()
        .int()
        .positive()
        .max(2 ** 53)
        .optional(),
      /**
       * Largest |change| of one model parameter in one round of local training, for a partner of
       * maxRowsPerPartner rows: the encoded |weight × change| may not exceed maxWeight × this (≥ 1, as
       * the weight travels in the same part); a partner whose update does is withheld.
       */
      maxAbsUpdate: z.number().min(1).optional(),
    })
    .strict()
    .optional(),
  seed: z.number().int().nonnegative(),
  owner: publicIdentitySchema,
  partners: z.array(publicIdentitySchema).min(1),
});
export type JobManifest = z.infer<typeof jobManifestSchema>;

export const signedManifestSchema = z.object({
  manifest: jobManifestSchema,
  signature: z.string().min(1),
});
export type SignedManifest = z.infer<typeof signedManifestSchema>;

/** Cross-field rules zod cannot express on single fields. */
export function checkManifestConsistency(m: JobManifest): void {
  const problems: string[] = [];
  const n = m.partners.length;
  if (m.partnersPerRound > n) problems.push(`partnersPerRound (${m.partnersPerRound}) exceeds the ${n} partners`);
  if (m.quorum > m.partnersPerRound) problems.push(`quorum (${m.quorum}) exceeds partnersPerRound (${m.partnersPerRound})`);
  const ids = new Set(m.partners.map((p) => p.keyId));
  if (ids.size !== n) problems.push('partners: duplicate key ids');
  const names = new Set(m.partners.map((p) => p.name));
  if (names.size !== n) problems.push('partners: duplicate names');
  // DP-SGD's own requirements; other workloads check their DP settings in their validate().
  const sgd = m.workload.kind === 'sgd';
  if (sgd && m.dp && m.localTraining.samplingRate === undefined) problems.push('dp is set but localTraining.samplingRate is missing');
  const lt = m.localTraining;
  if (sgd && m.dp && lt.declaredRows !== undefined && lt.samplingRate !== undefined) {
    const declaredRate = samplingRateForDeclaredRows(lt.declaredRows, lt.batchSize);
    if (lt.samplingRate !== declaredRate)
      problems.push(
        `localTraining.samplingRate ${lt.samplingRate} is not batchSize / declaredRows = min(1, ${lt.batchSize} / ${lt.declaredRows}) = ${declaredRate}`,
      );
  }
  if (lt.momentum !== undefined && lt.optimizer !== 'momentum')
    problems.push(`localTraining.momentum is set but optimizer is "${lt.optimizer}", not "momentum"`);
  if (sgd && m.dp && m.dp.split.weight + m.dp.split.evaluation >= 1)
    problems.push(`dp.split gives ${m.dp.split.weight} + ${m.dp.split.evaluation} of ε to the row count and the evaluation: nothing is left for training`);
  const es = m.evaluation.earlyStopping;
  if (es && !sgd) problems.push(`evaluation.earlyStopping selects among SGD training rounds, not ${m.workload.kind} rounds`);
  if (es && es.every >= m.rounds) problems.push(`evaluation.earlyStopping.every (${es.every}) leaves no checkpoint before round ${m.rounds}, the last`);
  if (es && m.evaluation.everyRound) problems.push('evaluation.earlyStopping and evaluation.everyRound both plan per-round evaluations: choose one');
  if ((m.model.kind === 'gbdt') !== (m.workload.kind === 'gbdt'))
    problems.push(`model kind "${m.model.kind}" needs workload "${m.model.kind === 'gbdt' ? 'gbdt' : 'sgd'}", not "${m.workload.kind}"`);
  if (problems.length) throw new FedmarkError('MANIFEST_INVALID', `job manifest: ${problems.join('; ')}`);
}

export function parseManifest(input: unknown): JobManifest {
  const parsed = jobManifestSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FedmarkError('MANIFEST_INVALID', `job manifest: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  checkManifestConsistency(parsed.data);
  return parsed.data;
}

export function signManifest(manifest: JobManifest, owner: Identity): SignedManifest {
  return { manifest, signature: signBytes(canonicalBytes(manifest), owner) };
}

/** Throws unless the manifest is well-formed and signed by the owner it names. */
export function verifySignedManifest(signed: SignedManifest): JobManifest {
  const manifest = parseManifest(signed.manifest);
  if (!verifyBytes(canonicalBytes(manifest), signed.signature, manifest.owner.signPublicKey)) {
    throw new FedmarkError('MANIFEST_SIGNATURE', `job manifest ${manifest.jobId}: signature does not verify against the owner's key`);
  }
  return manifest;
}

export function manifestHash(manifest: JobManifest): string {
  return sha256Canonical(manifest);
}

/**
 * What a partner's officers sign to approve a job under the two-person rule: the job id and the hash
 * of the exact manifest, so an approval cannot be reused for another job or a changed manifest.
 */
export function approvalPayload(manifest: JobManifest): Uint8Array {
  return canonicalBytes({ approves: 'fedmark-job', jobId: manifest.jobId, manifestHash: manifestHash(manifest) });
}
