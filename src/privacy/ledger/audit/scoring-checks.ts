/**
 * What the audit can check about a partner's `model.scoring` entries from its own ledger (the
 * schema already enforces that the row counts add up and the sidecar is not larger than the rows
 * scored):
 *
 * - SCORING_RUN_DUPLICATE (error): a run recorded twice would double-count who was scored.
 * - SCORING_POLICY_PURPOSE (error): the model is the final model of a job this partner accepted, and
 *   the purpose it was scored for is not among the purposes the partner's acceptance allowed.
 * - SCORING_MODEL_UNKNOWN (warning): no `model.final` in this ledger has the model's hash — the
 *   partner scored with a model it has no record of helping to train.
 * - SCORING_MODEL_JOB_MISMATCH (warning): the entry names a job whose final model has another hash.
 * - SCORING_RECORDED_BEFORE_FINISH (warning): the entry is timestamped before the run finished.
 * - SCORED_AFTER_WITHDRAWAL (error, needs the partner's sidecar directory): a run that started after
 *   a consent withdrawal took effect lists a withdrawn customer's salted id.
 */
import fs from 'node:fs';
import path from 'node:path';
import { sha256Hex } from '../../../util/hash.ts';
import { parsePayload, type LedgerEntry, type PayloadOf } from '../entries.ts';
import { sidecarHas } from '../subject-rights.ts';
import type { LedgerFinding } from '../verify.ts';

export function checkScoringEntries(ledger: string, entries: LedgerEntry[], valid: ReadonlySet<number>, opts: { sidecarDir?: string } = {}): LedgerFinding[] {
  const findings: LedgerFinding[] = [];
  const add = (seq: number, code: string, message: string, severity: 'error' | 'warning'): void => {
    findings.push({ ledger, seq, code, message, severity });
  };
  const typed = entries.filter((e) => valid.has(e.seq));
  const payloadOf = <T extends LedgerEntry['type']>(e: LedgerEntry, t: T): PayloadOf<T> => parsePayload(t, e.payload).data as PayloadOf<T>;
  const finals = typed.filter((e) => e.type === 'model.final').map((e) => payloadOf(e, 'model.final'));
  const accepted = new Map(
    typed
      .filter((e) => e.type === 'partner.acceptance')
      .map((e) => {
        const p = payloadOf(e, 'partner.acceptance');
        return [p.jobId, p.policy] as const;
      }),
  );
  const withdrawals = typed.filter((e) => e.type === 'consent.withdrawal').map((e) => payloadOf(e, 'consent.withdrawal'));
  const seen = new Map<string, number>();

  for (const e of typed) {
    if (e.type !== 'model.scoring') continue;
    const p = payloadOf(e, 'model.scoring');
    const first = seen.get(p.runId);
    if (first !== undefined) add(e.seq, 'SCORING_RUN_DUPLICATE', `scoring run ${p.runId} is recorded twice (first at seq ${first})`, 'error');
    else seen.set(p.runId, e.seq);

    if (Date.parse(e.ts) < Date.parse(p.finishedAt)) {
      add(e.seq, 'SCORING_RECORDED_BEFORE_FINISH', `scoring run ${p.runId} is timestamped ${e.ts}, before it finished (${p.finishedAt})`, 'warning');
    }
    const trained = finals.find((f) => f.modelHash === p.modelHash);
    if (!trained) {
      add(
        e.seq,
        'SCORING_MODEL_UNKNOWN',
        `scoring run ${p.runId} used model ${p.modelHash.slice(0, 12)}…, which no model.final in this ledger records`,
        'warning',
      );
    } else {
      if (p.modelJobId && p.modelJobId !== trained.jobId) {
        add(
          e.seq,
          'SCORING_MODEL_JOB_MISMATCH',
          `scoring run ${p.runId} names job ${p.modelJobId}, but model ${p.modelHash.slice(0, 12)}… is the final model of job ${trained.jobId}`,
          'warning',
        );
      }
      const allowed = accepted.get(trained.jobId)?.allowedPurposes;
      if (allowed && !allowed.includes(p.purpose)) {
        add(
          e.seq,
          'SCORING_POLICY_PURPOSE',
          `scoring run ${p.runId} used job ${trained.jobId}'s model for purpose "${p.purpose}", which the partner's acceptance does not allow (${allowed.join(', ')})`,
          'error',
        );
      }
    }
    if (opts.sidecarDir && p.sidecar) {
      const relevant = withdrawals.filter((w) => Date.parse(w.effectiveFrom) <= Date.parse(p.startedAt));
      if (!relevant.length) continue;
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(path.join(opts.sidecarDir, p.sidecar.file));
      } catch {
        add(e.seq, 'SIDECAR_MISSING', `scoring run ${p.runId}: sidecar ${p.sidecar.file} cannot be read, so withdrawals cannot be checked`, 'warning');
        continue;
      }
      if (sha256Hex(bytes) !== p.sidecar.sha256) {
        add(e.seq, 'SIDECAR_TAMPERED', `scoring run ${p.runId}: sidecar ${p.sidecar.file} does not match the hash recorded at seq ${e.seq}`, 'error');
        continue;
      }
      const hits = relevant.flatMap((w) => w.idHashes).filter((h) => sidecarHas(bytes, h));
      if (hits.length) {
        add(
          e.seq,
          'SCORED_AFTER_WITHDRAWAL',
          `scoring run ${p.runId} (started ${p.startedAt}) scored ${hits.length} customer(s) whose consent withdrawal had already taken effect`,
          'error',
        );
      }
    }
  }
  return findings;
}
