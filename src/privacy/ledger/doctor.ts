/**
 * `fedmark ledger doctor`: what is wrong with one ledger file, and the one repair that is safe to
 * make without a human — a torn final line (a write cut short by a crash or a full disk). The torn
 * bytes are kept in `<ledger>.torn[.N]`, the file is cut back to its last complete entry and a signed
 * `ledger.truncation-repaired` entry records their size and hash (LedgerWriter's repair). Anything
 * else — a bad line in the middle, a broken chain, a bad signature, a head pointer ahead of the
 * file — is reported and left alone: rewriting history is exactly what the ledger exists to show.
 */
import { FedmarkError } from '../../errors.ts';
import { readLedger } from './reader.ts';
import type { LedgerSigner } from './signing.ts';
import { verifyLedger, type LedgerFinding } from './verify.ts';
import { LedgerWriter } from './writer.ts';

export interface LedgerDiagnosis {
  path: string;
  entries: number;
  lastSeq: number | null;
  /** Ledger kind from its seq-0 entry. */
  kind: 'job' | 'local' | 'unknown';
  /** The key that may append (a job ledger's coordinator, a local ledger's own node). */
  writerKeyId: string | null;
  errors: LedgerFinding[];
  warnings: LedgerFinding[];
  /** Bytes after the last complete line. */
  tornTailBytes: number;
  /** The only defect is a torn final line: `repairTornTail` can fix it. */
  repairable: boolean;
  ok: boolean;
}

export function diagnoseLedger(path: string): LedgerDiagnosis {
  const read = readLedger(path);
  const v = verifyLedger(read);
  const errors = v.findings.filter((f) => f.severity === 'error');
  const warnings = v.findings.filter((f) => f.severity === 'warning');
  const ring = v.keyRing;
  const writerKeyId =
    ring.kind === 'job'
      ? (ring.coordinatorKeyId ?? null)
      : ring.kind === 'local'
        ? ([...ring.keys.values()].find((k) => k.roles.has('self'))?.keyId ?? null)
        : null;
  return {
    path,
    entries: read.entries.length,
    lastSeq: read.entries.at(-1)?.seq ?? null,
    kind: ring.kind,
    writerKeyId,
    errors,
    warnings,
    tornTailBytes: read.tornTailBytes,
    repairable: errors.length > 0 && errors.every((f) => f.code === 'TRUNCATED_TAIL'),
    ok: errors.length === 0,
  };
}

export interface RepairResult {
  tornFile: string;
  tornBytes: number;
  tornSha256: string;
  /** Seq of the `ledger.truncation-repaired` entry. */
  repairSeq: number;
  after: LedgerDiagnosis;
}

/** Repairs a torn final line, signed by the ledger's own writer key; refuses any other defect. */
export function repairTornTail(path: string, signer: LedgerSigner): RepairResult {
  const before = diagnoseLedger(path);
  if (before.ok) throw new FedmarkError('LEDGER_NOTHING_TO_REPAIR', `${path}: no defect to repair`);
  if (!before.repairable) {
    throw new FedmarkError(
      'LEDGER_NOT_REPAIRABLE',
      `${path}: only a torn final line is repaired automatically; this ledger has ${before.errors
        .filter((f) => f.code !== 'TRUNCATED_TAIL')
        .map((f) => f.code)
        .join(', ')} — keep the file as it is and compare it with the other parties' copies (fedmark audit)`,
    );
  }
  if (before.writerKeyId && signer.keyId !== before.writerKeyId) {
    throw new FedmarkError(
      'LEDGER_WRONG_KEY',
      `${path}: the repair entry must be signed by the ledger's writer ${before.writerKeyId} (the ${before.kind === 'job' ? 'coordinator' : 'node'}'s identity), not ${signer.keyId}`,
    );
  }
  const w = LedgerWriter.open(path, signer, { repairTruncatedTail: true });
  w.close();
  const after = diagnoseLedger(path);
  const entry = readLedger(path).entries.at(-1)!;
  const p = entry.payload as { tornFile: string; tornBytes: number; tornSha256: string };
  if (entry.type !== 'ledger.truncation-repaired') throw new FedmarkError('LEDGER_REPAIR_FAILED', `${path}: the repair entry is missing after the repair`);
  return { tornFile: p.tornFile, tornBytes: p.tornBytes, tornSha256: p.tornSha256, repairSeq: entry.seq, after };
}
