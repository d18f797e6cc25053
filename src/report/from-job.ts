import type { JobManifest } from '../federation/manifest.ts';
import { gbdtSettings } from '../federation/workloads/gbdt/settings.ts';
import type { FederatedEvalMetrics } from '../metrics/histogram.ts';
import type { GbdtModel } from '../trees/model.ts';
import type { AuditResult } from '../privacy/ledger/audit.ts';
import type { LedgerEntry, PayloadOf } from '../privacy/ledger/entries.ts';
import { describeModelSpec, NOT_DP } from './format.ts';
import { gbdtFeatureImportance } from './importance.ts';
import type { ReportInputDraft } from './schema.ts';

/** What the job owner's node knows after a job: the decrypted federated metrics. */
export interface JobEvaluation {
  roundMetrics: { round: number; auc: number; logLoss?: number }[];
  finalMetrics: FederatedEvalMetrics;
}

/**
 * Builds the compliance report's input from what a reviewer can check: the job ledger (who took
 * part, ε per round), the audit of it and the partners' ledgers (rows used, consent exclusions), and
 * the owner's decrypted federated evaluation, and for trees the released model (its feature
 * importance). Nothing here reads partner data.
 */
export function reportInputFromJob(o: {
  manifest: JobManifest;
  ledger: LedgerEntry[];
  audit: AuditResult;
  evaluation: JobEvaluation;
  bytesPerParam: number;
  target: string;
  intendedUse: string;
  /** The released tree model (gbdt jobs): its importance per column goes into the model card. */
  model?: Pick<GbdtModel, 'importance' | 'numFeature'>;
}): ReportInputDraft {
  const m = o.manifest;
  const importance = o.model && m.model.kind === 'gbdt' ? gbdtFeatureImportance(o.model, gbdtSettings(m).layout) : null;
  const rounds = o.ledger.filter((e): e is LedgerEntry & { type: 'round'; payload: PayloadOf<'round'> } => e.type === 'round');
  const finished = o.ledger.find((e) => e.type === 'model.final' || e.type === 'job.halt');
  const limits = new Map(
    o.ledger
      .filter((e): e is LedgerEntry & { type: 'partner.acceptance'; payload: PayloadOf<'partner.acceptance'> } => e.type === 'partner.acceptance')
      .map((e) => [e.payload.partner, e.payload.policy.maxEpsilon]),
  );
  const summary = new Map(o.audit.partners.map((p) => [p.partner, p]));
  return {
    job: {
      jobId: m.jobId,
      dataset: m.dataset.name,
      modelSpec: m.model as Record<string, unknown>,
      rounds: m.rounds,
      strategy: m.strategy.name,
      createdAt: m.createdAt,
      finishedAt: finished?.ts ?? null,
      owner: m.owner.name,
    },
    partners: m.partners.map((p) => ({
      name: p.name,
      keyId: p.keyId,
      rowsUsed: summary.get(p.keyId)?.rowsUsed ?? 0,
      rowsExcludedConsent: summary.get(p.keyId)?.rowsWithoutConsent ?? 0,
      rowsExcludedWithdrawn: 0,
    })),
    differentiallyPrivate: m.dp !== null,
    privacy: m.dp
      ? m.partners.map((p) => ({
          partner: p.name,
          delta: m.dp!.delta,
          maxEpsilon: limits.get(p.keyId) ?? m.dp!.targetEpsilon,
          epsilonByRound: rounds.flatMap((r) =>
            r.payload.partners.filter((x) => x.partner === p.keyId).map((x) => ({ round: r.payload.round, epsilon: x.epsilonCumulative })),
          ),
          noiseMultiplier: rounds[0]?.payload.partners[0]?.noiseMultiplier,
          clipNorm: m.dp!.clipNorm,
          accountant: 'RDP (Mironov et al. 2019), Opacus orders',
        }))
      : [],
    ...(importance ? { featureImportance: importance } : {}),
    roundMetrics: o.evaluation.roundMetrics,
    evaluation: o.evaluation.finalMetrics,
    encryption:
      m.encryption.scheme === 'ckks'
        ? {
            scheme: 'ckks',
            polyModulusDegree: m.encryption.polyModulusDegree,
            coeffModulusBits: m.encryption.coeffModulusBits,
            scaleBits: m.encryption.scaleBits,
            bytesPerParam: o.bytesPerParam,
            securityLevel: 128,
          }
        : m.encryption.scheme === 'secagg-bfv'
          ? {
              scheme: 'secagg-bfv',
              polyModulusDegree: m.encryption.bfv.polyModulusDegree,
              coeffModulusBits: m.encryption.bfv.coeffModulusBits,
              bytesPerParam: o.bytesPerParam,
              securityLevel: 128,
            }
          : { scheme: 'plain-insecure', polyModulusDegree: 1, coeffModulusBits: [1], bytesPerParam: o.bytesPerParam },
    audit: {
      ok: o.audit.ok,
      findings: o.audit.findings.map((f) => ({ entry: f.seq, code: f.code, message: `[${f.severity}] ${f.ledger}: ${f.message}` })),
      summary: { ledgers: o.audit.ledgers.length, partnersCrossChecked: o.audit.partners.filter((p) => p.localLedgerChecked).length },
    },
    modelCard: {
      intendedUse: o.intendedUse,
      outOfScope: ['Decisions about individual customers without human review', 'Any use outside the purpose the partners accepted: ' + m.purpose],
      target: o.target,
      features: m.dataset.featureNames,
      trainingData: `${m.partners.length} partners' local data (${m.dataset.name}); raw rows never left a partner. Model: ${describeModelSpec(m.model as Record<string, unknown>)}.`,
      limitations: [
        'Metrics come from fixed-bin (1,000 bins) encrypted histograms of partners’ hold-out rows; AUC is exact up to binning.',
        m.dp
          ? `Every partner's updates are (ε, δ)-DP per customer with δ=${m.dp.delta}; the model's utility is reduced by the DP noise.`
          : `Trained WITHOUT differential privacy: ${NOT_DP}.`,
        'A partner colluding with the coordinator could decrypt another partner’s single update; DP bounds what it learns.',
      ],
      ethicalConsiderations: ['Check the fairness table for groups whose disparate-impact ratio is below 0.8 before using the model for targeting.'],
      version: m.jobId,
    },
  };
}
