import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OwnerResult } from '../../owner/node.ts';
import { gbdtModel } from '../../src/federation/workloads/gbdt/index.ts';
import type { AuditResult } from '../../src/privacy/ledger/audit.ts';
import type { LedgerEntry } from '../../src/privacy/ledger/entries.ts';
import { reportInputFromJob, type JobEvaluation } from '../../src/report/from-job.ts';
import { writeReport, type WrittenReport } from '../../src/report/html.ts';
import type { GbdtState } from '../../src/trees/index.ts';
import type { DemoSetup } from './setup.ts';

/** Stage 6: the compliance report and model card, from the ledgers and the owner's decrypted evaluation. */
export async function writeDemoReport(
  s: DemoSetup,
  out: string,
  o: { result: OwnerResult; audit: AuditResult; entries: LedgerEntry[]; bytesPerParam: number },
): Promise<WrittenReport> {
  const { manifest, datasetName } = s;
  const evaluation: JobEvaluation = {
    roundMetrics: o.result.roundMetrics.filter((r) => r.metrics).map((r) => ({ round: r.round - 1, auc: r.metrics!.auc, logLoss: r.metrics!.logLoss })),
    finalMetrics: o.result.finalMetrics!,
  };
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(out, 'evaluation.json'), JSON.stringify(evaluation));
  return writeReport(
    out,
    reportInputFromJob({
      manifest,
      ledger: o.entries,
      audit: o.audit,
      evaluation,
      bytesPerParam: o.bytesPerParam,
      model: manifest.model.kind === 'gbdt' ? gbdtModel(o.result.finalState as unknown as GbdtState) : undefined,
      target: datasetName === 'bank-marketing' ? 'subscribes to a term deposit after the campaign call (y = yes)' : 'churns within the month (Churn = Yes)',
      intendedUse:
        datasetName === 'bank-marketing'
          ? 'Rank customers by propensity to subscribe, to plan outbound campaigns.'
          : 'Early warning of churn among existing customers, to plan retention offers.',
    }),
  );
}
