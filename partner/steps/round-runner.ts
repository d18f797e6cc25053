import { hasCode } from '../../src/federation/protocol/errors.ts';
import { decodeUpdate } from '../../src/federation/update-codec.ts';
import { sha256Hex } from '../../src/util/hash.ts';
import type { PartnerContext } from './context.ts';
import { applyWithdrawals } from './withdrawals.ts';

/**
 * Step 4: take part in the open attempt this node is selected for. A persisted envelope for the
 * attempt is re-sent as is; otherwise the runtime authorizes, computes, charges and encrypts, the
 * envelope is persisted, and only then sent. A budget refusal is recorded and sent as a decline.
 */
export async function runRound(ctx: PartnerContext, round: number, attempt: number): Promise<void> {
  const { client, runtime, log, o } = ctx;
  let body = ctx.uploads.pending(round, attempt);
  if (!body) {
    applyWithdrawals(ctx);
    const result = await runtime.buildSubmission(round, attempt);
    if (result.status === 'refused') {
      log.warn({ round, reason: result.reason }, 'round declined: privacy budget');
      ctx.ledger.budgetRefusal(o.jobId, round, result.requestedEpsilon, result.remainingEpsilon, result.reason);
      await client.decline(o.jobId, round, { attempt, reason: result.reason, requestedEpsilon: result.requestedEpsilon, remainingEpsilon: result.remainingEpsilon }).catch((err: unknown) => {
        if (!hasCode(err, 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED')) throw err;
      });
      return;
    }
    body = result.body;
    // Persist before sending: after a crash the same bytes are resent, never a fresh (uncharged) release.
    ctx.uploads.savePending(round, attempt, body);
  }
  // Recorded with or without DP: a round of a non-private job is a release too (an unbounded one).
  // From the envelope itself, on the first send and on a resend alike: a node killed between
  // persisting the envelope and this record would otherwise never write the round to its ledger.
  const decoded = decodeUpdate(body);
  ctx.uploads.recordSubmitted(round, { dp: decoded.meta.dp, ciphertextHashes: decoded.meta.parts.map((p) => sha256Hex(decoded.parts[p.name])) });
  try {
    const res = await client.submit(o.jobId, round, body);
    log.info({ round, attempt, bytes: body.length, duplicate: res.duplicate }, 'update submitted');
  } catch (err) {
    if (hasCode(err, 'ROUND_CLOSED', 'ROUND_DEADLINE', 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED')) log.warn({ round, err: (err as Error).message }, 'submission not taken (round or job closed meanwhile)');
    else throw err;
  }
  ctx.uploads.clearPending();
}
