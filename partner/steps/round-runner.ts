import { hasCode } from '../../src/federation/protocol/errors.ts';
import { decodeUpdate } from '../../src/federation/update-codec.ts';
import { attemptReleases } from '../../src/federation/release-records.ts';
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
    const decoded = decodeUpdate(body);
    const ciphertextHashes = decoded.meta.parts.map((p) => sha256Hex(decoded.parts[p.name]));
    if (result.meta.dp) {
      // The node's own record of what this attempt releases, before the bytes leave.
      const released = attemptReleases(ctx.myKeyId, attempt, result.meta.dp, ciphertextHashes);
      ctx.ledger.release(o.jobId, round, result.meta.kind, released);
      ctx.uploads.recordSubmitted(round, released);
    } else {
      // A round of a non-private job is recorded too: its release is unbounded, not absent.
      ctx.uploads.recordSubmitted(round, { nonPrivate: true, attempt, ciphertextHashes });
    }
    // Persist before sending: after a crash the same bytes are resent, never a fresh (uncharged) release.
    ctx.uploads.savePending(round, attempt, body);
  }
  try {
    const res = await client.submit(o.jobId, round, body);
    log.info({ round, attempt, bytes: body.length, duplicate: res.duplicate }, 'update submitted');
  } catch (err) {
    if (hasCode(err, 'ROUND_CLOSED', 'ROUND_DEADLINE', 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED')) log.warn({ round, err: (err as Error).message }, 'submission not taken (round or job closed meanwhile)');
    else throw err;
  }
  ctx.uploads.clearPending();
}
