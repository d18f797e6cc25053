import { hasCode } from '../../src/federation/protocol/errors.ts';
import type { PartnerContext } from './context.ts';
import { applyWithdrawals } from './withdrawals.ts';

/**
 * Step 4: take part in the open attempt this node is selected for. The runtime decides from the
 * node's own release store, not from the coordinator's status: an attempt it built before is
 * re-sent byte for byte (one charge, one release); an attempt it began but never finished is
 * withheld; otherwise it authorizes, computes, charges, records the release in the node's ledger
 * and persists the envelope, and only then is it sent. A budget refusal is recorded and sent as a
 * decline.
 */
export async function runRound(ctx: PartnerContext, round: number, attempt: number): Promise<void> {
  const { client, runtime, log, o } = ctx;
  applyWithdrawals(ctx);
  const result = await runtime.buildSubmission(round, attempt);
  if (result.status === 'withheld') {
    if (!ctx.warned.has(`${round}.${attempt}`)) log.warn({ round, attempt, reason: result.reason }, 'attempt withheld');
    ctx.warned.add(`${round}.${attempt}`);
    return;
  }
  if (result.status === 'refused') {
    log.warn({ round, reason: result.reason }, 'round declined: privacy budget');
    ctx.ledger.budgetRefusal(o.jobId, round, result.requestedEpsilon, result.remainingEpsilon, result.reason);
    await client
      .decline(o.jobId, round, { attempt, reason: result.reason, requestedEpsilon: result.requestedEpsilon, remainingEpsilon: result.remainingEpsilon })
      .catch((err: unknown) => {
        if (!hasCode(err, 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED')) throw err;
      });
    return;
  }
  const { body } = result;
  try {
    const res = await client.submit(o.jobId, round, body);
    // Acknowledged: from now on this attempt's published sums must list this node's record.
    runtime.acknowledged(round, attempt);
    log.info(
      { round, attempt, bytes: body.length, duplicate: res.duplicate, resent: result.resent },
      result.resent ? 'update re-sent (the bytes built for this attempt: no new release)' : 'update submitted',
    );
  } catch (err) {
    if (hasCode(err, 'ROUND_CLOSED', 'ROUND_DEADLINE', 'ROUND_NOT_OPEN', 'JOB_CLOSED', 'NOT_SELECTED'))
      log.warn({ round, err: (err as Error).message }, 'submission not taken (round or job closed meanwhile)');
    else throw err;
  }
}
