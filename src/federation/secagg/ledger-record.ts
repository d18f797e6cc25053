import { secaggConfigId, type SecaggConfig } from '../../crypto/secagg/index.ts';
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import type { LedgerEntry, SecaggLedgerRecord } from '../../privacy/ledger/entries.ts';
import type { LedgerFinding } from '../../privacy/ledger/verify.ts';
import { parseManifest, type JobManifest } from '../manifest.ts';
import { openSecureSum } from '../secure-sum.ts';
import { planOf, type WorkloadRegistry } from '../workload.ts';
import { builtinWorkloads } from '../workloads/index.ts';
import { attemptConfig } from './round-config.ts';

/**
 * What the coordinator's `round` and `attempt.failed` entries record of a masked attempt's
 * secure-aggregation config (docs/LEDGER.md): its id (the hash every message, share and mask of the
 * attempt is bound to) and the choices a reviewer reads without recomputing it.
 */
export function secaggLedgerRecord(c: SecaggConfig): SecaggLedgerRecord {
  return {
    configId: secaggConfigId(c),
    threshold: c.threshold,
    minSurvivors: c.minSurvivors,
    graph: c.graph.kind === 'complete' ? { kind: 'complete' } : { kind: 'harary', degree: c.graph.degree },
    bfvParamsId: c.he.paramsId,
    plainModulus: c.he.plainModulus,
    encodingId: sha256Canonical(c.encoding),
  };
}

/** The genesis entry's embedded manifest when it asks for masked aggregation, else null. */
function maskedManifest(entries: readonly LedgerEntry[]): JobManifest | null {
  const genesis = entries[0];
  if (!genesis || genesis.type !== 'job.manifest') return null;
  const embedded = (genesis.payload as { manifest?: { encryption?: { scheme?: unknown } } }).manifest;
  if (embedded?.encryption?.scheme !== 'secagg-bfv') return null;
  return parseManifest(embedded);
}

/**
 * The audit's check of a masked job's attempts: every `round` and `attempt.failed` entry must carry
 * the secure-aggregation config that follows from the owner-signed manifest (seq 0), the round's
 * plan and the partners the entry says were selected — the config every partner derived and
 * signed under. A missing or different record is an error: the coordinator ran (or claims to have
 * run) the attempt under another threshold, graph, BFV parameter set or encoding than the partners
 * accepted. Async: the BFV parameter id needs the SEAL context.
 */
export async function checkSecaggLedger(
  ledger: string,
  entries: readonly LedgerEntry[],
  workloads: WorkloadRegistry = builtinWorkloads,
): Promise<LedgerFinding[]> {
  let manifest: JobManifest | null;
  try {
    manifest = maskedManifest(entries);
  } catch (err) {
    const why = err instanceof FedmarkError ? err.message : String(err);
    return [{ ledger, seq: 0, code: 'SECAGG_MANIFEST_UNREADABLE', severity: 'error', message: `the embedded manifest cannot be read: ${why}` }];
  }
  if (!manifest) return [];
  const findings: LedgerFinding[] = [];
  const scheme = await openSecureSum(manifest.encryption);
  try {
    const workload = workloads.resolve(manifest);
    for (const e of entries) {
      if (e.type !== 'round' && e.type !== 'attempt.failed') continue;
      const p = e.payload as { round: number; attempt?: number; selected: string[]; secagg?: SecaggLedgerRecord };
      const attempt = p.attempt ?? 0;
      const at = `round ${p.round} attempt ${attempt} (${e.type})`;
      let expected: SecaggLedgerRecord;
      try {
        expected = secaggLedgerRecord(attemptConfig(manifest, planOf(workload, manifest, p.round), scheme.masking!, p.round, attempt, p.selected));
      } catch (err) {
        findings.push({
          ledger,
          seq: e.seq,
          code: 'SECAGG_CONFIG_MISMATCH',
          severity: 'error',
          message: `${at}: no valid config follows: ${(err as Error).message}`,
        });
        continue;
      }
      if (!p.secagg) {
        findings.push({
          ledger,
          seq: e.seq,
          code: 'SECAGG_CONFIG_MISSING',
          severity: 'error',
          message: `${at} of a masked job records no secure-aggregation config`,
        });
        continue;
      }
      const got = p.secagg as unknown as Record<string, unknown>;
      const differ = Object.keys(expected).filter(
        (k) => sha256Canonical(got[k] ?? null) !== sha256Canonical((expected as unknown as Record<string, unknown>)[k]),
      );
      if (differ.length) {
        findings.push({
          ledger,
          seq: e.seq,
          code: 'SECAGG_CONFIG_MISMATCH',
          severity: 'error',
          message: `${at}: the recorded secure-aggregation config differs from the one the signed manifest and the selected partners give (${differ.join(', ')}; expected config ${expected.configId.slice(0, 16)}…)`,
        });
      }
    }
  } finally {
    scheme.dispose();
  }
  return findings;
}
